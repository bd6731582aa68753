"""Steering: what may end a running reasoning besides the model and the budget.

"Answer now" is a flag set from outside (the worker's shared event, like cancel); the loop asks
`wanted()` before every token, so the reasoning ends at the next token boundary. The loop detector
reads the reasoning text as it streams; with loop detection "warn" it only reports (LoopSuspected),
with "end" it also asks for the reasoning to end, as answer now would. Either way the closing goes
into the running sequence exactly as the budget's does (engine/generate/loop.py).
"""

from __future__ import annotations

from typing import Protocol

from engine.api import GenerationEvent, LoopSuspected, ReasoningEndCause
from engine.generate.text.loops import LoopDetector


class Flag(Protocol):
    def is_set(self) -> bool: ...


class Steering:
    """One generation's steering: the answer-now flag and the loop detector (mode off, warn or end)."""

    def __init__(self, answer_now: Flag | None = None, loop_detection: str = "off") -> None:
        self.answer_now = answer_now
        self.mode = loop_detection
        self.detector = LoopDetector() if loop_detection != "off" else None
        self._loop_wants_end = False
        self.used = False  # the reasoning was ended by steering: it does not end it twice

    def watch(self, reasoning: str, reasoning_tokens: int, out: list[GenerationEvent]) -> None:
        """A piece of reasoning text as it streams."""
        if self.detector is None:
            return
        finding = self.detector.feed(reasoning)
        if finding is not None:
            out.append(LoopSuspected(reasoning_tokens, finding.repeated, finding.score, self.mode))
            self._loop_wants_end = self.mode == "end"

    def wanted(self) -> ReasoningEndCause | None:
        """Why the reasoning must end now, or None."""
        if self.used:
            return None
        if self.answer_now is not None and self.answer_now.is_set():
            return ReasoningEndCause.USER
        return ReasoningEndCause.LOOP if self._loop_wants_end else None
