"""EngineRunner: the engine client seen from asyncio. One generation at a time; others wait their turn.

The engine client blocks while it reads the worker's pipe, so each generation runs in a thread that
hands events to the event loop. Leaving the event stream early (a client that disconnected) cancels
the generation, and the next request waits only for that cancel (one token), not for the answer.

Each generation is known by its response id (chatcmpl-…/cmpl-…) while it waits or runs, so a
control request can reach it: `answer_now(id)` ends its reasoning at the next token boundary.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from typing import Any

from engine.api import EngineEvent, Finished, FinishReason, GenerationRequest
from engine.client import EngineClient

_END = object()


class _Live:
    """A generation a control request may still reach: its thread, once it runs, and what was asked."""

    def __init__(self) -> None:
        self.owner: int | None = None
        self.answer_now = threading.Event()

#: How long a stopping server lets running answers finish before it closes their connections
#: (`nemotron-desk serve` then ends the engine; the app's API switch keeps it for the window).
SHUTDOWN_GRACE_S = 3


class EngineRunner:
    def __init__(self, client: EngineClient) -> None:
        self.client = client
        self._lock = asyncio.Lock()
        self.waiting = 0
        self.finished: list[FinishReason] = []  # finish reasons, newest last (figures and tests)
        self._live: dict[str, _Live] = {}

    def answer_now(self, key: str) -> bool:
        """Ask the generation `key` to end its reasoning now; False when no such generation is running."""
        live = self._live.get(key)
        if live is None:
            return False
        live.answer_now.set()
        if live.owner is not None:
            self.client.answer_now(owner=live.owner)  # a generation not started yet gets it when it starts
        return True

    async def events(self, request: GenerationRequest, key: str = "") -> AsyncGenerator[EngineEvent, None]:
        live = self._live[key] = _Live()
        try:
            async for event in self._events(request, live):
                yield event
        finally:
            self._live.pop(key, None)

    async def _events(self, request: GenerationRequest, live: _Live) -> AsyncGenerator[EngineEvent, None]:
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        try:
            async for event in self._generate(request, live):
                yield event
        finally:
            self._lock.release()

    async def _generate(self, request: GenerationRequest, live: _Live) -> AsyncGenerator[EngineEvent, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        abandoned = threading.Event()

        def produce() -> None:
            me = live.owner = threading.get_ident()
            cancelled = forwarded = False
            try:
                for event in self.client.generate(request):
                    if live.answer_now.is_set() and not forwarded:  # asked before the engine took the request
                        forwarded = self.client.answer_now(owner=me)
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
