"""Small helpers for tests that read engine event streams."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.api import (
    ContentDelta,
    EngineEvent,
    Error,
    Finished,
    FinishReason,
    ReasoningDelta,
    ReasoningEnded,
    Usage,
)


@dataclass
class Answer:
    events: list[EngineEvent] = field(default_factory=list)

    @property
    def reasoning(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, ReasoningDelta))

    @property
    def content(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, ContentDelta))

    @property
    def usage(self) -> Usage:
        return next(e for e in self.events if isinstance(e, Usage))

    @property
    def finish(self) -> FinishReason:
        finished = [e for e in self.events if isinstance(e, Finished)]
        assert finished, f"no Finished event: {self.errors}"
        return finished[-1].reason

    @property
    def errors(self) -> list[Error]:
        return [e for e in self.events if isinstance(e, Error)]

    @property
    def ended(self) -> list[ReasoningEnded]:
        return [e for e in self.events if isinstance(e, ReasoningEnded)]


def collect(events: Iterable[EngineEvent]) -> Answer:
    return Answer(list(events))


class CancelAfter:
    """A cancel flag that turns on after the generation loop has asked it `n` times (i.e. after n-1 tokens).

    The prompt's template render asks too (it can be cancelled); those questions are not counted.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.asked = 0

    def is_set(self) -> bool:
        if sys._getframe(1).f_code.co_name != "generate_tokens":
            return False
        self.asked += 1
        return self.asked > self.n
