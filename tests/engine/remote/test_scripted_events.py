"""The behaviour table of tests/engine/generate/text/test_events.py, remote side: the real remote engine
against a stand-in server on 127.0.0.1 that follows the same script, and the same events as the local
loop, case by case.

The stand-in (stdlib http.server) plays a plain OpenAI-compatible completion server: it reports
itself as llama-cpp-python's (no budget field, no thinking switch), so the remote engine renders the
prompt from the bundled Nemotron template, drives /v1/completions, splits the text itself and applies
the budget rule itself (the model card's method: the text is continued with the closing in new
requests). It streams the script one tiny-Nemotron token per piece (or `piece_chars` characters),
honours max_tokens and stop strings as servers do (the stop string is not sent), and continues
wherever the prompt it is sent ends. A stand-in, because no real model can be made to write these
texts; tests/engine/remote/test_same_events.py runs the real model behind our real server.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from engine.api import GenerationRequest, LoadSpec, Message, ModelInfo, RemoteSpec, SamplingParams
from engine.backends.base import Backend
from engine.worker.session import EngineSession
from tests.engine.generate.text.test_events import CASES, Case, Seen, run_local, tokens_of

ASSISTANT = "<|im_start|>assistant\n"


class _Script(http.server.BaseHTTPRequestHandler):
    case: ClassVar[Case]
    backend: ClassVar[Backend]
    prompts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        if self.path != "/v1/models":
            self._send(404, b"{}")
            return
        self._send(200, json.dumps({"data": [{"id": "nemotron-script", "owned_by": "me"}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/completions", self.path
        prompt: str = body["prompt"]
        self.prompts.append(prompt)
        written = prompt[prompt.rindex(ASSISTANT) + len(ASSISTANT):]
        for head in ("<think></think>", "<think>\n"):
            written = written.removeprefix(head)
        pieces = self._pieces(self.case.continuation(written))
        pieces, reason = pieces[:body["max_tokens"]], "stop" if len(pieces) <= body["max_tokens"] else "length"
        text = "".join(pieces)
        hits = [text.find(s) for s in body.get("stop") or () if s in text]
        if hits:  # a server holds back what may start a stop string, and never sends the stop string
            pieces, reason = _cut(pieces, min(hits)), "stop"
        sent = pieces
        lines = [{"choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in sent if p]
        lines.append({"choices": [{"index": 0, "text": "", "finish_reason": reason}]})
        self._send(200, "".join(f"data: {json.dumps(x)}\n\n" for x in lines).encode() + b"data: [DONE]\n\n")

    def _pieces(self, text: str) -> list[str]:
        if self.case.piece_chars:
            size = self.case.piece_chars
            return [text[i:i + size] for i in range(0, len(text), size)]
        return [self.backend.token_bytes(t).decode() for t in tokens_of(self.backend, self.case, text)]

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _cut(pieces: list[str], end: int) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        if end <= 0:
            break
        out.append(piece[:end])
        end -= len(piece)
    return out


@pytest.fixture(scope="module")
def script_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.mark.parametrize("name", CASES)
def test_remote_gives_the_local_events(name: str, script_server: str, nemotron_session: EngineSession) -> None:
    case, expected = CASES[name]
    backend = nemotron_session.backend
    assert backend is not None
    _Script.case, _Script.backend, _Script.prompts = case, backend, []
    session = EngineSession()
    loaded = list(session.load(LoadSpec(remote=RemoteSpec(script_server))))
    assert isinstance(loaded[-1], ModelInfo) and loaded[-1].has_thinking, loaded
    request = GenerationRequest((Message("user", "Why is the sky blue?"),), thinking=case.thinking,
                                reasoning_budget=case.budget, tools=case.tools, keep_answer_room=False,
                                sampling=SamplingParams(max_tokens=case.max_tokens, stop=case.stop))
    remote = Seen.of(list(session.generate(request)))
    assert remote == Seen.of(run_local(backend, case)) == expected
    if case.budget and expected.ended == (True,):
        # The model card's method: up to the budget, through the grace to where the rule closed, and
        # the answer continued from the closing the engine wrote.
        assert len(_Script.prompts) == 3 and _Script.prompts[-1].endswith("</think>\n\n")


def test_a_looping_trace_on_a_server_is_warned_of_and_ended(script_server: str,
                                                            nemotron_session: EngineSession) -> None:
    """Loop detection runs in the shared event builder, so a server's looping trace is caught as a
    local one is: with "end", the stream is left, the closing is written into the text (cause loop)
    and the answer is continued after it."""
    from engine.api import ContentDelta, LoopSuspected, ReasoningEndCause, ReasoningEnded

    backend = nemotron_session.backend
    assert backend is not None
    loop = "Wait, let me reconsider whether the light scatters.\n" * 60
    _Script.case = Case(loop + "</think>\n\nNever reached.", after_close="Blue light scatters most.")
    _Script.backend, _Script.prompts = backend, []
    session = EngineSession()
    list(session.load(LoadSpec(remote=RemoteSpec(script_server))))
    events = list(session.generate(GenerationRequest(
        (Message("user", "Why is the sky blue?"),), loop_detection="end", keep_answer_room=False,
        sampling=SamplingParams(max_tokens=3000))))
    (found,) = [e for e in events if isinstance(e, LoopSuspected)]
    assert found.action == "end" and "reconsider" in found.repeated
    (ended,) = [e for e in events if isinstance(e, ReasoningEnded)]
    assert ended.cause is ReasoningEndCause.LOOP and not ended.by_budget
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Blue light scatters most."
    assert _Script.prompts[-1].endswith("</think>\n\n")  # continued after the closing the engine wrote
