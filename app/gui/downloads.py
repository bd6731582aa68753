"""DownloadJob: one model download running in a plain thread, reported on the UI thread.

Signals:
    progress(object Progress)      at most ten times a second
    finished(str path)             verified and placed; the path to load
    failed(object EngineError)     what happened and what to do (disk, auth, damaged file, network)
    stopped(bool cancelled)        paused (partial file kept) or cancelled (partial file deleted)

The job belongs to the main window (its Downloads helper), not to the wizard, so closing the wizard
does not stop it. The thread hands its progress and its outcome to the UI thread through a Handoff
(app/gui/handoff.py), so no signal is ever emitted from the download thread.
"""

from __future__ import annotations

import threading
import time

from app.failures import describe
from app.gui.handoff import Handoff
from app.gui.qt import QObject, Signal
from engine.errors import EngineError
from engine.services.hub.catalog import Variant
from engine.services.hub.download import Control, Downloader, DownloadStopped, Progress

PROGRESS_S = 0.1  # at most ten progress reports a second


class DownloadJob(QObject):
    progress = Signal(object)
    finished = Signal(str)
    failed = Signal(object)
    stopped = Signal(bool)

    def __init__(self, downloader: Downloader, variant: Variant, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.downloader = downloader
        self.variant = variant
        self.last: Progress | None = None
        self.state = "idle"  # idle, running, paused, failed, cancelled, done
        self.path = ""
        self._control = Control()
        self._thread: threading.Thread | None = None
        self._outcome: tuple[str, object] | None = None
        self._lock = threading.Lock()
        self._last_post = 0.0
        self._handoff = Handoff(self)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start, or resume after a pause or a failure (the partial file is continued)."""
        if self._thread is not None:
            return
        self._control = Control()
        self.state = "running"
        self._thread = threading.Thread(target=self._run, name="model-download", daemon=True)
        self._thread.start()

    resume = start

    def pause(self) -> None:
        self._control.pause()

    def cancel(self) -> None:
        if self._thread is not None:
            self._control.cancel()
        else:  # paused or failed: nothing runs, so delete the partial files here
            self.downloader.discard(self.variant)
            self.state = "cancelled"
            self.stopped.emit(True)

    def wait(self, timeout: float | None = None) -> None:
        """For shutdown: let the thread end (it stops at the next chunk after pause())."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._deliver()

    def _run(self) -> None:
        outcome: tuple[str, object]
        try:
            path = self.downloader.download(self.variant, self._on_progress, self._control)
            outcome = ("done", str(path))
        except DownloadStopped as stop:
            outcome = ("cancelled" if stop.cancelled else "paused", stop.cancelled)
        except EngineError as exc:
            outcome = ("failed", exc)
        except Exception as exc:  # this thread must report whatever it was: by type (a bug is logged)
            failure = describe(exc, "go on downloading", "press Resume; fetched bytes are kept")
            outcome = ("failed", EngineError(failure.message, failure.action))
        with self._lock:
            self._outcome = outcome
        self._handoff.post(self._deliver)

    def _on_progress(self, progress: Progress) -> None:  # the download thread
        with self._lock:
            self.last = progress
        now = time.monotonic()
        if now - self._last_post >= PROGRESS_S:
            self._last_post = now
            self._handoff.post(self._show_progress)

    def _show_progress(self) -> None:
        with self._lock:
            last = self.last
        if last is not None and self._thread is not None:
            self.progress.emit(last)

    def _deliver(self) -> None:
        """The outcome, once (a shutdown's wait() may take it before the thread's post arrives)."""
        with self._lock:
            last, outcome = self.last, self._outcome
            self._outcome = None
        if outcome is None:
            return
        if last is not None:
            self.progress.emit(last)
        if self._thread is not None:
            self._thread.join()
        self._thread = None
        self.state, value = outcome
        if self.state == "done":
            self.path = str(value)
            self.finished.emit(self.path)
        elif self.state == "failed":
            self.failed.emit(value)
        else:
            self.stopped.emit(bool(value))
