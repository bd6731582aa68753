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

This is the one place the rule lives. The local loop asks it after every reasoning token (through
the EventBuilder); the remote engine, for a server that cannot apply a budget, asks it the same way
after every streamed piece and sizes its requests with `tokens_before_decision`; for a server that
applies the budget (or the guard) itself, `applied_by_server` says so, and `ended_by_rule` judges the
server's close.

"Ended by the budget" is one definition everywhere: the rule closed the reasoning (its closing was
fed), not the model on its own, even past the budget. A server does not say which it was; there the
reasoning it ended at or past the budget, or where the guard may act, counts as the rule's doing
(vLLM ends it at the budget exactly; our own server at the next newline, where a model rarely
closes on its own).
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
    applied_by_server: bool = False  # a remote server applies this rule; the engine only watches
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

    def ended_by_rule(self, reasoning_tokens: int, generated: int) -> bool:
        """Whether the reasoning that just ended after `reasoning_tokens` (`generated` tokens in all)
        was ended by this rule."""
        if self.closed_by_budget:
            return True
        if not self.applied_by_server:
            return False
        if self.budget is not None and reasoning_tokens >= self.budget:
            self.cause = ReasoningEndCause.BUDGET
            return True
        guard_at = self.max_tokens - self.closing_length - answer_reserve(self.max_tokens)
        if self.answer_room and generated >= guard_at:
            self.cause = ReasoningEndCause.ANSWER_ROOM
            return True
        return False

    def tokens_before_decision(self, reasoning_tokens: int, tokens_left: int) -> int:
        """How many tokens the reasoning may still run before the rule can act (at least 1): up to
        the budget, through the grace, or up to the answer-room guard. A remote engine asks a server
        for no more than this at a time, so the server never runs past where the rule closes."""
        room = tokens_left
        if self.answer_room:
            room = min(room, tokens_left - self.closing_length - answer_reserve(self.max_tokens))
        if self.budget is not None:
            end = self.budget if reasoning_tokens < self.budget else self.budget + self.grace
            room = min(room, end - reasoning_tokens)
        return max(1, room)
