"""EngineRunner: the engine client seen from asyncio. One generation at a time; others wait their turn.

The engine client blocks while it reads the worker's pipe, so each generation runs in a thread that
hands events to the event loop. Leaving the event stream early (a client that disconnected) cancels
the generation, and the next request waits only for that cancel (one token), not for the answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from typing import Any

from engine.api import EngineEvent, Finished, FinishReason, GenerationRequest
from engine.client import EngineClient

_END = object()

#: How long a stopping server lets running answers finish before it closes their connections
#: (`nemotron-desk serve` then ends the engine; the app's API switch keeps it for the window).
SHUTDOWN_GRACE_S = 3


class EngineRunner:
    def __init__(self, client: EngineClient) -> None:
        self.client = client
        self._lock = asyncio.Lock()
        self.waiting = 0
        self.finished: list[FinishReason] = []  # finish reasons, newest last (figures and tests)

    async def events(self, request: GenerationRequest) -> AsyncGenerator[EngineEvent, None]:
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        try:
            async for event in self._generate(request):
                yield event
        finally:
            self._lock.release()

    async def _generate(self, request: GenerationRequest) -> AsyncGenerator[EngineEvent, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        abandoned = threading.Event()

        def produce() -> None:
            me = threading.get_ident()
            cancelled = False
            try:
                for event in self.client.generate(request):
                    if abandoned.is_set() and not cancelled:
                        cancelled = True  # once: a second cancel would kill the engine process
                        # The client left (maybe while this request waited for its turn): stop our
                        # answer, and drain its last events so the engine is clean for the next one.
                        self.client.cancel(owner=me)
                    if isinstance(event, Finished):
                        self.finished.append(event.reason)
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        worker = loop.run_in_executor(None, produce)
        done = False
        try:
            while (event := await queue.get()) is not _END:
                yield event
            done = True
        finally:
            if not done:
                abandoned.set()  # produce() cancels this request's answer, never another front end's
            await asyncio.shield(worker)
