"""The server as the references define it: the model card's budget client working unchanged, the chat
template's switches and kwargs as vLLM takes them, max_tokens as a hard limit on every path.

Real parts: our server (uvicorn on 127.0.0.1, the engine worker, llama.cpp on the tiny Nemotron-H
GGUF) started with `--reasoning-format none` (`create_app(reasoning_format="none")`), and
llama-cpp-python's own server on the same GGUF as the peer; transformers' tokenizer of the same tiny
model renders the reference prompts, as the model card's client does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.app.server.budget_client import CUT, BudgetProtocolClient, BudgetReply
from tests.app.server.live_server import LiveServer
from tests.app.server.peers import LlamaCppPythonServer
from tests.fixtures.tiny_nemotron import SPECIAL_TOKENS

TINY = "tiny-nemotron"
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
GREEDY: dict[str, Any] = {"temperature": 0.0, "seed": 11}
# llama-cpp-python's server applies a repeat penalty of 1.1 unless told otherwise; ours has none.
PEER_EXTRA = {"repeat_penalty": 1.0}


@pytest.fixture(scope="module")
def server(tiny_nemotron) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    live = LiveServer(tiny_nemotron.gguf_path, TINY, reasoning_format="none")
    yield live
    live.close()


@pytest.fixture(scope="module")
def peer(tiny_nemotron, tmp_path_factory) -> Iterator[LlamaCppPythonServer]:  # type: ignore[no-untyped-def]
    live = LlamaCppPythonServer(tiny_nemotron.gguf_path, TINY, tmp_path_factory.mktemp("peer") / "server.log")
    yield live
    live.close()


@pytest.fixture(scope="module")
def tokenizer(tiny_nemotron) -> Any:  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(tiny_nemotron.hf_dir))


def post(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/{path}", json={"model": TINY, **body}, timeout=120)


def visible_text(text: str) -> str:
    """Text as llama-cpp-python's server returns it: control tokens and undecodable bytes left out."""
    for marker in SPECIAL_TOKENS.values():
        text = text.replace(marker, "")
    return text.replace("\ufffd", "")


# -- the model card's budget client ------------------------------------------------------------------


@pytest.mark.parametrize("budget", [4, 8, 32])
def test_model_card_budget_client_works_as_against_a_server_without_reasoning_parser(
        budget: int, server: LiveServer, peer: LlamaCppPythonServer, tokenizer: Any) -> None:
    replies: dict[str, BudgetReply] = {}
    for name, url, extra in (("ours", server.base_url, {}), ("peer", peer.base_url, PEER_EXTRA)):
        client = BudgetProtocolClient(url, tokenizer)
        replies[name] = client.chat_completion(TINY, list(QUESTION), reasoning_budget=budget, max_tokens=budget + 40,
                                               extra_body=extra, **GREEDY)
    for reply in replies.values():
        assert reply.first_content  # the reasoning, in content (no reasoning parser)
        # the first call's reasoning reached the second call, closed, at the end of the prompt
        closed = reply.first_content if "</think>" in reply.first_content else reply.first_content + CUT
        assert reply.second_prompt.endswith("<|im_start|>assistant\n" + closed.strip())
        assert reply.content and reply.finish_reason in ("stop", "length")  # an answer came back
        assert 0 < reply.second_completion_tokens <= reply.second_max_tokens
    # Side by side: the same greedy reasoning tokens on both servers. The peer's text leaves out control
    # tokens and bytes that are not UTF-8 (llama-cpp-python detokenizes that way); ours keeps both.
    assert replies["ours"].first_content is not None and replies["peer"].first_content is not None
    assert visible_text(replies["ours"].first_content) == replies["peer"].first_content


def test_our_chat_continue_final_message_gives_the_cards_prompt(server: LiveServer, tokenizer: Any) -> None:
    """What the card's client renders itself, our chat endpoint renders from continue_final_message."""
    history = [*QUESTION, {"role": "assistant", "content": "Light scatters" + CUT}]
    expected = tokenizer.apply_chat_template(history, continue_final_message=True)["input_ids"]
    for body in ({"continue_final_message": True, "add_generation_prompt": False},
                 {"continue_final_message": True},
                 {"chat_template_kwargs": {"continue_final_message": True, "add_generation_prompt": False}}):
        reply = post(server, "chat/completions", {"messages": history, "max_tokens": 4, **body})
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["prompt_tokens"] == len(expected)
    raw = post(server, "completions", {"prompt": tokenizer.apply_chat_template(history, tokenize=False,
                                                                              continue_final_message=True),
                                       "max_tokens": 4})
    assert raw.json()["usage"]["prompt_tokens"] == len(expected)


def test_continuing_inside_the_reasoning_continues_the_reasoning(server: LiveServer) -> None:
    history = [*QUESTION, {"role": "assistant", "content": "<think>\nLight from the sun"}]
    reply = post(server, "chat/completions", {"messages": history, "continue_final_message": True,
                                              "reasoning_format": "split", "max_tokens": 60,
                                              "reasoning_budget": 6, **GREEDY}).json()
    message = reply["choices"][0]["message"]
    assert message["reasoning_content"]  # the continuation is reasoning, not answer
    details = reply["usage"]["completion_tokens_details"]
    assert 6 <= details["reasoning_tokens"] <= 6 + 500 + 5  # and the budget counted it


# -- the template's switches and kwargs ----------------------------------------------------------------


def test_chat_template_kwargs_reach_the_template(server: LiveServer, tokenizer: Any) -> None:
    history = [*QUESTION, {"role": "assistant", "content": "<think>\nOld reasoning here.\n</think>\nBlue."},
               {"role": "user", "content": "And at sunset?"}]
    counts = {}
    for truncate in (True, False):
        reply = post(server, "chat/completions", {"messages": history, "max_tokens": 1,
                                                  "chat_template_kwargs": {"truncate_history_thinking": truncate}})
        assert reply.status_code == 200, reply.text
        counts[truncate] = reply.json()["usage"]["prompt_tokens"]
        expected = tokenizer.apply_chat_template(history, add_generation_prompt=True,
                                                 truncate_history_thinking=truncate)["input_ids"]
        assert counts[truncate] == len(expected)
    assert counts[False] > counts[True]


@pytest.mark.parametrize(("body", "words"), [
    ({"chat_template_kwargs": {"reasoning_effort": "high"}}, "'reasoning_effort'"),
    ({"chat_template_kwargs": {"enable_thinking": "no"}}, "enable_thinking"),
    ({"chat_template_kwargs": {"continue_final_message": 1}}, "continue_final_message"),
    ({"chat_template_kwargs": {"messages": []}}, "'messages'"),
    ({"continue_final_message": True, "add_generation_prompt": True}, "add_generation_prompt"),
    ({"chat_template_kwargs": {"continue_final_message": True, "add_generation_prompt": True}},
     "add_generation_prompt"),
    ({"reasoning_format": "deepseek"}, "reasoning_format"),
])
def test_template_options_that_cannot_apply_are_400(server: LiveServer, body: dict[str, Any], words: str) -> None:
    reply = post(server, "chat/completions", {"messages": [*QUESTION, {"role": "assistant", "content": "Hi"}],
                                              "max_tokens": 2, **body})
    assert reply.status_code == 400, reply.text
    assert words in reply.json()["error"]["message"]


# -- max_tokens, raw completions, stop strings, ids ---------------------------------------------------


def _count(server: LiveServer, path: str, body: dict[str, Any], stream: bool) -> tuple[int, int]:
    """(completion_tokens from usage, pieces of text streamed or 0)."""
    if not stream:
        reply = post(server, path, body)
        assert reply.status_code == 200, reply.text
        return reply.json()["usage"]["completion_tokens"], 0
    usage, pieces = None, 0
    with httpx.stream("POST", f"{server.base_url}/{path}", timeout=120,
                      json={"model": TINY, **body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                pieces += bool(choice.get("text") or delta.get("content") or delta.get("reasoning_content"))
    assert usage is not None
    return usage["completion_tokens"], pieces


@pytest.mark.parametrize("extra", [{}, {"reasoning_budget": 0}, {"reasoning_budget": 1, "keep_answer_room": True}],
                         ids=["plain", "budget-0", "budget-and-answer-room"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("thinking", [True, False], ids=["think", "no-think"])
def test_max_tokens_is_never_exceeded(server: LiveServer, tokenizer: Any, thinking: bool, stream: bool,
                                      extra: dict[str, Any]) -> None:
    prompt = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True,
                                           enable_thinking=thinking)
    for max_tokens in range(1, 9):
        chat = {"messages": QUESTION, "max_tokens": max_tokens, "reasoning_format": "split", "seed": max_tokens,
                "chat_template_kwargs": {"enable_thinking": thinking}, **extra}
        text = {"prompt": prompt, "max_tokens": max_tokens, "seed": max_tokens, **extra}
        for path, body in (("chat/completions", chat), ("completions", text)):
            used, pieces = _count(server, path, body, stream)
            assert used <= max_tokens and pieces <= max_tokens, (path, max_tokens, used, pieces)


def test_raw_completion_is_the_models_own_continuation(server: LiveServer, tokenizer: Any) -> None:
    """Without a budget nothing is inserted: a longer max_tokens only makes the text longer."""
    prompt = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    short = post(server, "completions", {"prompt": prompt, "max_tokens": 30, **GREEDY}).json()
    long = post(server, "completions", {"prompt": prompt, "max_tokens": 60, **GREEDY}).json()
    assert short["id"].startswith("cmpl-") and short["object"] == "text_completion"
    assert short["usage"]["completion_tokens"] == 30
    assert long["choices"][0]["text"].startswith(short["choices"][0]["text"])
    chat = post(server, "chat/completions", {"messages": QUESTION, "max_tokens": 30, **GREEDY}).json()
    assert chat["id"].startswith("chatcmpl-")
    assert chat["choices"][0]["message"]["content"] == short["choices"][0]["text"]  # --reasoning-format none


def test_stop_strings_stop_inside_the_reasoning(server: LiveServer) -> None:
    base = {"messages": QUESTION, "max_tokens": 40, **GREEDY}
    raw = post(server, "chat/completions", base).json()["choices"][0]["message"]["content"]
    stop = next(raw[i:i + 3] for i in range(8, len(raw) - 3) if raw[i:i + 3].isalpha())
    cut = raw[:raw.index(stop)]
    for fmt, field in (("none", "content"), ("split", "reasoning_content")):
        for stream in (False, True):
            body = {**base, "stop": [stop], "reasoning_format": fmt}
            if stream:
                text = "".join(_stream_field(server, body, field))
            else:
                reply = post(server, "chat/completions", body).json()
                assert reply["choices"][0]["finish_reason"] == "stop"
                text = reply["choices"][0]["message"][field] or ""
            assert text == (cut if fmt == "none" else cut.strip()), (fmt, stream)


def _stream_field(server: LiveServer, body: dict[str, Any], field: str) -> Iterator[str]:
    client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=120)
    extra = {k: v for k, v in body.items() if k not in ("messages", "max_tokens", "temperature", "seed", "stop")}
    stream = client.chat.completions.create(model=TINY, messages=body["messages"], max_tokens=body["max_tokens"],
                                            temperature=body["temperature"], seed=body["seed"], stop=body["stop"],
                                            stream=True, extra_body=extra)
    for chunk in stream:
        for choice in chunk.choices:
            value = getattr(choice.delta, field, None) or (choice.delta.model_extra or {}).get(field)
            if value:
                yield value
