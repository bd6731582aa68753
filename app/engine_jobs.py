"""EngineJobs: engine calls (load, generate) run one at a time in a plain thread, without Qt.

The calls of EngineClient block, so each job runs in a thread; its events wait in a queue until the
owner takes them (`take()`, on the owner's thread). `wake` is called from the job's thread whenever
events arrive (the GUI's EngineBridge hands that to the UI thread; a test may ignore it and poll).
Stop is a direct call (an atomic flag in the engine), never queued behind the events.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

from app.failures import describe
from engine.api import EngineEvent, Error, GenerationRequest, LoadSpec, ModelInfo
from engine.client import EngineClient


class EngineJobs:
    def __init__(self, client: EngineClient | None = None, wake: Callable[[], None] = lambda: None) -> None:
        self.client = client or EngineClient()
        self.model: ModelInfo | None = None
        self._wake = wake
        self._pending: deque[EngineEvent | None] = deque()  # None marks the end of a job
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def load(self, spec: LoadSpec) -> bool:
        return self.start(lambda: self.client.load(spec))

    def generate(self, request: GenerationRequest) -> bool:
        return self.start(lambda: self.client.generate(request))

    def stop(self) -> None:
        """Stop this owner's job now (a second call kills the engine process)."""
        thread = self._thread
        if thread is not None:
            self.client.cancel(owner=thread.ident)

    def answer_now(self) -> bool:
        """End this owner's reasoning now: the model answers from what it thought (False: none runs)."""
        thread = self._thread
        return thread is not None and self.client.answer_now(owner=thread.ident)

    def start(self, job: Callable[[], Iterator[EngineEvent]]) -> bool:
        if self._thread is not None:
            return False
        self._thread = threading.Thread(target=self._run, args=(job,), name="engine-job", daemon=True)
        self._thread.start()
        return True

    def _run(self, job: Callable[[], Iterator[EngineEvent]]) -> None:
        try:
            for event in job():
                self._pending.append(event)
                self._wake()
        except Exception as exc:  # still end the job; say so briefly (a bug of ours: logged with its traceback)
            failure = describe(exc, "finish this")
            self._pending.append(Error(failure.message, failure.action, "internal" if failure.bug else "error"))
        finally:
            self._pending.append(None)
            self._wake()

    def take(self) -> tuple[list[EngineEvent], bool]:
        """The events that arrived, and whether the job ended (then busy is False again)."""
        batch: list[EngineEvent] = []
        ended = False
        while self._pending:
            event = self._pending.popleft()
            if event is None:
                ended = True
                break
            if isinstance(event, ModelInfo):
                self.model = event
            batch.append(event)
        if ended:
            if self._thread is not None:
                self._thread.join()
            self._thread = None
        return batch, ended

    def shutdown(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(10)
        self.client.close()
