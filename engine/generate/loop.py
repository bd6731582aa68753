"""The one generation loop, shared by every backend.

    sample → detokenize (UTF-8 safe) → stop strings → ReasoningSplitter → BudgetController → feed

`generate_tokens` is the whole decode loop over a prompt that is already tokenized; it yields the
engine's events. Cancellation is a flag checked before every token, so a cancel is honoured within
one token. Reasoning closed by the budget is closed *in this sequence*: the closing tokens are fed
into the backend like generated ones and the model goes on to answer.

"Answer now" and the loop detector's "end" (engine/generate/steering.py) close the reasoning the
same way, before the next token is sampled. The reasoning meter (ReasoningProgress) and loop
warnings (LoopSuspected) are appended to the events as the reasoning streams.

max_tokens is a hard limit: the closing tokens count inside it, and a closing that does not fit is
cut where max_tokens ends. Stop strings are matched on the text as the model wrote it, reasoning
and markers included (as vLLM and llama.cpp match them), before the reasoning is split off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.api import (
    ContentDelta,
    Finished,
    FinishReason,
    GenerationEvent,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
    SamplingParams,
    Usage,
)
from engine.backends.base import Backend
from engine.generate.prefix_cache import PrefixCache
from engine.generate.steering import Steering
from engine.generate.text.budget import CLOSE_AT_NEWLINE, CLOSE_CUT, BudgetController
from engine.generate.text.progress import ReasoningMeter
from engine.generate.text.reasoning import Phase, ReasoningSplitter
from engine.generate.text.stops import StopMatcher
from engine.generate.text.tool_calls import ToolCallParser
from engine.generate.text.utf8 import Utf8Stream


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class LoopOptions:
    """What the loop needs beyond the sampling parameters."""

    sampling: SamplingParams
    starts_in_reasoning: bool = False
    reasoning_budget: int | None = None
    checkpoint_at: int | None = None  # prompt position worth a state snapshot (last turn start)
    raw_text: bool = False  # stream the text as generated, markers included (completion APIs)
    tools: tuple[dict[str, Any], ...] = ()  # tool definitions: parse tool calls in the answer
    keep_answer_room: bool = True  # the budget's empty-answer guard
    loop_detection: str = "off"  # off, warn or end (engine/generate/steering.py)


class _Clock:
    """Timestamps for the usage figures."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.prefilled = self.start
        self.first_token: float | None = None
        self.end = self.start

    def usage(self, prompt: int, cached: int, reasoning: int, answer: int) -> Usage:
        first = self.first_token if self.first_token is not None else self.end
        prefill_s = self.prefilled - self.start
        decode_s = self.end - first
        generated = reasoning + answer
        return Usage(
            prompt_tokens=prompt,
            cached_prompt_tokens=cached,
            reasoning_tokens=reasoning,
            answer_tokens=answer,
            time_to_first_token_s=first - self.start,
            prefill_tokens_per_s=(prompt - cached) / prefill_s if prefill_s > 0 else 0.0,
            decode_tokens_per_s=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
        )


class _Run:
    """State of one generation; `step` handles one token."""

    def __init__(self, backend: Backend, options: LoopOptions, tokenize_closing: Callable[[str], list[int]],
                 steering: Steering | None = None):
        self.backend = backend
        self.params = options.sampling
        self.text = Utf8Stream()
        self.splitter = ReasoningSplitter(starts_in_reasoning=options.starts_in_reasoning)
        self.stops = StopMatcher(self.params.stop)
        self.tokenize_closing = tokenize_closing
        self.budget = BudgetController(options.reasoning_budget, self.params.max_tokens,
                                       closing_length=len(tokenize_closing(CLOSE_CUT)),
                                       answer_room=options.keep_answer_room)
        self.reasoning_tokens = 0
        self.answer_tokens = 0
        self.was_reasoning = self.in_reasoning
        self.raw = options.raw_text
        self.undecided = ""  # raw text seen before the splitter knew reasoning from answer
        self.tools = ToolCallParser(options.tools) if options.tools else None
        self.meter = ReasoningMeter(self.budget)
        self.steering = steering or Steering()
        self.end_cause: ReasoningEndCause | None = None  # set when the engine closes the reasoning itself
        self.closing = ""  # the closing text the engine fed, if it fed one
        self.last_piece = "\n"  # the last reasoning token's text (a prompt's <think> ends its line)

    @property
    def in_reasoning(self) -> bool:
        return self.splitter.phase is Phase.REASONING

    @property
    def generated(self) -> int:
        return self.reasoning_tokens + self.answer_tokens

    def tokens_left(self) -> int:
        return min(self.params.max_tokens - self.generated, self.backend.n_ctx - self.backend.n_past)

    def step(self, token: int, out: list[GenerationEvent]) -> list[int] | None:
        """Account for one sampled token; return what to feed next, or None at a stop string."""
        in_reasoning = self.splitter.phase is Phase.REASONING
        if in_reasoning:
            self.reasoning_tokens += 1
        else:
            self.answer_tokens += 1
        data = self.backend.token_bytes(token)
        self.absorb(data, out)
        if self.stops.stopped:
            return None
        if self.splitter.phase is not Phase.REASONING:
            return [token]
        self.was_reasoning = True  # also for a model that opened <think> itself
        if in_reasoning:
            self.last_piece = data.decode("utf-8", "replace")
            closing = self.budget.after_reasoning_token(self.reasoning_tokens, self.last_piece, self.tokens_left())
            if closing is not None:
                return [token, *self.force_close(closing, out, self.budget.cause)]
            self.meter.count(self.reasoning_tokens, self.tokens_left(), out)
        return [token]

    def steer(self, out: list[GenerationEvent]) -> list[int] | None:
        """Answer now / the loop detector's end: the closing to feed before the next token, or None."""
        cause = self.steering.wanted() if self.in_reasoning else None
        if cause is None:
            return None
        self.steering.used = True
        return self.force_close(CLOSE_AT_NEWLINE if self.last_piece.endswith("\n") else CLOSE_CUT, out, cause)

    def absorb(self, data: bytes, out: list[GenerationEvent], *, forced: bool = False) -> None:
        """Run a token's bytes through detokenizer, stop matcher and splitter into `out`."""
        self.split(self.stops.feed(self.text.feed(data)), out, forced=forced)

    def split(self, text: str, out: list[GenerationEvent], *, forced: bool = False) -> None:
        before = self.splitter.phase
        deltas = self.splitter.feed(text)
        for delta in deltas:
            if isinstance(delta, ReasoningDelta):
                self.steering.watch(delta.text, self.reasoning_tokens, out)
        if self.raw:  # the text as written; the splitter still tracks the thinking, for the budget
            self.emit_raw(text, before, out)
            deltas = []
        self.route(deltas, out, forced=forced)

    def emit_raw(self, text: str, before: Phase, out: list[GenerationEvent]) -> None:
        """Raw text out. Tool calls are parsed only in text that is answer from start to end (never
        in the piece that holds </think>): a <tool_call> in the reasoning is thinking."""
        if self.splitter.phase is Phase.START:
            self.undecided += text  # not yet known whether reasoning or answer follows
            return
        text, self.undecided = self.undecided + text, ""
        if text:
            in_answer = before is not Phase.REASONING and self.splitter.phase is Phase.ANSWER
            self.emit_answer(text, out, parse_tools=in_answer)

    def emit_answer(self, text: str, out: list[GenerationEvent], *, parse_tools: bool = True) -> None:
        if self.tools is not None and parse_tools:
            out.extend(self.tools.feed(text))
        else:
            out.append(ContentDelta(text))

    def route(self, deltas: Sequence[ReasoningDelta | ContentDelta], out: list[GenerationEvent],
              *, forced: bool = False) -> None:
        for delta in deltas:
            if isinstance(delta, ContentDelta):
                self.emit_answer(delta.text, out)
            else:
                out.append(delta)
        if self.was_reasoning and not self.in_reasoning:
            self.was_reasoning = False
            cause = self.end_cause or (self.budget.cause if self.budget.closed_by_budget
                                       else ReasoningEndCause.MODEL)
            self.meter.end(self.reasoning_tokens, self.tokens_left(), out,
                           cut=self.budget.closed_by_budget and self.closing == CLOSE_CUT)
            out.append(ReasoningEnded(by_budget=cause in (ReasoningEndCause.BUDGET, ReasoningEndCause.ANSWER_ROOM),
                                      reasoning_tokens=self.reasoning_tokens, cause=cause))

    def force_close(self, closing: str, out: list[GenerationEvent],
                    cause: ReasoningEndCause = ReasoningEndCause.BUDGET) -> list[int]:
        """Feed the closing sequence as if generated; as much of it as max_tokens still allows."""
        self.end_cause, self.closing = cause, closing
        ids = self.tokenize_closing(closing)[:max(0, self.tokens_left())]
        self.reasoning_tokens += len(ids)
        for token in ids:
            self.absorb(self.backend.token_bytes(token), out, forced=True)
        return ids

    def finish(self, out: list[GenerationEvent]) -> None:
        """End of generation: flush everything held back (a stop string discards what follows it)."""
        if self.in_reasoning:  # ended inside the reasoning (length, a stop, a cancel): the meter's last reading
            self.meter.end(self.reasoning_tokens, self.tokens_left(), out)
        self.split(self.stops.feed(self.text.finish()) + self.stops.finish(), out)
        if self.raw:
            if self.undecided:
                self.emit_answer(self.undecided, out)
                self.undecided = ""
        else:
            self.route(self.splitter.finish(), out)
        if self.tools is not None:
            out.extend(self.tools.finish())

    def final_reason(self, reason: FinishReason) -> FinishReason:
        if reason is FinishReason.STOP and self.tools is not None and self.tools.calls:
            return FinishReason.TOOL_CALLS
        return reason


def generate_tokens(
    backend: Backend,
    cache: PrefixCache,
    prompt: Sequence[int],
    options: LoopOptions,
    cancel: CancelFlag,
    tokenize_closing: Callable[[str], list[int]],
    answer_now: CancelFlag | None = None,
) -> Iterator[GenerationEvent]:
    """Prefill `prompt` and generate until a stop, the length limit or a cancel.

    `answer_now`, once set, ends the reasoning before the next token (the model then answers)."""
    clock = _Clock()
    cached = cache.prefill(prompt, options.checkpoint_at)
    clock.prefilled = time.perf_counter()
    run = _Run(backend, options, tokenize_closing, Steering(answer_now, options.loop_detection))
    sampler = backend.make_sampler(options.sampling)
    reason = FinishReason.LENGTH
    try:
        out: list[GenerationEvent] = []
        if run.in_reasoning:
            opening = run.budget.close_before_start()
            if opening is not None:
                backend.feed(run.force_close(opening, out))
        while True:
            if out:
                yield from out
                out.clear()
            if cancel.is_set():
                reason = FinishReason.CANCELLED
                break
            if run.tokens_left() <= 0:
                break  # length
            if (closing := run.steer(out)) is not None:
                backend.feed(closing)
                continue  # its events go out, and the limits are checked again
            token = backend.sample(sampler)
            if clock.first_token is None:
                clock.first_token = time.perf_counter()
            if token in backend.eog_ids and not options.sampling.ignore_eos:
                reason = FinishReason.STOP
                break
            to_feed = run.step(token, out)
            if to_feed is None:
                reason = FinishReason.STOP  # a stop string
                break
            if run.tokens_left() <= 0 or len(to_feed) > backend.n_ctx - backend.n_past:
                break  # length: no room to go on, and no need to evaluate what we stop at
            backend.feed(to_feed)
        run.finish(out)
        yield from out
    finally:
        sampler.close()
    clock.end = time.perf_counter()
    yield clock.usage(len(prompt), cached, run.reasoning_tokens, run.answer_tokens)
    yield Finished(run.final_reason(reason))
