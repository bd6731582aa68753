"""The one generation loop, shared by every backend.

    sample → detokenize (UTF-8 safe) → EventBuilder (stop strings, ReasoningSplitter, tool calls,
             token counts; it asks the BudgetController) → feed

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

from engine.api import Finished, FinishReason, GenerationEvent, ReasoningEndCause, SamplingParams, Usage
from engine.backends.base import Backend
from engine.generate.prefix_cache import PrefixCache
from engine.generate.steering import Steering
from engine.generate.text.budget import CLOSE_CUT, BudgetController
from engine.generate.text.events import EventBuilder
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
    """State of one generation; `step` handles one token. The text goes through the EventBuilder."""

    def __init__(self, backend: Backend, options: LoopOptions, tokenize_closing: Callable[[str], list[int]],
                 steering: Steering | None = None):
        self.backend = backend
        self.params = options.sampling
        self.text = Utf8Stream()
        self.tokenize_closing = tokenize_closing
        budget = BudgetController(options.reasoning_budget, self.params.max_tokens,
                                  closing_length=len(tokenize_closing(CLOSE_CUT)),
                                  answer_room=options.keep_answer_room)
        self.events = EventBuilder(budget, starts_in_reasoning=options.starts_in_reasoning,
                                   stops=self.params.stop, tools=options.tools, raw=options.raw_text,
                                   steering=steering)

    @property
    def in_reasoning(self) -> bool:
        return self.events.in_reasoning

    @property
    def reasoning_tokens(self) -> int:
        return self.events.reasoning_tokens

    @property
    def answer_tokens(self) -> int:
        return self.events.answer_tokens

    def tokens_left(self) -> int:
        return min(self.params.max_tokens - self.events.generated, self.backend.n_ctx - self.backend.n_past)

    def step(self, token: int, out: list[GenerationEvent]) -> list[int] | None:
        """Account for one sampled token; return what to feed next, or None at a stop string."""
        out.extend(self.events.feed(self.text.feed(self.backend.token_bytes(token))))
        if self.events.stopped:
            return None
        closing = self.events.closing(self.tokens_left())
        if closing is not None:
            return [token, *self.force_close(closing, out)]
        out.extend(self.events.progress())
        return [token]

    def steer(self, out: list[GenerationEvent]) -> list[int] | None:
        """Answer now / the loop detector's end: the closing tokens to feed before the next token, or None."""
        wanted = self.events.steer()
        if wanted is None:
            return None
        closing, cause = wanted
        return self.force_close(closing, out, cause)

    def force_close(self, closing: str, out: list[GenerationEvent],
                    cause: ReasoningEndCause | None = None) -> list[int]:
        """Feed the closing sequence as if generated; as much of it as max_tokens still allows."""
        ids = self.tokenize_closing(closing)[:max(0, self.tokens_left())]
        data = b"".join(self.backend.token_bytes(token) for token in ids)
        out.extend(self.events.insert(self.text.feed(data), len(ids), cause=cause))
        return ids

    def finish(self, out: list[GenerationEvent]) -> None:
        """End of generation: flush everything held back (a stop string discards what follows it)."""
        out.extend(self.events.finish(self.text.finish()))

    def final_reason(self, reason: FinishReason) -> FinishReason:
        return self.events.final_reason(reason)


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
        opening = run.events.opening_closing()
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
