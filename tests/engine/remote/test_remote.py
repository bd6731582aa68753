"""The remote engine against real servers started here on 127.0.0.1: llama-cpp-python's own
`llama_cpp.server` (tiny Nemotron-H and the demo model) and our own server (tiny Nemotron-H).

Our server splits reasoning (`reasoning_content`), honours `enable_thinking` and takes a budget field;
llama_cpp.server does none of that and drops special tokens from its text, so there the engine renders
the prompt itself and drives /v1/completions. Two tiny stand-in servers (stdlib http.server) play the
failures no real server can be made to show on demand: "overloaded, then fine" and "never answers".
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.api import (
    ContentDelta,
    Error,
    FinishReason,
    GenerationRequest,
    LoadSpec,
    Message,
    ModelInfo,
    ReasoningDelta,
    RemoteSpec,
    RetryPolicy,
    SamplingParams,
)
from engine.client import EngineClient
from engine.worker.session import EngineSession
from tests.app.server.live_server import LiveServer, free_port
from tests.app.server.peers import LlamaCppPythonServer
from tests.engine.helpers import Answer, collect

TINY = "tiny-nemotron"
DEMO = "smollm2-demo"
QUESTION = (Message("user", "Why is the sky blue?"),)
FAST_RETRY = RetryPolicy(attempts=3, first_pause_s=0.05)


@pytest.fixture(scope="module")
def ours(tiny_nemotron) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    server = LiveServer(tiny_nemotron.gguf_path, TINY, api_key="s3cret")
    yield server
    server.close()


@pytest.fixture(scope="module")
def lcs_tiny(tiny_nemotron, tmp_path_factory) -> Iterator[LlamaCppPythonServer]:  # type: ignore[no-untyped-def]
    server = LlamaCppPythonServer(tiny_nemotron.gguf_path, TINY, tmp_path_factory.mktemp("lcs") / "tiny.log")
    yield server
    server.close()


@pytest.fixture(scope="module")
def lcs_demo(demo_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppPythonServer]:
    server = LlamaCppPythonServer(demo_gguf, DEMO, tmp_path_factory.mktemp("lcs") / "demo.log", n_ctx=2048)
    yield server
    server.close()


def connect(base_url: str, **kw: Any) -> EngineSession:
    session = EngineSession()
    events = list(session.load(LoadSpec(remote=RemoteSpec(base_url, retry=FAST_RETRY, **kw))))
    assert isinstance(events[-1], ModelInfo), events
    return session


def ask(session: EngineSession, *, max_tokens: int = 60, seed: int = 5, cancel: Any = None,
        messages: tuple[Message, ...] = QUESTION, temperature: float = 1.0, **kw: Any) -> Answer:
    sampling = SamplingParams(temperature=temperature, seed=seed, max_tokens=max_tokens)
    return collect(session.generate(GenerationRequest(messages, sampling=sampling, **kw), cancel))


def load_error(spec: RemoteSpec) -> Error:
    events = list(EngineSession().load(LoadSpec(remote=spec)))
    assert isinstance(events[-1], Error), events
    return events[-1]


def wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


# -- our own server: reasoning split by the server, thinking switch, budget field -----------------


def test_connect_describes_the_server(ours: LiveServer) -> None:
    session = connect(ours.base_url, api_key="s3cret")
    info = session.info
    assert info is not None and info.backend == "remote" and info.name == TINY
    assert info.path == ours.base_url and info.architecture == "Nemotron Desk"
    assert info.n_ctx == 4096 and info.has_thinking


def test_streams_reasoning_then_thinking_off(ours: LiveServer) -> None:
    session = connect(ours.base_url, api_key="s3cret")
    on = ask(session, max_tokens=40)
    assert not on.errors and on.finish is FinishReason.LENGTH
    assert sum(isinstance(e, ReasoningDelta) for e in on.events) > 5  # streamed, piece by piece
    assert "<think>" not in on.reasoning + on.content and on.usage.prompt_tokens > 10
    off = ask(session, max_tokens=40, thinking=False)
    assert not off.errors and not off.reasoning and off.usage.reasoning_tokens == 0
    assert off.content or off.finish is FinishReason.STOP


def test_budget_goes_to_the_server_in_one_request(ours: LiveServer) -> None:
    session = connect(ours.base_url, api_key="s3cret")
    before = len(ours.runner.finished)
    answer = ask(session, max_tokens=1200, reasoning_budget=16, seed=2)
    assert not answer.errors
    (ended,) = answer.ended
    assert ended.by_budget and 16 <= ended.reasoning_tokens <= 16 + 500 + 5
    assert len(ours.runner.finished) == before + 1  # the server applied it: no continuation requests


def test_answer_room_guard_as_locally(ours: LiveServer) -> None:
    """Our server applies the guard only when asked; the remote engine asks where the request does."""
    session = connect(ours.base_url, api_key="s3cret")
    guarded = ask(session, max_tokens=40, seed=3)
    assert len(guarded.ended) == 1 and guarded.usage.reasoning_tokens < 40  # closed early, by the server
    plain = ask(session, max_tokens=40, seed=3, keep_answer_room=False)
    assert not plain.ended and plain.usage.completion_tokens == 40  # all of it reasoning


def test_cancel_mid_stream_closes_the_connection(ours: LiveServer) -> None:
    session = connect(ours.base_url, api_key="s3cret")
    stop = threading.Event()
    before = len(ours.runner.finished)
    events = session.generate(GenerationRequest(QUESTION, sampling=SamplingParams(max_tokens=3000, seed=1)), stop)
    seen = 0
    for event in events:
        seen += isinstance(event, ReasoningDelta)
        if seen == 5:
            stop.set()
    assert seen >= 5
    wait_for(lambda: len(ours.runner.finished) > before)
    assert ours.runner.finished[-1] is FinishReason.CANCELLED  # the server saw the disconnect


def test_wrong_key_is_401_with_what_to_do(ours: LiveServer) -> None:
    error = load_error(RemoteSpec(ours.base_url, api_key="wrong", retry=FAST_RETRY))
    assert error.kind == "auth" and "401" in error.message and "--api-key" in error.action
    assert load_error(RemoteSpec(ours.base_url, retry=FAST_RETRY)).kind == "auth"  # no key at all


def test_missing_model_lists_what_the_server_has(ours: LiveServer) -> None:
    error = load_error(RemoteSpec(ours.base_url, model="nemotron-ultra", api_key="s3cret", retry=FAST_RETRY))
    assert error.kind == "model_missing" and TINY in error.message


def test_through_the_worker_process(ours: LiveServer) -> None:
    spec = LoadSpec(remote=RemoteSpec(ours.base_url, api_key="s3cret"))
    assert "s3cret" not in repr(spec)  # the key never shows in a repr (logs, tracebacks)
    with EngineClient() as client:
        events = list(client.load(spec))
        assert isinstance(events[-1], ModelInfo) and events[-1].backend == "remote"
        answer = collect(client.generate(GenerationRequest(QUESTION, sampling=SamplingParams(max_tokens=30))))
        assert not answer.errors and answer.reasoning


# -- llama-cpp-python's server: prompt rendered here, /v1/completions, two-step budget ------------


def test_llama_cpp_python_thinking_on_and_off(lcs_tiny: LlamaCppPythonServer) -> None:
    session = connect(lcs_tiny.base_url)
    assert session.info is not None and session.info.architecture == "llama-cpp-python server"
    assert session.info.has_thinking  # the bundled Nemotron template, since the server keeps its own
    on = ask(session, max_tokens=20)
    assert not on.errors and on.reasoning and not on.content
    off = ask(session, max_tokens=20, thinking=False)
    assert not off.errors and not off.reasoning and off.content


def test_llama_cpp_python_two_step_budget(lcs_tiny: LlamaCppPythonServer) -> None:
    session = connect(lcs_tiny.base_url)
    before = lcs_tiny.requests("/v1/completions")
    # Short: llama-cpp-python streams random text that is not valid UTF-8 very slowly (it re-decodes).
    answer = ask(session, max_tokens=200, reasoning_budget=12, seed=3)
    assert not answer.errors
    (ended,) = answer.ended
    assert ended.by_budget and 12 <= ended.reasoning_tokens <= 200
    assert lcs_tiny.requests("/v1/completions") == before + 3
    assert answer.content or answer.finish is FinishReason.STOP


def test_llama_cpp_python_cancel_is_seen_by_the_server(lcs_demo: LlamaCppPythonServer) -> None:
    # The demo model: llama-cpp-python holds back random text that is not valid UTF-8, and only
    # notices a disconnect when it sends a piece.
    session = connect(lcs_demo.base_url, model=DEMO)
    stop = threading.Event()
    seen = 0
    request = GenerationRequest((Message("user", "Write a long story about a lighthouse keeper."),),
                                sampling=SamplingParams(max_tokens=1500, seed=1))
    for event in session.generate(request, stop):
        seen += isinstance(event, ContentDelta)
        if seen == 5:
            stop.set()
    assert seen == 5
    wait_for(lambda: "Disconnected from client" in lcs_demo.output())


def test_llama_cpp_python_demo_model_answers(lcs_demo: LlamaCppPythonServer) -> None:
    session = connect(lcs_demo.base_url, model=DEMO)
    assert session.info is not None and not session.info.has_thinking  # no template known: plain chat
    answer = ask(session, messages=(Message("user", "What is the capital of France? Answer in one word."),),
                 temperature=0.0, max_tokens=16)
    assert not answer.errors and "Paris" in answer.content
    assert all(isinstance(e, ContentDelta) for e in answer.events if isinstance(e, (ContentDelta, ReasoningDelta)))


# -- connection problems ------------------------------------------------------------------------


def test_unreachable_server() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    error = load_error(RemoteSpec(f"http://127.0.0.1:{port}/v1", retry=FAST_RETRY))
    assert error.kind == "unreachable" and f"127.0.0.1:{port}" in error.message
    assert "running" in error.action and time.monotonic() - started < 10


def test_bad_address_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="not a server address"):
        RemoteSpec("ftp://example")


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Stand-in for a busy server: 503 for the first `busy` requests, then a model listing."""

    busy = 2
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        if type(self).seen <= self.busy:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            body = b'{"error": {"message": "engine is full"}}'
        else:
            self.send_response(200)
            body = json.dumps({"data": [{"id": "m", "owned_by": "x"}]}).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.HTTPServer:
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_overloaded_server_is_retried_then_reported() -> None:
    server = _serve(_Scripted)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        _Scripted.busy, _Scripted.seen = 2, 0
        assert isinstance(list(EngineSession().load(LoadSpec(remote=RemoteSpec(url, retry=FAST_RETRY))))[-1],
                          ModelInfo)  # two 503s, then it answered
        _Scripted.busy, _Scripted.seen = 10, 0
        error = load_error(RemoteSpec(url, retry=FAST_RETRY))
        assert error.kind == "overloaded" and "3 tries" in error.message and "engine is full" in error.message
    finally:
        server.shutdown()


def test_silent_server_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        error = load_error(RemoteSpec(url, timeout_s=0.5, retry=FAST_RETRY))
        assert error.kind == "timeout" and "0.5 s" in error.message
    finally:
        listener.close()


# -- the command line ---------------------------------------------------------------------------


def test_cli_chat_through_the_server(ours: LiveServer) -> None:
    from tests.app.cli.test_cli import run

    result = run("chat", "--remote", ours.base_url, "--api-key", "s3cret", "--model", TINY, "-p", "Hello",
                 "--max-tokens", "600", "--budget", "16", "--seed", "2", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    info = next(e for e in events if e["event"] == "ModelInfo")
    assert info["backend"] == "remote" and info["path"] == ours.base_url
    kinds = [e["event"] for e in events]
    assert "ReasoningDelta" in kinds and kinds[-1] == "Finished"
    ended = next(e for e in events if e["event"] == "ReasoningEnded")
    assert ended["by_budget"] and ended["reasoning_tokens"] >= 16


def test_cli_key_from_the_environment_and_errors(ours: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.app.cli.test_cli import run

    monkeypatch.setenv("NEMOTRON_DESK_API_KEY", "s3cret")
    result = run("chat", "--remote", ours.base_url, "-p", "Hi", "--no-think", "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert f"Connected to {TINY} on {ours.base_url}" in result.stderr
    monkeypatch.setenv("NEMOTRON_DESK_API_KEY", "wrong")
    refused = run("chat", "--remote", ours.base_url, "-p", "Hi")
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr and "--api-key" in refused.stderr
    bad = run("chat", "--remote", "ftp://x", "-p", "Hi")
    assert bad.returncode == 2 and "not a server address" in bad.stderr


class _VllmLike(http.server.BaseHTTPRequestHandler):
    """Stand-in for vLLM with its nemotron_v3 reasoning parser and thinking off (no vLLM on a CPU test
    machine): the answer streams as `reasoning_content`, then comes again whole as `content`."""

    def do_GET(self) -> None:
        self._send(json.dumps({"data": [{"id": "nvidia/nemotron-3-nano", "owned_by": "vllm"}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        deltas = [{"reasoning_content": "Par"}, {"reasoning_content": "is."}, {"content": "Paris."}]
        lines = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        lines.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._send("".join(f"data: {json.dumps(x)}\n\n" for x in lines).encode() + b"data: [DONE]\n\n")

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_thinking_off_answer_sent_as_reasoning_is_shown_once_as_the_answer() -> None:
    server = _serve(_VllmLike)
    try:
        session = connect(f"http://127.0.0.1:{server.server_address[1]}/v1")
        answer = ask(session, thinking=False)
        assert not answer.errors and answer.content == "Paris." and not answer.reasoning
        assert answer.finish is FinishReason.STOP
    finally:
        server.shutdown()


class _Busy(http.server.BaseHTTPRequestHandler):
    """Stand-in for a server that queues a request for a long time before it answers (a busy
    llama-cpp-python server waits for its one model): lists a model, then holds every POST."""

    release = threading.Event()

    def do_GET(self) -> None:
        body = json.dumps({"data": [{"id": "m", "owned_by": "x"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.release.wait(30)

    def log_message(self, *args: Any) -> None:
        pass


def test_cancel_while_the_server_has_not_answered_yet() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = connect(f"http://127.0.0.1:{server.server_address[1]}/v1")
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        answer = ask(session, cancel=stop)
        assert answer.finish is FinishReason.CANCELLED and not answer.errors
        assert time.monotonic() - started < 3  # not the 120 s read timeout
    finally:
        _Busy.release.set()
        server.shutdown()


def test_answer_now_stops_the_stream_and_continues_with_the_closing(ours: LiveServer) -> None:
    """The remote engine's answer now: the server's stream is closed while it reasons, and the answer
    comes from /v1/completions on the rendered prompt plus the reasoning and the closing."""
    from engine.api import ReasoningEndCause

    session = connect(ours.base_url, api_key="s3cret")
    before = len(ours.runner.finished)
    answer_now = threading.Event()
    request = GenerationRequest(QUESTION, keep_answer_room=False,
                                sampling=SamplingParams(max_tokens=400, seed=1, ignore_eos=True))
    events, seen = [], 0
    for event in session.generate(request, None, answer_now):
        events.append(event)
        seen += isinstance(event, ReasoningDelta)
        if seen == 5:
            answer_now.set()
    answer = collect(events)
    (ended,) = answer.ended
    assert ended.cause is ReasoningEndCause.USER and not ended.by_budget
    assert ended.reasoning_tokens < 400 and answer.content.strip()
    assert answer.finish is FinishReason.LENGTH
    # two requests: the reasoning's (closed by the client; whether the server saw that before it had
    # written all its tokens depends on speed, hence a short max_tokens: the continuation waits for
    # it) and the answer's continuation
    wait_for(lambda: len(ours.runner.finished) == before + 2)
