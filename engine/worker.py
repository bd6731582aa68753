"""The worker process: the engine's native code, weights and GPU memory live here, not in the app.

A crash, an out-of-memory kill or a hung kernel ends this process only; the client in the app turns
that into an Error event and starts a fresh worker for the next request. Unloading a model really
frees its memory because the process that held it can simply end.
"""

from __future__ import annotations

import signal
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from engine.api import Error
from engine.session import EngineSession


@dataclass(frozen=True)
class Done:
    """Sent after the last event of every command."""


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
        try:
            _run(session, command, payload, conn, cancel)
        except (BrokenPipeError, EOFError):
            break
        except Exception as exc:  # a bug of ours: report it, keep the worker usable
            conn.send(Error(f"Internal engine error: {exc.__class__.__name__}: {exc}",
                            "Please report this with the log. " + traceback.format_exc(limit=3), "internal"))
        conn.send(Done())
    session.unload()


def _run(session: EngineSession, command: str, payload: Any, conn: Connection, cancel: Any) -> None:
    if command == "load":
        for event in session.load(payload):
            conn.send(event)
    elif command == "generate":
        for event in session.generate(payload, cancel):
            conn.send(event)
    elif command == "unload":
        session.unload()
    else:
        conn.send(Error(f"Unknown engine command {command!r}.", "", "internal"))
