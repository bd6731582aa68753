"""The OpenAI-compatible server, driven by the official `openai` client and raw HTTP.

Real parts throughout: uvicorn on 127.0.0.1, the engine worker, llama.cpp on the tiny Nemotron-H
GGUF (reasoning, budget) and on the demo model (coherent answers).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from engine.api import FinishReason
from tests.app.server.live_server import LiveServer

TINY = "tiny-nemotron"
DEMO = "smollm2-demo"


@pytest.fixture(scope="module")
def tiny_server(tiny_nemotron) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    server = LiveServer(tiny_nemotron.gguf_path, TINY)
    yield server
    server.close()


@pytest.fixture(scope="module")
def demo_server(demo_gguf: Path) -> Iterator[LiveServer]:
    server = LiveServer(demo_gguf, DEMO, api_key="s3cret")
    yield server
    server.close()


def oai(server: LiveServer, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120)


def extra(obj: Any, name: str) -> Any:
    return (obj.model_extra or {}).get(name)


QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]


def test_models(tiny_server: LiveServer) -> None:
    models = oai(tiny_server).models.list()
    assert [m.id for m in models.data] == [TINY]


def test_demo_answers_paris_with_key(demo_server: LiveServer) -> None:
    reply = oai(demo_server, "s3cret").chat.completions.create(
        model=DEMO, temperature=0, max_tokens=16,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}])
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens > 10


def test_wrong_or_missing_key_is_401(demo_server: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        oai(demo_server, "wrong").models.list()
    assert httpx.get(demo_server.base_url + "/models").status_code == 401


def test_non_streaming_reasoning_apart_from_content(tiny_server: LiveServer) -> None:
    reply = oai(tiny_server).chat.completions.create(model=TINY, messages=QUESTION, max_tokens=40, seed=1)
    message = reply.choices[0].message
    reasoning = extra(message, "reasoning_content")
    assert reasoning and "<think>" not in reasoning
    assert "<think>" not in (message.content or "") and "</think>" not in (message.content or "")
    assert reply.usage is not None and reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens > 0


def test_streaming_with_budget_and_usage(tiny_server: LiveServer) -> None:
    stream = oai(tiny_server).chat.completions.create(
        model=TINY, messages=QUESTION, max_tokens=1200, seed=2, stream=True,
        stream_options={"include_usage": True}, extra_body={"thinking_token_budget": 16})
    reasoning, content, finish, usage = [], [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if (r := extra(choice.delta, "reasoning_content")) is not None:
                reasoning.append(r)
            if choice.delta.content:
                content.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert reasoning and finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens_details is not None
    assert 16 <= usage.completion_tokens_details.reasoning_tokens <= 16 + 500 + 5
    assert "</think>" not in "".join(content)


def test_our_reasoning_budget_field_and_thinking_off(tiny_server: LiveServer) -> None:
    client = oai(tiny_server)
    budgeted = client.chat.completions.create(model=TINY, messages=QUESTION, max_tokens=800, seed=3,
                                              extra_body={"reasoning_budget": 0})
    assert budgeted.usage is not None and budgeted.usage.completion_tokens_details is not None
    assert budgeted.usage.completion_tokens_details.reasoning_tokens <= 5  # just the closing
    off = client.chat.completions.create(model=TINY, messages=QUESTION, max_tokens=20, seed=3,
                                         extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert extra(off.choices[0].message, "reasoning_content") is None
    assert off.usage is not None and off.usage.completion_tokens_details is not None
    assert off.usage.completion_tokens_details.reasoning_tokens == 0


def test_max_tokens_seed_and_stop(tiny_server: LiveServer) -> None:
    client = oai(tiny_server)
    off = {"chat_template_kwargs": {"enable_thinking": False}}
    short = client.chat.completions.create(model=TINY, messages=QUESTION, max_tokens=5, seed=4, extra_body=off)
    assert short.choices[0].finish_reason == "length" and short.usage is not None
    assert short.usage.completion_tokens == 5
    again = client.chat.completions.create(model=TINY, messages=QUESTION, max_tokens=5, seed=4, extra_body=off)
    assert again.choices[0].message.content == short.choices[0].message.content
    text = short.choices[0].message.content or ""
    stop_at = text.strip()[1:3] if len(text.strip()) > 3 else None
    if stop_at:
        cut = client.chat.completions.create(model=TINY, messages=QUESTION, max_tokens=5, seed=4, extra_body=off,
                                             stop=[stop_at])
        assert cut.choices[0].finish_reason == "stop"
        assert stop_at not in (cut.choices[0].message.content or "")


def test_tool_history_round_trip_is_accepted(tiny_server: LiveServer) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "reasoning_content": "Use the tool.",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
    ]
    reply = oai(tiny_server).chat.completions.create(model=TINY, messages=history, tools=tools,  # type: ignore[arg-type]
                                                     max_tokens=16, seed=5)
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    bad = httpx.post(tiny_server.base_url + "/chat/completions", json={
        "model": TINY, "messages": [{**history[1], "tool_calls": [{"type": "function", "function": {
            "name": "get_weather", "arguments": "{not json"}}]}, history[0]]})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]


def test_raw_completions(tiny_server: LiveServer) -> None:
    client = oai(tiny_server)
    reply = client.completions.create(model=TINY, prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
                                      "<think>\nHmm", max_tokens=30, seed=6, extra_body={"reasoning_budget": 4})
    assert reply.object == "text_completion"
    assert "</think>" in reply.choices[0].text  # raw text: the budget's closing is in it
    pieces = [c.choices[0].text for c in client.completions.create(
        model=TINY, prompt="Once upon a time", max_tokens=8, seed=6, stream=True) if c.choices]
    assert len("".join(pieces)) > 0


@pytest.mark.parametrize(("body", "words"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    ({"model": TINY, "messages": QUESTION, "frobnicate": 1}, "unknown field 'frobnicate'"),
    ({"model": TINY, "messages": QUESTION, "n": 2}, "n"),
    ({"model": TINY, "messages": []}, "messages"),
    ({"model": TINY, "messages": QUESTION, "temperature": -1}, "temperature"),
    ({"model": TINY, "messages": QUESTION, "presence_penalty": 0.5}, "presence_penalty"),
    ({"model": TINY, "messages": [{"role": "wizard", "content": "x"}]}, "role"),
    ({"messages": QUESTION}, "model"),
    ({"model": TINY, "messages": QUESTION, "thinking_token_budget": -5}, "thinking_token_budget"),
])
def test_bad_requests_are_4xx_with_a_reason(tiny_server: LiveServer, body: Any, words: str) -> None:
    url = tiny_server.base_url + "/chat/completions"
    if isinstance(body, bytes):
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    else:
        response = httpx.post(url, json=body)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"]


def test_unknown_model_is_404(tiny_server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError):
        oai(tiny_server).chat.completions.create(model="gpt-9", messages=QUESTION)  # type: ignore[arg-type]


def test_context_overflow_is_400(tiny_server: LiveServer) -> None:
    response = httpx.post(tiny_server.base_url + "/chat/completions", timeout=120, json={
        "model": TINY, "messages": [{"role": "user", "content": "blue sky " * 5000}]})
    assert response.status_code == 400 and "context" in response.json()["error"]["message"]


def wait_for(condition: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_client_disconnect_cancels_the_generation(tiny_server: LiveServer) -> None:
    runner = tiny_server.runner
    before = len(runner.finished)
    body = {"model": TINY, "messages": QUESTION, "stream": True, "max_tokens": 100000, "ignore_eos": True}
    with httpx.stream("POST", tiny_server.base_url + "/chat/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()
        for _ in range(5):
            next(lines)
    wait_for(lambda: len(runner.finished) > before)
    assert runner.finished[-1] is FinishReason.CANCELLED
    non_streaming = threading.Thread(target=lambda: _post_and_drop(tiny_server, body | {"stream": False}))
    non_streaming.start()
    wait_for(lambda: len(runner.finished) > before + 1)
    non_streaming.join()
    assert runner.finished[-1] is FinishReason.CANCELLED


def _post_and_drop(server: LiveServer, body: dict[str, Any]) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + "/chat/completions", json=body, timeout=0.4)


def test_two_clients_at_once_both_answered(tiny_server: LiveServer) -> None:
    results: dict[int, Any] = {}

    def ask(i: int) -> None:
        results[i] = oai(tiny_server).chat.completions.create(
            model=TINY, messages=QUESTION, max_tokens=60, seed=i, stream=i == 1)
        if i == 1:
            results[i] = list(results[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results[0].choices[0].finish_reason in ("stop", "length")
    assert results[1][-1].choices[0].finish_reason in ("stop", "length")
