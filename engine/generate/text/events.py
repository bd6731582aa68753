"""EventBuilder: the one way from model text to engine events, for local backends and remote servers.

    text piece ─▶ StopMatcher ─▶ ReasoningSplitter ─▶ ToolCallParser (answer only) ─▶ events
                                        └─ after each reasoning piece the BudgetController is asked

The local loop feeds each token's text (after its UTF-8 stream) as one piece of one token; the remote
engine feeds a server's streamed pieces (see engine/remote/stream.py for what is server-specific).
Both ask `closing()` after a piece and, when the budget rule answers, `insert()` the closing text
into the running text (the local loop feeds its tokens to the model, the remote engine continues
the text in a new request). So phases, whitespace, stop strings, tool calls, token counts and
ReasoningEnded come out of one piece of code.

Counting. Every piece counts `tokens` (default 1) in the phase it was generated in (the piece
holding `</think>` is still reasoning). Inserted text counts as reasoning. The local loop knows
how many tokens its closing is; the remote engine has no tokenizer, so it inserts the closing with a
count of 0: remote reasoning counts leave out the few tokens of the closing (the server counts them
in the continuation's prompt, and no server reports them apart).

"Ended by the budget" (`ReasoningEnded.by_budget`) means the budget rule ended the reasoning: its
closing was inserted (or a server that applies the same rule ended it, see BudgetController), not
that the model closed it on its own after the budget was reached.

Steering and the meter live here too, so local and remote generation share them: the loop
detector reads every reasoning piece (engine.generate.steering: LoopSuspected; with "end" it asks
for the reasoning to end), `steer()` gives the closing for "answer now" or the detector, and the
ReasoningMeter sends ReasoningProgress readings (tokens against the budget or the tokens allowed).

`raw` streams the text as written (markers included, for completion APIs and servers without a
reasoning parser); the splitter still follows the phases, for the budget and for tool calls, which
are parsed only in text that is answer from start to end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.api import (
    ContentDelta,
    FinishReason,
    GenerationEvent,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
)
from engine.generate.steering import Steering
from engine.generate.text.budget import CLOSE_AT_NEWLINE, CLOSE_CUT, BudgetController
from engine.generate.text.progress import ReasoningMeter
from engine.generate.text.reasoning import Phase, ReasoningSplitter
from engine.generate.text.stops import StopMatcher
from engine.generate.text.tool_calls import ToolCallParser


class EventBuilder:
    """Text pieces in, engine events out, for one generation."""

    def __init__(self, budget: BudgetController, *, starts_in_reasoning: bool, stops: Sequence[str] = (),
                 tools: Sequence[Mapping[str, Any]] = (), raw: bool = False,
                 steering: Steering | None = None) -> None:
        self.budget = budget
        self.steering = steering or Steering()
        self.meter = ReasoningMeter(budget)
        self.splitter = ReasoningSplitter(starts_in_reasoning=starts_in_reasoning)
        self.stops = StopMatcher(tuple(stops))
        self.tools = ToolCallParser(tools) if tools else None
        self.raw = raw
        self.reasoning_tokens = 0
        self.answer_tokens = 0
        self.written = ""  # the text as the model wrote it, inserted closings included (what a continuation appends)
        self._was_reasoning = starts_in_reasoning
        self._undecided = ""  # raw text seen before the splitter knew reasoning from answer
        self._to_judge: str | None = None  # the last piece, when it was reasoning and the budget may act on it
        self._last_piece = "\n"  # the last reasoning piece (a prompt's <think> ends its line)
        self._tokens_left = budget.max_tokens  # as the caller last said, for the meter's readings
        self._end_cause: ReasoningEndCause | None = None  # who inserted the closing, when one was inserted
        self._cut = False  # the inserted closing ended the reasoning mid-line
        self._counted = False  # closing() judged a reasoning token the meter has not read yet

    @property
    def in_reasoning(self) -> bool:
        return self.splitter.phase is Phase.REASONING

    @property
    def generated(self) -> int:
        return self.reasoning_tokens + self.answer_tokens

    @property
    def stopped(self) -> bool:
        """A stop string was found: the generation ends here."""
        return self.stops.stopped

    @property
    def tool_calls(self) -> int:
        return self.tools.calls if self.tools is not None else 0

    # -- input -----------------------------------------------------------------------------------

    def feed(self, text: str, tokens: int = 1) -> list[GenerationEvent]:
        """One generated piece of `tokens` tokens; returns the events it completes."""
        was_reasoning = self.in_reasoning
        if was_reasoning:
            self.reasoning_tokens += tokens
        else:
            self.answer_tokens += tokens
        out = self._absorb(text)
        self._to_judge = text if was_reasoning and self.in_reasoning and not self.stopped else None
        if self._to_judge is not None:
            self._last_piece = text
        return out

    def closing(self, tokens_left: int) -> str | None:
        """After a piece: the closing text the budget rule asks to insert now, or None.

        `tokens_left` is how many more tokens the request may generate (max_tokens, and for a local
        backend the context, both counted). Asked once per piece; only a reasoning piece can close.
        """
        text, self._to_judge = self._to_judge, None
        self._tokens_left = tokens_left
        if text is None:
            return None
        self._counted = True
        return self.budget.after_reasoning_token(self.reasoning_tokens, text, tokens_left)

    def progress(self) -> list[GenerationEvent]:
        """After `closing()` said nothing: the meter's reading for the reasoning token just judged."""
        if not self._counted:
            return []
        self._counted = False
        out: list[GenerationEvent] = []
        self.meter.count(self.reasoning_tokens, self._tokens_left, out)
        return out

    def steer(self) -> tuple[str, ReasoningEndCause] | None:
        """Before the next piece: the closing to insert for "answer now" or the loop detector, and why;
        None while nobody asks (or the reasoning is over)."""
        cause = self.steering.wanted() if self.in_reasoning else None
        if cause is None:
            return None
        self.steering.used = True
        return (CLOSE_AT_NEWLINE if self._last_piece.endswith("\n") else CLOSE_CUT), cause

    def opening_closing(self) -> str | None:
        """Before the first piece: the closing to insert at once (budget 0), or None."""
        return self.budget.close_before_start() if self.in_reasoning else None

    def insert(self, text: str, tokens: int, *, cause: ReasoningEndCause | None = None) -> list[GenerationEvent]:
        """Text the engine writes into the generation itself (a closing): counted as `tokens`
        reasoning tokens. `cause` None: the budget rule's closing (its own cause: the budget or the
        answer's room); else who asked (the person's "answer now", the loop detector)."""
        self.reasoning_tokens += tokens
        self._to_judge = None
        self._counted = False
        if self.in_reasoning:
            self._end_cause = cause or self.budget.cause
            if self._end_cause is ReasoningEndCause.MODEL:
                self._end_cause = ReasoningEndCause.BUDGET  # an inserted closing the rule did not choose
            self._cut = text == CLOSE_CUT
        return self._absorb(text, inserted=True)

    def finish(self, text: str = "") -> list[GenerationEvent]:
        """End of generation: `text` is what the caller still held (a UTF-8 tail); everything held
        back is flushed (a stop string discards what follows it)."""
        self.written += text
        out = self._split(self.stops.feed(text) + self.stops.finish())
        if self.in_reasoning:
            self.meter.end(self.reasoning_tokens, self._tokens_left, out)  # ended inside the reasoning
        if self.raw:
            if self._undecided:
                self._emit_answer(self._undecided, out)
                self._undecided = ""
        else:
            self._route(self.splitter.finish(), out)
        if self.tools is not None:
            out.extend(self.tools.finish())
        return out

    def final_reason(self, reason: FinishReason, other_calls: int = 0) -> FinishReason:
        """The finish reason to report: a turn that stopped with tool calls ended for them."""
        if reason is FinishReason.STOP and self.tool_calls + other_calls:
            return FinishReason.TOOL_CALLS
        return reason

    # -- internals -------------------------------------------------------------------------------

    def _absorb(self, text: str, *, inserted: bool = False) -> list[GenerationEvent]:
        self.written += text
        return self._split(self.stops.feed(text), inserted=inserted)

    def _split(self, text: str, *, inserted: bool = False) -> list[GenerationEvent]:
        out: list[GenerationEvent] = []
        before = self.splitter.phase
        deltas = self.splitter.feed(text)
        for delta in deltas:
            if isinstance(delta, ReasoningDelta):
                self.steering.watch(delta.text, self.reasoning_tokens, out)
        if self.raw:
            self._emit_raw(text, before, out)
            deltas = []
        self._route(deltas, out, inserted=inserted)
        return out

    def _emit_raw(self, text: str, before: Phase, out: list[GenerationEvent]) -> None:
        """Raw text out. Tool calls are parsed only in text that is answer from start to end (never
        in the piece that holds </think>): a <tool_call> in the reasoning is thinking."""
        if self.splitter.phase is Phase.START:
            self._undecided += text  # not yet known whether reasoning or answer follows
            return
        text, self._undecided = self._undecided + text, ""
        if text:
            in_answer = before is not Phase.REASONING and self.splitter.phase is Phase.ANSWER
            self._emit_answer(text, out, parse_tools=in_answer)

    def _emit_answer(self, text: str, out: list[GenerationEvent], *, parse_tools: bool = True) -> None:
        if self.tools is not None and parse_tools:
            out.extend(self.tools.feed(text))
        else:
            out.append(ContentDelta(text))

    def _route(self, deltas: Sequence[ReasoningDelta | ContentDelta], out: list[GenerationEvent],
               *, inserted: bool = False) -> None:
        for delta in deltas:
            if isinstance(delta, ContentDelta):
                self._emit_answer(delta.text, out)
            else:  # with the engine's count so far, so front ends show tokens, not pieces
                out.append(ReasoningDelta(delta.text, self.reasoning_tokens))
        if self.in_reasoning:
            self._was_reasoning = True  # also for a model that opened <think> itself
        elif self._was_reasoning:
            self._was_reasoning = False
            if inserted and self._end_cause is not None:
                cause = self._end_cause
            elif self.budget.ended_by_rule(self.reasoning_tokens, self.generated):  # a server applied the rule
                cause = self.budget.cause
            else:
                cause = ReasoningEndCause.MODEL
            self.meter.end(self.reasoning_tokens, self._tokens_left, out, cut=inserted and self._cut)
            by_budget = cause in (ReasoningEndCause.BUDGET, ReasoningEndCause.ANSWER_ROOM)
            out.append(ReasoningEnded(by_budget=by_budget, reasoning_tokens=self.reasoning_tokens, cause=cause))
