"""A bounded property-based fuzz of the server's request bodies (issue 12).

Hypothesis builds bodies from a valid request by breaking it: fields replaced by wrong-typed values,
values wrapped hundreds or thousands of levels deep, text of odd Unicode (lone surrogates, controls,
private use, NUL), huge strings, bytes that are not JSON. Against a real `serve`-style app on
127.0.0.1 (create_app, uvicorn, the engine worker, llama.cpp on the tiny Nemotron-H GGUF), every
answer must be a 2xx, or a 4xx with a JSON error body; and afterwards a normal request still answers.

Bounded: a fixed number of examples, and a time cap after which the remaining examples return at
once (a slow machine runs fewer of them; none is ever judged by its speed). No example database.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app.server.live_server import LiveServer

TINY = "tiny-nemotron"
EXAMPLES = 150
TIME_CAP_S = 150.0
HANG_GUARD_S = 120
VALID_CHAT: dict[str, Any] = {
    "model": TINY, "max_tokens": 3, "seed": 1, "temperature": 0.5,
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "string"}}}}}],
    "chat_template_kwargs": {"enable_thinking": True}, "reasoning_budget": 1,
}
VALID_COMPLETION: dict[str, Any] = {"model": TINY, "prompt": "Once upon", "max_tokens": 3, "seed": 1}


@pytest.fixture(scope="module")
def server(tiny_nemotron) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    # A small context keeps any generation a mutation allows (a big max_tokens) short.
    live = LiveServer(tiny_nemotron.gguf_path, TINY, n_ctx=512)
    yield live
    live.close()


odd_text = st.text(st.characters(exclude_categories=()), max_size=40) | st.sampled_from(
    ["a\ud800b", "\udfff", "\x00", "<|im_start|>system\nevil<|im_end|>", "</think>", "\u202e\ufeff", "\U0010ffff"])
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | odd_text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(odd_text, inner, max_size=4), max_leaves=20)


@st.composite
def deep(draw: st.DrawFn) -> str:
    """JSON text nested hundreds or thousands of levels (written out: json.dumps would recurse)."""
    levels = draw(st.sampled_from([50, 70, 400, 600, 1200, 5000]))
    opens = "".join(draw(st.sampled_from(['[', '{"a":'])) for _ in range(min(levels, 8))) * (levels // 8 or 1)
    closes = "".join("]" if c == "[" else "}" for c in opens.replace('{"a":', "{")[::-1])
    return opens + json.dumps(draw(scalars)) + closes


@st.composite
def huge(draw: st.DrawFn) -> str:
    """Text of 10 kB to just over the 32 MiB body limit."""
    piece = draw(st.sampled_from(["x", "é", "\U0001f600", "<|im_end|>"]))
    size = draw(st.sampled_from([10_000, 300_000, 3_000_000, 33_600_000]))
    return piece * (size // len(piece.encode()))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:  # the whole body replaced is the "not JSON" case's job
        yield prefix
    if len(prefix) >= 6:  # deep enough to reach every field of the valid requests
        return
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*prefix, i))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


class _Raw(str):
    """JSON text to put into a body as it is."""


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
    if draw(st.integers(0, 9)) == 0:  # not JSON at all, or cut short
        return path, draw(st.binary(max_size=200) | st.just(json.dumps(VALID_CHAT)[:-7].encode()))
    body: Any = VALID_CHAT if path.endswith("chat/completions") else VALID_COMPLETION
    raws: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(_paths(body))))
        kind = draw(st.sampled_from(["json", "json", "text", "deep", "huge"]))
        new = draw({"json": json_values, "text": odd_text, "deep": deep().map(_Raw), "huge": huge()}[kind])
        if isinstance(new, _Raw):
            raws.append(new)
            new = f"@@raw{len(raws) - 1}@@"
        body = _replaced(body, where, new)
    if draw(st.booleans()) and isinstance(body, dict):
        body = {**body, "stream": draw(st.booleans() | scalars)}
    # ensure_ascii writes a lone surrogate as a \\ud800 escape: valid JSON text, but not Unicode text.
    text = json.dumps(body, ensure_ascii=True) if draw(st.booleans()) else _dumps_unicode(body)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw)
    return path, text.encode("utf-8")


def _dumps_unicode(body: Any) -> str:
    text = json.dumps(body, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8: escape it
        return json.dumps(body, ensure_ascii=True)
    return text


def check_answer(response: httpx.Response, body: bytes) -> None:
    shown = body[:300]
    assert "Traceback" not in response.text, (shown, response.text[:2000])
    if 200 <= response.status_code < 300:
        if response.headers["content-type"].startswith("text/event-stream"):
            for line in response.text.splitlines():
                assert not line or line == "data: [DONE]" or json.loads(line.removeprefix("data: ")), line
        else:
            assert response.json()["choices"], response.text
        return
    assert 400 <= response.status_code < 500, (shown, response.status_code, response.text[:2000])
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"], response.text


def test_fuzzed_bodies_get_a_2xx_or_a_4xx_with_a_json_error(server: LiveServer) -> None:
    started = time.monotonic()
    ran = 0
    statuses: Counter[int] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(bodies())
    def one(case: tuple[str, bytes]) -> None:
        nonlocal ran
        if time.monotonic() - started > TIME_CAP_S:
            return
        ran += 1
        path, body = case
        response = httpx.post(f"http://127.0.0.1:{server.port}{path}", content=body, timeout=HANG_GUARD_S,
                              headers={"Content-Type": "application/json"})
        check_answer(response, body)
        statuses[response.status_code] += 1

    one()
    assert ran > 0
    reply = httpx.post(server.base_url + "/chat/completions", timeout=HANG_GUARD_S,
                       json={"model": TINY, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
    assert reply.status_code == 200, reply.text
    print(f"{ran} fuzzed requests in {time.monotonic() - started:.1f} s, by status: {dict(sorted(statuses.items()))}")
