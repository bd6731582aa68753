"""Handoff: the one way a worker thread hands a result to the UI thread.

A worker thread calls `post(fn)`; `fn` runs on the thread that owns the Handoff (the UI thread),
through a queued signal, so widgets are only ever touched there. `run(work, done)` is the usual
shape: `work()` runs in a plain thread, `done(result)` on the UI thread, with the exception instead of
the result when `work` raised. Once the Handoff is deleted (its dialog closed), late posts are dropped.

    handoff = Handoff(self)
    handoff.run(lambda: list_models(spec), self._on_listed)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from app.gui.qt import QObject, Qt, Signal

T = TypeVar("T")


class Handoff(QObject):
    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted.connect(self._call, Qt.ConnectionType.QueuedConnection)

    def post(self, fn: Callable[[], object]) -> None:
        """From any thread: run `fn` on the UI thread, soon (never inside this call)."""
        with contextlib.suppress(RuntimeError):  # the Handoff's C++ side is gone: nobody is left to tell
            self._posted.emit(fn)

    def run(self, work: Callable[[], T], done: Callable[[T | Exception], object],
            name: str = "handoff") -> threading.Thread:
        """Run `work` in a new thread; `done` gets its result (or the exception it raised) on the UI thread."""

        def target() -> None:
            result: T | Exception
            try:
                result = work()
            except Exception as exc:  # handed to `done`, which decides what each kind means
                result = exc
            self.post(lambda: done(result))

        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    @staticmethod
    def _call(fn: Callable[[], object]) -> None:
        fn()
