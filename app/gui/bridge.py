"""EngineBridge: the GUI's only door to the engine (through EngineClient and its worker process).

Signals:
    loadProgress(str stage, float fraction)   a loading step; fraction is -1 when unknown
    loaded(object ModelInfo)                  a model is ready
    failed(object Error)                      loading or generating failed
    events(list)                              engine events of one answer, batched once per frame
    busyChanged(bool)                         an answer or a load started or ended

Engine calls block, so each runs in a plain thread; its events go into a queue that a 16 ms timer on
the UI thread drains, so the UI thread never waits on the engine and repaints at most once a frame.
Stop is a direct call (an atomic flag in the engine), never a queued slot.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

from app.failures import describe
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

    def __init__(self, client: EngineClient | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client or EngineClient()
        self.model: ModelInfo | None = None
        self._pending: deque[EngineEvent | None] = deque()  # None marks the end of a job
        self._thread: threading.Thread | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._drain)

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def load(self, spec: LoadSpec) -> bool:
        return self._start(lambda: self.client.load(spec))

    def generate(self, request: GenerationRequest) -> bool:
        return self._start(lambda: self.client.generate(request))

    def stop(self) -> None:
        """Stop this window's answer now (a second call kills the engine process)."""
        thread = self._thread
        if thread is not None:
            self.client.cancel(owner=thread.ident)

    def shutdown(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(10)
        self._timer.stop()
        self.client.close()

    def _start(self, job: Callable[[], Iterator[EngineEvent]]) -> bool:
        if self._thread is not None:
            return False
        self._thread = threading.Thread(target=self._run, args=(job,), name="engine-bridge", daemon=True)
        self._thread.start()
        self._timer.start()
        self.busyChanged.emit(True)
        return True

    def _run(self, job: Callable[[], Iterator[EngineEvent]]) -> None:
        try:
            for event in job():
                self._pending.append(event)
        except Exception as exc:  # a bug of ours: still end the job, say so briefly, log the traceback
            failure = describe(exc, "finish this")
            self._pending.append(Error(failure.message, failure.action, "internal" if failure.bug else "error"))
        finally:
            self._pending.append(None)

    def _drain(self) -> None:
        batch: list[EngineEvent] = []
        ended = False
        while self._pending:
            event = self._pending.popleft()
            if event is None:
                ended = True
                break
            batch.append(event)
        answer: list[EngineEvent] = []
        for event in batch:
            if isinstance(event, LoadProgress):
                self.loadProgress.emit(event.stage, -1.0 if event.fraction is None else event.fraction)
            elif isinstance(event, ModelInfo):
                self.model = event
                self.loaded.emit(event)
            elif isinstance(event, Error):
                self.failed.emit(event)
            answer.append(event)
        if answer:
            self.events.emit(answer)
        if ended:
            if self._thread is not None:
                self._thread.join()
            self._thread = None
            self._timer.stop()
            self.busyChanged.emit(False)
