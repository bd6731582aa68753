"""The worker process: the engine's native code, weights and GPU memory live here, not in the app.

A crash, an out-of-memory kill or a hung kernel ends this process only; the client in the app turns
that into an Error event and starts a fresh worker for the next request. Unloading a model really
frees its memory because the process that held it can simply end.
"""

from __future__ import annotations

import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from engine.api import Error
from engine.session import EngineSession


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


def serve(conn: Connection, cancel: Any) -> None:
    """The worker's main loop: one command at a time, events streamed back as they happen."""
    # Ctrl-C in a terminal reaches the whole process group; the app decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
            _run(session, command, payload, out, cancel)
        except (BrokenPipeError, EOFError):
            break
        except Exception as exc:  # a bug of ours: report it, keep the worker usable
            out.send(Error(f"Internal engine error: {exc.__class__.__name__}: {exc}",
                           "Please report this with the log. " + traceback.format_exc(limit=3), "internal"))
        out.send(Done())
        out.flush()
    session.unload()


def _run(session: EngineSession, command: str, payload: Any, out: EventBatcher, cancel: Any) -> None:
    if command == "load":
        for event in session.load(payload):
            out.send(event)
            out.flush()  # loading is slow and rare: every step is worth showing at once
    elif command == "generate":
        for event in session.generate(payload, cancel):
            out.send(event)
    elif command == "unload":
        session.unload()
    else:
        out.send(Error(f"Unknown engine command {command!r}.", "", "internal"))
