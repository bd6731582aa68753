"""ReasoningMeter: the reasoning's token count against its limits, as ReasoningProgress events.

The GUI's live budget meter reads these: tokens the engine counted (not text pieces), the budget or,
without one, the most the reasoning could reach (max_tokens or the context, less the answer's room
when the empty-answer guard is on), and the phase of the model card's rule: counting, waiting for a
newline once the budget is reached (with the grace left), and the hard cut. A reading goes out with
the first reasoning token, every PROGRESS_EVERY tokens, whenever the phase changes, and at the end.
"""

from __future__ import annotations

from engine.api import BudgetPhase, GenerationEvent, ReasoningProgress
from engine.generate.text.budget import BudgetController, answer_reserve

#: Reasoning tokens between two readings: smooth enough for a meter, a small share of the events.
PROGRESS_EVERY = 8


class ReasoningMeter:
    """Appends a ReasoningProgress to `out` when the meter has moved enough to show."""

    def __init__(self, budget: BudgetController, every: int = PROGRESS_EVERY) -> None:
        self.budget = budget
        self.every = every
        self._last: ReasoningProgress | None = None

    def count(self, tokens: int, tokens_left: int, out: list[GenerationEvent]) -> None:
        """After a reasoning token; `tokens_left` is what the request may still generate."""
        reading = self._reading(tokens, tokens_left, cut=False)
        last = self._last
        if last is None or last.phase is not reading.phase or tokens - last.tokens >= self.every:
            self._send(reading, out)

    def end(self, tokens: int, tokens_left: int, out: list[GenerationEvent], *, cut: bool = False) -> None:
        """The reasoning is over (`cut`: closed mid-line by the budget or the guard): the last reading."""
        if self._last is not None or tokens:
            self._send(self._reading(tokens, tokens_left, cut=cut), out)

    def _send(self, reading: ReasoningProgress, out: list[GenerationEvent]) -> None:
        self._last = reading
        out.append(reading)

    def _reading(self, tokens: int, tokens_left: int, *, cut: bool) -> ReasoningProgress:
        budget = self.budget
        kept = budget.closing_length + answer_reserve(budget.max_tokens) if budget.answer_room else 0
        limit = max(tokens, tokens + tokens_left - kept)
        grace_left = None
        if cut:
            phase = BudgetPhase.CUT
        elif budget.budget is not None and tokens >= budget.budget:
            phase = BudgetPhase.WAITING_FOR_NEWLINE
            grace_left = max(0, budget.budget + budget.grace - tokens)
        else:
            phase = BudgetPhase.COUNTING
        return ReasoningProgress(tokens, budget.budget, limit, phase, grace_left)
