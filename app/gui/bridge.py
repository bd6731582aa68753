"""EngineBridge: the GUI's only door to the engine (EngineJobs over EngineClient and its worker process).

Signals:
    loadProgress(str stage, float fraction)   a loading step; fraction is -1 when unknown
    loaded(object ModelInfo)                  a model is ready
    failed(object Error)                      loading or generating failed
    events(list)                              engine events of one answer, batched once per frame
    busyChanged(bool)                         an answer or a load started or ended
    counted(object)                           a context count: ContextCount, or an Error / exception

The job's thread only wakes the UI thread through a Handoff (at most one wake waiting); the UI thread
takes everything that arrived, at most once a frame, so the UI thread never waits on the engine and
repaints at most once a frame.
"""

from __future__ import annotations

import threading
import time

from app.engine_jobs import EngineJobs
from app.gui.handoff import Handoff
from app.gui.qt import QObject, QTimer, Signal
from engine.api import EngineEvent, Error, GenerationRequest, LoadProgress, LoadSpec, ModelInfo
from engine.client import EngineClient

FRAME_MS = 16


class EngineBridge(QObject):
    loadProgress = Signal(str, float)
    loaded = Signal(object)
    failed = Signal(object)
    events = Signal(list)
    busyChanged = Signal(bool)
    counted = Signal(object)

    def __init__(self, client: EngineClient | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._handoff = Handoff(self)
        self._jobs = EngineJobs(client, self._wake)
        self.client = self._jobs.client
        self._woken = threading.Event()  # a wake is on its way to the UI thread
        self._last_drain = 0.0
        self._frame = QTimer(self)  # UI thread only: holds a drain back to the next frame
        self._frame.setSingleShot(True)
        self._frame.timeout.connect(self._drain)

    @property
    def model(self) -> ModelInfo | None:
        return self._jobs.model

    @model.setter
    def model(self, info: ModelInfo | None) -> None:
        self._jobs.model = info

    @property
    def busy(self) -> bool:
        return self._jobs.busy

    def load(self, spec: LoadSpec) -> bool:
        return self._started(self._jobs.load(spec))

    def generate(self, request: GenerationRequest) -> bool:
        return self._started(self._jobs.generate(request))

    def count(self, request: GenerationRequest) -> None:
        """Count `request`'s prompt in the loaded model's tokens (`counted` brings the answer). Its own
        thread: no answer or load waits for it, and it does not make the window busy; the engine runs
        one command at a time, so ask while it is idle (a count asked meanwhile waits its turn)."""
        self._handoff.run(lambda: self.client.count_tokens(request), self.counted.emit, "context-count")

    def stop(self) -> None:
        """Stop this window's answer now (a second call kills the engine process)."""
        self._jobs.stop()

    def answer_now(self) -> bool:
        """End this window's reasoning now; the model answers (False: no answer is running)."""
        return self._jobs.answer_now()

    def shutdown(self) -> None:
        self._frame.stop()
        self._jobs.shutdown()

    def _started(self, started: bool) -> bool:
        if started:
            self.busyChanged.emit(True)
        return started

    def _wake(self) -> None:  # the job's thread
        if not self._woken.is_set():
            self._woken.set()
            self._handoff.post(self._on_wake)

    def _on_wake(self) -> None:
        wait_ms = FRAME_MS - (time.monotonic() - self._last_drain) * 1000
        if wait_ms > 0:
            if not self._frame.isActive():
                self._frame.start(int(wait_ms) + 1)
        else:
            self._drain()

    def _drain(self) -> None:
        self._woken.clear()  # before taking: what arrives after this wakes again
        self._last_drain = time.monotonic()
        batch, ended = self._jobs.take()
        answer: list[EngineEvent] = []
        for event in batch:
            if isinstance(event, LoadProgress):
                self.loadProgress.emit(event.stage, -1.0 if event.fraction is None else event.fraction)
            elif isinstance(event, ModelInfo):
                self.loaded.emit(event)
            elif isinstance(event, Error):
                self.failed.emit(event)
            answer.append(event)
        if answer:
            self.events.emit(answer)
        if ended:
            self.busyChanged.emit(False)
