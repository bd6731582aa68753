"""The worker process: the engine's native code, weights and GPU memory live here, not in the app.

A crash, an out-of-memory kill or a hung kernel ends this process only; the client in the app turns
that into an Error event and starts a fresh worker for the next request. Unloading a model really
frees its memory because the process that held it can simply end. The worker also ends when the app
goes (even killed, even while the worker is busy), so it never lives on alone at full CPU.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from engine.api import Error
from engine.worker.session import EngineSession

log = logging.getLogger(__name__)

#: The exit code of a worker whose app went away.
ORPHANED_EXIT = 3


@dataclass(frozen=True)
class Done:
    """Sent after the last event of every command."""


#: Events are sent at most this often (in seconds), in batches: one pipe write per frame rather than
#: one per token keeps the worker's cost per token near zero at GPU speeds (hundreds of tokens/s).
BATCH_INTERVAL_S = 0.008


class EventBatcher:
    """Collects events and sends them as lists, at least every BATCH_INTERVAL_S and at the end."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pending: list[Any] = []
        self._last_send = 0.0

    def send(self, event: Any) -> None:
        self._pending.append(event)
        now = time.monotonic()
        if now - self._last_send >= BATCH_INTERVAL_S:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._pending:
            self._conn.send(self._pending)
            self._pending = []
        self._last_send = time.monotonic() if now is None else now


def watch_parent() -> None:
    """End this process as soon as the process that started it is gone.

    An idle worker notices through its pipe, but a busy one (a long prefill, a template that renders
    for a long time) would not write or read for a while. multiprocessing's sentinel for the parent
    becomes ready when the parent ends, however it ends. (PR_SET_PDEATHSIG is not used: Linux fires
    it when the *thread* that started the worker ends, and the app starts workers from short-lived
    threads.)
    """
    parent = mp.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def wait_for_parent() -> None:
        wait([sentinel])
        os._exit(ORPHANED_EXIT)  # no clean-up to wait for: the app that wanted the results is gone

    threading.Thread(target=wait_for_parent, name="parent-watch", daemon=True).start()


def serve(conn: Connection, cancel: Any, answer_now: Any = None) -> None:
    """The worker's main loop: one command at a time, events streamed back as they happen.

    `cancel` and `answer_now` are events shared with the app: the running generation reads them
    before every token, so neither waits for the pipe or for the command to end."""
    watch_parent()
    # Ctrl-C in a terminal reaches the whole process group; the app decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGQUIT"):  # Ctrl-\\ too: the terminal chat's "answer now" key
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    session = EngineSession()
    while True:
        try:
            command, payload = conn.recv()
        except (EOFError, OSError):
            break  # the app went away
        if command == "shutdown":
            break
        out = EventBatcher(conn)
        try:
            _run(session, command, payload, out, cancel, answer_now)
        except (BrokenPipeError, EOFError):
            break
        except Exception as exc:  # a bug of ours: report it, keep the worker usable
            # The traceback goes to the log (stderr) only: events reach dialogs and HTTP bodies.
            log.error("Internal engine error in %r", command, exc_info=True)
            out.send(internal_error(exc))
        out.send(Done())
        out.flush()
    session.unload()


def internal_error(exc: BaseException) -> Error:
    """A short message for a bug of ours: no traceback, no file paths, at most one line of detail."""
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return Error(f"Internal engine error ({exc.__class__.__name__}{': ' + detail if detail else ''}).",
                 "Please report this with the log (the details are printed there). Try again, or reload the model.",
                 "internal")


def _run(session: EngineSession, command: str, payload: Any, out: EventBatcher, cancel: Any,
         answer_now: Any = None) -> None:
    if command == "load":
        for event in session.load(payload):
            out.send(event)
            out.flush()  # loading is slow and rare: every step is worth showing at once
    elif command == "generate":
        for event in session.generate(payload, cancel, answer_now):
            out.send(event)
    elif command == "count":
        out.send(session.count(payload))
    elif command == "unload":
        session.unload()
    else:
        out.send(Error(f"Unknown engine command {command!r}.", "", "internal"))
