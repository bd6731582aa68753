"""EngineClient: the front ends' only door to the engine, which runs in a worker process.

Every front end (CLI, GUI, server) loads models and streams answers through this class. Events
arrive as the worker produces them. `cancel()` may be called from any thread: the first call sets a
flag the generation loop checks before every token; a second call while the answer is still running
kills the worker. `answer_now()`, from any thread too, sets a second shared flag: the loop ends the
reasoning before its next token by feeding the closing sequence, and the model answers. When the
worker dies (a crash, an out-of-memory kill) the stream ends with an Error
that says so, and the next request starts a fresh worker and reloads the same model; a worker that
died while idle is noticed before the next command and takes the same path.

A command is pickled before a byte of it goes to the worker: one that cannot be (a value nested too
deep, an object that will not pickle) becomes an Error event and nothing waits for a reply that
cannot come. A write that fails half-way leaves the pipe unusable, so that worker is discarded.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from collections.abc import Generator, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any

from engine.api import (
    ContextCount,
    EngineEvent,
    Error,
    Finished,
    FinishReason,
    GenerationRequest,
    LoadSpec,
    ModelInfo,
)
from engine.worker.main import Done, serve

_POLL_S = 0.05


def describe_exit(exitcode: int | None) -> Error:
    """Turn a dead worker's exit code into a message a person can act on."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return Error(
                "The engine process was killed (SIGKILL). This usually means the system ran out of memory.",
                "Close other programs, or load the model with a shorter context, fewer GPU layers or a smaller quant.",
                "crash",
            )
        what = {"SIGSEGV": "a segmentation fault", "SIGABRT": "an abort", "SIGBUS": "a bus error"}.get(name, name)
        return Error(f"The engine process crashed ({what}).",
                     "Send your message again to restart it with the same model. If it happens again, try fewer "
                     "GPU layers, a smaller context or a smaller quant.", "crash")
    return Error(f"The engine process stopped unexpectedly (exit code {exitcode}).",
                 "Send your message again to restart it with the same model.", "crash")


def _unsendable(command: str, exc: Exception) -> Error:
    what = "request" if command == "generate" else f"'{command}' command"
    if isinstance(exc, RecursionError):
        return Error(f"The {what} is nested too deeply to hand to the engine.",
                     "Flatten the tool definitions or arguments; nothing was sent, the engine is unchanged.",
                     "bad_request")
    return Error(f"The {what} cannot be handed to the engine ({exc.__class__.__name__}: {exc}).",
                 "Nothing was sent and the engine is unchanged; please report this with the request.",
                 "bad_request")


class EngineClient:
    """Owns the worker process. Methods are for one caller thread, except `cancel()`, `answer_now()`
    and `terminate()`."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._cancel = self._ctx.Event()
        self._answer_now = self._ctx.Event()
        self._busy = threading.Event()
        # One command at a time, whichever thread asks (the GUI and the local server share one
        # engine); the others wait their turn. A plain Lock: a generator may be closed elsewhere.
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread whose command is running
        self._cancel_requests = 0
        self._killed_by_user = False
        self._spec: LoadSpec | None = None
        self.model: ModelInfo | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def worker_pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def _ensure_worker(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._discard_worker()
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=serve, args=(child, self._cancel, self._answer_now),
                                    name="nemotron-engine", daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent

    def _discard_worker(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
        self._process = self._conn = None

    def close(self) -> None:
        """End the worker (its memory, GPU memory included, goes with it)."""
        if self._conn is not None and self._process is not None and self._process.is_alive():
            try:
                self._conn.send(("shutdown", None))
                self._process.join(5)
            except OSError:
                pass
        self._discard_worker()
        self.model = None

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ------------------------------------------------------------------------------

    def load(self, spec: LoadSpec) -> Iterator[EngineEvent]:
        """Load a model in the worker; yields LoadProgress, then ModelInfo or Error."""
        self._spec = spec
        self.model = None
        yield from self._command("load", spec)

    def unload(self) -> None:
        """Free the model by ending the worker: the only way to be sure the GPU memory is back."""
        with self._lock:
            self._spec = None
            self.close()

    def generate(self, request: GenerationRequest) -> Iterator[EngineEvent]:
        """Stream the events of one answer. Ends with Finished or Error.

        After a crash the same model is first reloaded in a fresh worker (its progress events come
        first in the stream).
        """
        yield from self._command("generate", request)

    def count_tokens(self, request: GenerationRequest) -> ContextCount | Error:
        """How `request`'s prompt would fill the loaded context: real tokens of the loaded model through
        its chat template, split into history, old reasoning and the current turn (ContextCount).

        Quick (the template is rendered and tokenized, nothing runs on the model), but it waits its
        turn behind a running command: ask while the engine is idle. Never reloads a model.
        """
        result: ContextCount | Error = Error("The engine did not answer the count.", "Try again.", "internal")
        for event in self._command("count", request):
            if isinstance(event, ContextCount | Error):
                result = event
        return result

    def cancel(self, owner: int | None = None) -> None:
        """Stop the running answer: first within one token, a second call by killing the worker.

        `owner`: a thread ident; when given, only that thread's answer is stopped (a request still
        waiting for its turn must not stop someone else's).
        """
        if not self._busy.is_set() or (owner is not None and owner != self._owner):
            return
        self._cancel_requests += 1
        self._cancel.set()
        if self._cancel_requests >= 2 and self._process is not None:
            self._killed_by_user = True
            self._process.kill()

    def answer_now(self, owner: int | None = None) -> bool:
        """End the running answer's reasoning at the next token boundary; the model then answers.

        Returns whether a generation was running to take it (`owner` as for cancel). A reasoning that
        is already over is left as it is. ReasoningEnded then says ReasoningEndCause.USER.
        """
        if not self._busy.is_set() or (owner is not None and owner != self._owner):
            return False
        self._answer_now.set()
        return True

    def terminate(self) -> None:
        """Kill the worker now, from any thread (a server shutting down while an answer runs).

        The thread reading the answer sees the worker gone and ends its stream as cancelled; the
        next request starts a fresh worker and reloads the model.
        """
        process = self._process
        if process is not None and process.is_alive():
            self._killed_by_user = True
            process.kill()

    # -- transport -----------------------------------------------------------------------------

    def _command(self, command: str, payload: Any) -> Iterator[EngineEvent]:
        with self._lock:
            self._owner = threading.get_ident()
            self._cancel.clear()
            self._answer_now.clear()
            self._cancel_requests = 0
            self._killed_by_user = False
            self._forget_dead_worker()
            try:
                if command == "generate" and self.model is None:
                    if self._spec is None:
                        yield Error("No model is loaded.", "Load a model first.", "no_model")
                        return
                    if not (yield from self._load(self._spec)):  # a fresh worker after a crash
                        return
                if command == "count" and (self.model is None or self._conn is None):
                    yield Error("No model is loaded.", "Load a model first.", "no_model")
                elif command == "load":
                    yield from self._load(payload)
                else:
                    yield from self._exchange(command, payload)
            finally:
                self._owner = None

    def _forget_dead_worker(self) -> None:
        """A worker that died between commands (killed, crashed while idle) is not written to: the
        model is marked gone, so a generate reloads it in a fresh worker."""
        if self._process is not None and not self._process.is_alive():
            self._discard_worker()
            self.model = None

    def _load(self, spec: LoadSpec) -> Generator[EngineEvent, None, bool]:
        self._ensure_worker()
        for event in self._exchange("load", spec):
            if isinstance(event, ModelInfo):
                self.model = event
            yield event
        return self.model is not None

    def _exchange(self, command: str, payload: Any) -> Iterator[EngineEvent]:
        assert self._conn is not None and self._process is not None
        conn, process = self._conn, self._process
        try:
            message = ForkingPickler.dumps((command, payload))
        except Exception as exc:  # RecursionError, PicklingError, TypeError: nothing was sent
            yield _unsendable(command, exc)
            return
        self._busy.set()
        complete = False
        try:
            try:
                conn.send_bytes(message)
            except BaseException as exc:
                # Part of the message may be in the pipe: the worker can never read a whole one.
                complete = True
                if not isinstance(exc, OSError):
                    self._discard_worker()
                    self.model = None
                    raise
                yield from self._worker_died(process)
                return
            while True:
                batch = self._receive(conn, process)
                if batch is None:
                    complete = True
                    yield from self._worker_died(process)
                    return
                for event in batch:
                    if isinstance(event, Done):
                        complete = True
                        return
                    yield event
        finally:
            if not complete:
                # The caller stopped reading early: stop the command and read what is left of it, or
                # the next command would read this one's last events as its own.
                self._cancel.set()
                self._drain(conn, process)
            self._busy.clear()

    def _receive(self, conn: Connection, process: BaseProcess) -> list[Any] | None:
        """The worker's next batch of events; None when the worker is gone."""
        try:
            while not conn.poll(_POLL_S):
                if not process.is_alive():
                    return None
            batch: list[Any] = conn.recv()
            return batch
        except (EOFError, OSError):
            return None

    def _drain(self, conn: Connection, process: BaseProcess) -> None:
        while (batch := self._receive(conn, process)) is not None:
            if any(isinstance(event, Done) for event in batch):
                return
        self._discard_worker()
        self.model = None

    def _worker_died(self, process: BaseProcess) -> Iterator[EngineEvent]:
        process.join(5)
        exitcode = process.exitcode
        self._discard_worker()
        self.model = None  # the next request reloads self._spec in a fresh worker
        if self._killed_by_user:
            yield Finished(FinishReason.CANCELLED)
        else:
            yield describe_exit(exitcode)
