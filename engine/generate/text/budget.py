"""BudgetController: the model card's reasoning-budget rule, enforced inside one generation.

Rule (NVIDIA's model card): once the reasoning reaches `budget` tokens, end it at the next newline;
if no newline comes within `grace` (500) more tokens, end it there. Ending means the closing
sequence is fed into the running sequence, and the model goes on to write its answer: no second
request, no prompt re-evaluation.

Empty-answer guard (`answer_room`, on for the GUI and CLI, on request for the API): a reasoning block
must leave room for an answer. When the tokens still allowed (by max_tokens or by the context) minus
the closing sequence fall to the answer reserve, which is a quarter of max_tokens (at least 8 and at
most 512 tokens), the reasoning is cut at once, whatever the budget. So a request with
max_tokens=4096 always keeps at least 512 tokens for its answer. Where not even the closing sequence
fits any more, the guard does not fire: there is no answer room left to keep.

The closing sequence counts inside max_tokens like generated tokens; the loop cuts it short where
max_tokens ends (see engine/generate/loop.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.api import BUDGET_GRACE_TOKENS, ReasoningEndCause

#: Fed when the reasoning ended at a newline: the template renders `...reasoning\n</think>\n`.
CLOSE_AT_NEWLINE = "</think>\n\n"
#: Fed when the reasoning is cut mid-line (what the model card's client appends).
CLOSE_CUT = ".\n</think>\n\n"


def answer_reserve(max_tokens: int) -> int:
    return max(8, min(512, max_tokens // 4))


@dataclass
class BudgetController:
    """Decides, token by token, whether the reasoning must be closed now, and with what text."""

    budget: int | None
    max_tokens: int
    grace: int = BUDGET_GRACE_TOKENS
    closing_length: int = 4  # tokens in CLOSE_CUT for this vocabulary; set by the caller
    answer_room: bool = True  # the empty-answer guard
    closed_by_budget: bool = False  # the reasoning was closed here (by the budget or the guard)
    cause: ReasoningEndCause = ReasoningEndCause.MODEL  # which of the two closed it

    def close_before_start(self) -> str | None:
        """Budget 0: the reasoning is closed before the model writes anything."""
        if self.budget == 0:
            self.closed_by_budget, self.cause = True, ReasoningEndCause.BUDGET
            return CLOSE_AT_NEWLINE
        return None

    def after_reasoning_token(self, reasoning_tokens: int, text: str, tokens_left: int) -> str | None:
        """Called after each token spent in the reasoning. Returns the closing text to feed, or None.

        `text` is the token's text; `tokens_left` is how many more tokens the request may still
        generate (max_tokens and the context both counted).
        """
        closing = None
        cause = ReasoningEndCause.BUDGET
        if self.answer_room and 0 <= tokens_left - self.closing_length <= answer_reserve(self.max_tokens):
            closing = CLOSE_AT_NEWLINE if text.endswith("\n") else CLOSE_CUT
            cause = ReasoningEndCause.ANSWER_ROOM
        elif self.budget is not None and reasoning_tokens >= self.budget:
            if "\n" in text:
                closing = CLOSE_AT_NEWLINE if text.endswith("\n") else "\n" + CLOSE_AT_NEWLINE
            elif reasoning_tokens >= self.budget + self.grace:
                closing = CLOSE_CUT
        if closing is not None:
            self.closed_by_budget, self.cause = True, cause
        return closing
