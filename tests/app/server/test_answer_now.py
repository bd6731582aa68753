"""The server's control request for a running generation, end to end: a real uvicorn server, the
engine worker, llama.cpp on the tiny Nemotron-H (which reasons until told otherwise)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.app.server.live_server import LiveServer

TINY = "tiny-nemotron"
KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tiny_nemotron) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    live = LiveServer(tiny_nemotron.gguf_path, TINY, api_key=KEY)
    yield live
    live.close()


def test_answer_now_ends_the_reasoning_and_the_answer_follows(server: LiveServer) -> None:
    body = {"model": TINY, "messages": [{"role": "user", "content": "Why is the sky blue?"}], "stream": True,
            "max_tokens": 3000, "ignore_eos": True, "seed": 4, "stream_options": {"include_usage": True}}
    reasoning, content, usage, reason = [], [], None, None
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body, headers=AUTH,
                      timeout=120) as response:
        assert response.status_code == 200
        asked = None
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk["choices"]:
                reasoning.append(choice["delta"].get("reasoning_content") or "")
                content.append(choice["delta"].get("content") or "")
                reason = choice.get("finish_reason") or reason
            if asked is None and sum(map(bool, reasoning)) >= 5:
                without_key = httpx.post(f"{server.base_url}/chat/completions/{chunk['id']}/answer_now", timeout=30)
                assert without_key.status_code == 401
                asked = httpx.post(f"{server.base_url}/chat/completions/{chunk['id']}/answer_now", headers=AUTH,
                                   timeout=30)
                assert asked.status_code == 200, asked.text
                assert asked.json()["status"] == "requested"
    assert asked is not None and usage is not None
    assert "".join(content).strip(), "the model answered after its reasoning was ended"
    assert reason == "length"
    details = usage["completion_tokens_details"]
    assert 0 < details["reasoning_tokens"] < usage["completion_tokens"] == 3000
    # finished: the id is no longer running
    again = httpx.post(f"{server.base_url}/chat/completions/{chunk['id']}/answer_now", headers=AUTH, timeout=30)
    assert again.status_code == 404 and "is running" in again.json()["error"]["message"]


def test_unknown_id_is_404(server: LiveServer) -> None:
    response = httpx.post(f"{server.base_url}/chat/completions/chatcmpl-nope/answer_now", headers=AUTH, timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "completion_id"


def test_loop_detection_field_is_checked(server: LiveServer) -> None:
    body = {"model": TINY, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    ok = httpx.post(server.base_url + "/chat/completions", json=body | {"loop_detection": "end"}, headers=AUTH,
                    timeout=60)
    assert ok.status_code == 200, ok.text
    bad = httpx.post(server.base_url + "/chat/completions", json=body | {"loop_detection": "maybe"}, headers=AUTH,
                     timeout=60)
    assert bad.status_code == 400 and "loop_detection" in bad.json()["error"]["message"]
