"""The engine in its own process: streaming, cancel, crashes turned into messages, restart."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from engine.api import (
    ContentDelta,
    Error,
    FinishReason,
    GenerationRequest,
    LlamaLoadOptions,
    LoadSpec,
    Message,
    ModelInfo,
    SamplingParams,
)
from engine.client import EngineClient
from tests import REPO_ROOT
from tests.engine.helpers import collect

LONG = GenerationRequest((Message("user", "Tell me a long story about a lighthouse."),),
                         sampling=SamplingParams(temperature=0.0, max_tokens=400, ignore_eos=True))
PARIS = GenerationRequest((Message("user", "What is the capital of France? Answer in one word."),),
                          thinking=False, sampling=SamplingParams(temperature=0.0, max_tokens=16))


@pytest.fixture(scope="module")
def client(demo_gguf: Path):  # type: ignore[no-untyped-def]
    with EngineClient() as c:
        events = list(c.load(LoadSpec(str(demo_gguf), LlamaLoadOptions(n_ctx=1024, n_threads=2, n_gpu_layers=0))))
        assert isinstance(events[-1], ModelInfo), events
        yield c


def test_answer_streams_from_the_worker(client: EngineClient) -> None:
    answer = collect(client.generate(PARIS))
    assert "Paris" in answer.content
    assert client.worker_pid is not None and client.worker_pid != os.getpid()


def _stream_then(client: EngineClient, action) -> list:  # type: ignore[no-untyped-def]
    """Start LONG; after the third answer delta, run `action` once; return all events."""
    events = []
    deltas = 0
    for event in client.generate(LONG):
        events.append(event)
        if isinstance(event, ContentDelta):
            deltas += 1
            if deltas == 3:
                action()
    return events


def test_cancel_stops_the_answer_quickly(client: EngineClient) -> None:
    answer = collect(_stream_then(client, client.cancel))
    assert answer.finish is FinishReason.CANCELLED
    assert answer.usage.answer_tokens < 40  # honoured at once, not after 400 tokens
    assert client.worker_pid is not None  # the first cancel keeps the worker


def test_cancel_from_another_thread(client: EngineClient) -> None:
    started = threading.Event()
    timer = threading.Thread(target=lambda: (started.wait(30), client.cancel()))
    timer.start()
    events = []
    for event in client.generate(LONG):
        events.append(event)
        started.set()
    timer.join()
    assert collect(events).finish is FinishReason.CANCELLED


def test_second_cancel_kills_the_worker_and_the_next_request_works(client: EngineClient) -> None:
    pid = client.worker_pid
    answer = collect(_stream_then(client, lambda: (client.cancel(), client.cancel())))
    assert answer.finish is FinishReason.CANCELLED
    assert not answer.errors
    again = collect(client.generate(PARIS))
    assert "Paris" in again.content
    assert client.worker_pid not in (None, pid)


@pytest.mark.parametrize(("sig", "words"), [(signal.SIGSEGV, "segmentation fault"), (signal.SIGKILL, "out of memory")])
def test_worker_crash_becomes_an_error_and_the_next_request_restarts(
        client: EngineClient, sig: signal.Signals, words: str) -> None:
    pid = client.worker_pid
    assert pid is not None
    answer = collect(_stream_then(client, lambda: os.kill(pid, sig)))
    assert len(answer.errors) == 1
    error: Error = answer.errors[0]
    assert error.kind == "crash" and words in error.message and error.action
    again = collect(client.generate(PARIS))
    assert "Paris" in again.content, again.events
    assert client.worker_pid not in (None, pid)


def test_load_error_comes_through_the_worker(tmp_path: Path) -> None:
    with EngineClient() as c:
        events = list(c.load(LoadSpec(str(tmp_path / "missing.gguf"))))
        assert isinstance(events[-1], Error) and "No model file" in events[-1].message
        answer = collect(c.generate(PARIS))
        assert answer.errors  # still no model: said again, not a hang


def test_generate_without_a_model() -> None:
    with EngineClient() as c:
        answer = collect(c.generate(PARIS))
        assert [e.kind for e in answer.errors] == ["no_model"]


def test_a_stream_left_early_leaves_the_engine_clean(demo_gguf: Path) -> None:
    with EngineClient() as c:
        spec = LoadSpec(str(demo_gguf), LlamaLoadOptions(n_ctx=1024, n_threads=2, n_gpu_layers=0))
        info = next(e for e in c.load(spec) if isinstance(e, ModelInfo))  # stop reading at ModelInfo
        assert info.is_demo
        stream = c.generate(LONG)
        for event in stream:
            if isinstance(event, ContentDelta):
                break
        stream.close()  # the answer is abandoned mid-way: it is cancelled and its tail read
        answer = collect(c.generate(PARIS))
        assert "Paris" in answer.content and answer.finish is FinishReason.STOP


def test_hugging_face_folder_in_the_worker_streams_and_cancels(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    """The torch backend behind the same process boundary: progress events, a stream, a cancel."""
    from engine.api import LoadProgress, ReasoningDelta, TorchLoadOptions

    with EngineClient() as c:
        events = list(c.load(LoadSpec(str(tiny_nemotron.hf_dir), torch=TorchLoadOptions(device="cpu", n_threads=1))))
        info = events[-1]
        assert isinstance(info, ModelInfo) and info.backend == "torch" and info.device == "CPU float32", events
        assert any(isinstance(e, LoadProgress) and e.stage.startswith("Loading weights") for e in events)
        request = GenerationRequest((Message("user", "Think."),),
                                    sampling=SamplingParams(seed=1, max_tokens=2000, ignore_eos=True))
        seen = []
        for event in c.generate(request):
            seen.append(event)
            if sum(isinstance(e, ReasoningDelta) for e in seen) == 5:
                c.cancel()
        answer = collect(seen)
        assert answer.finish is FinishReason.CANCELLED and answer.usage.completion_tokens < 100


class _WontPickle(str):
    """Text that refuses to be pickled, as a value nested ~500 levels deep does (RecursionError)."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise RecursionError("maximum recursion depth exceeded while pickling an object")


def test_a_request_that_cannot_be_sent_is_an_error_not_a_hang(client: EngineClient) -> None:
    """Before the fix the client waited for a reply to a command the worker never got, for good,
    holding the engine lock: every later request hung too."""
    pid = client.worker_pid
    request = GenerationRequest((Message("user", _WontPickle("Hello")),), sampling=SamplingParams(max_tokens=4))
    result: list[list] = []  # type: ignore[type-arg]
    sender = threading.Thread(target=lambda: result.append(list(client.generate(request))), daemon=True)
    sender.start()
    sender.join(120)  # a hang guard only: the answer is immediate
    assert not sender.is_alive(), "the client waited for a reply to a command it never sent"
    (events,) = result
    assert [type(e) for e in events] == [Error], events
    assert events[0].kind == "bad_request" and "nested too deeply" in events[0].message
    assert "nothing was sent" in events[0].action
    again = collect(client.generate(PARIS))
    assert "Paris" in again.content
    assert client.worker_pid == pid  # the worker never saw the request: it was not disturbed


def test_an_unexpected_failure_in_the_worker_has_no_traceback() -> None:
    from engine.worker.main import internal_error

    try:
        raise UnicodeEncodeError("utf-8", "a\ud800b", 1, 2, "surrogates not allowed")
    except UnicodeEncodeError as exc:
        error = internal_error(exc)
    text = str(error)
    assert "UnicodeEncodeError" in text and "report" in text and error.kind == "internal"
    assert "Traceback" not in text and ".py" not in text and "\n" not in text


ORPHAN_PARENT = """
import multiprocessing as mp, sys, time
from tests.engine.client.test_worker import busy_worker
child = mp.get_context("spawn").Process(target=busy_worker, daemon=False)
child.start()
print(child.pid, flush=True)
time.sleep(600)
"""


def busy_worker() -> None:
    """What a worker busy in a long computation looks like: it neither reads nor writes its pipe."""
    from engine.worker.main import watch_parent

    watch_parent()
    while True:
        pass


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_busy_worker_ends_when_its_app_is_killed() -> None:
    """After a forced exit of the app, its worker must not live on at 100% CPU."""
    import subprocess
    import sys
    import time

    root = REPO_ROOT
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT], stdout=subprocess.PIPE, text=True, cwd=root)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    try:
        parent.kill()
        parent.wait(30)
        deadline = time.monotonic() + 60  # a hang guard: the watch ends it at once
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), "the worker outlived its app"
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_answer_now_reaches_the_running_loop(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    """EngineClient.answer_now() from another thread, while the worker streams the tiny Nemotron's
    reasoning: the reasoning ends (cause user) and the answer follows in the same generation."""
    from engine.api import ReasoningDelta, ReasoningEndCause, ReasoningEnded

    with EngineClient() as c:
        events = list(c.load(LoadSpec(str(tiny_nemotron.gguf_path),
                                      LlamaLoadOptions(n_ctx=4096, n_threads=2, n_gpu_layers=0))))
        assert isinstance(events[-1], ModelInfo), events
        assert not c.answer_now()  # nothing running: nothing to end
        request = GenerationRequest((Message("user", "Why is the sky blue?"),), keep_answer_room=False,
                                    sampling=SamplingParams(seed=2, max_tokens=3000, ignore_eos=True))
        seen, taken = 0, []
        out = []
        for event in c.generate(request):
            out.append(event)
            seen += isinstance(event, ReasoningDelta)
            if seen == 3 and not taken:
                thread = threading.Thread(target=lambda: taken.append(c.answer_now()))
                thread.start()
                thread.join()
        answer = collect(out)
        (ended,) = [e for e in out if isinstance(e, ReasoningEnded)]
        assert taken == [True] and ended.cause is ReasoningEndCause.USER
        assert ended.reasoning_tokens < 3000 and answer.usage.answer_tokens == 3000 - ended.reasoning_tokens
        # the next generation starts with the flag down: it reasons as usual
        again = collect(c.generate(GenerationRequest(request.messages, keep_answer_room=False,
                                                     sampling=SamplingParams(seed=2, max_tokens=40, ignore_eos=True))))
        assert not again.ended and again.usage.reasoning_tokens == 40
