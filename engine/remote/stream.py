"""AnswerStream: a remote server's streamed chunks, across one or several requests, as engine events.

Server-split reasoning (`reasoning_content`, or vLLM's newer `reasoning`) is put back between think
markers and everything runs through the one ReasoningSplitter, so a server that splits and one that
does not give the same events, and `text_so_far` is the text the model has written (closings we
forced included): what a continuation request appends to the rendered prompt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from engine.api import (
    ContentDelta,
    FinishReason,
    GenerationEvent,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from engine.generate.text.reasoning import THINK_CLOSE, THINK_OPEN, Phase, ReasoningSplitter
from engine.generate.text.tool_calls import ToolCallParser


class AnswerStream:
    """Collects one answer. `budget` is the reasoning budget in force, wherever it is applied."""

    def __init__(self, *, starts_in_reasoning: bool, raw: bool = False,
                 tools: Sequence[dict[str, Any]] = (), budget: int | None = None, thinking: bool = True) -> None:
        self.thinking = thinking
        self._answer_as_reasoning = ""  # thinking off, yet the server called the answer reasoning
        self.splitter = ReasoningSplitter(starts_in_reasoning=starts_in_reasoning)
        self.raw = raw
        self.budget = budget
        self.tools = ToolCallParser(tools) if tools and not raw else None
        self.text_so_far = ""
        self.reasoning_tokens = 0
        self.answer_tokens = 0
        self.forced = False
        self.forced_cause = ReasoningEndCause.BUDGET
        self._was_reasoning = starts_in_reasoning
        self._server_reasoning_open = False
        self._calls: dict[int, dict[str, str]] = {}
        self._emitted_calls = 0
        self._started = time.perf_counter()
        self._first: float | None = None
        self._prompt_tokens = 0
        self._cached_tokens = 0
        self._completion_tokens = 0

    @property
    def in_reasoning(self) -> bool:
        return self.splitter.phase is Phase.REASONING

    @property
    def generated(self) -> int:
        """Tokens generated so far: the server's count where it gave one (a piece may hold several)."""
        return max(self.reasoning_tokens + self.answer_tokens, self._completion_tokens)

    # -- input -----------------------------------------------------------------------------------

    def absorb_chunk(self, chunk: dict[str, Any]) -> list[GenerationEvent]:
        self._usage(chunk.get("usage"))
        choices = chunk.get("choices") or []
        if not choices:
            return []
        choice = choices[0]
        delta = choice.get("delta")
        if delta is None:  # /v1/completions
            return self._text(str(choice.get("text") or ""))
        for call in delta.get("tool_calls") or ():
            self._tool_call_piece(call)
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        content = delta.get("content") or ""
        if not self.thinking:
            # vLLM's nemotron_v3 parser streams a no-thinking answer as reasoning, then repeats it
            # whole as content at the end: with thinking off, it is the answer, shown once.
            if content and content == self._answer_as_reasoning:
                content = ""
            self._answer_as_reasoning += reasoning
            reasoning, content = "", reasoning + content
        out: list[GenerationEvent] = []
        if reasoning:
            opening = THINK_OPEN if self.splitter.phase is Phase.START else ""
            self._server_reasoning_open = True
            out += self._text(opening + reasoning)
        if content:
            if self._server_reasoning_open:  # the server ended the reasoning: the content is answer
                out += self._text(THINK_CLOSE, count=False)
                self._server_reasoning_open = False
            out += self._text(content)
        return out

    def force_close(self, closing: str, cause: ReasoningEndCause = ReasoningEndCause.BUDGET) -> list[GenerationEvent]:
        """End the reasoning with `closing` (the budget's doing, or `cause`), as if the model had written it."""
        self.forced, self.forced_cause = True, cause
        return self._text(closing, count=False)

    def _text(self, text: str, *, count: bool = True) -> list[GenerationEvent]:
        if not text:
            return []
        if count:
            if self._first is None:
                self._first = time.perf_counter()
            if self.in_reasoning:
                self.reasoning_tokens += 1
            else:
                self.answer_tokens += 1
        self.text_so_far += text
        out: list[GenerationEvent] = []
        deltas = self.splitter.feed(text)
        if self.raw:
            out.append(ContentDelta(text))
            deltas = []
        self._route(deltas, out)
        return out

    def _route(self, deltas: Sequence[ReasoningDelta | ContentDelta], out: list[GenerationEvent]) -> None:
        for delta in deltas:
            if isinstance(delta, ContentDelta) and self.tools is not None:
                out.extend(self.tools.feed(delta.text))
            else:
                out.append(delta)
        if self.splitter.phase is Phase.REASONING:
            self._was_reasoning = True
        elif self._was_reasoning:
            self._was_reasoning = False
            cause = self.forced_cause if self.forced else ReasoningEndCause.MODEL
            if not self.forced and self.budget is not None and self.reasoning_tokens >= self.budget:
                cause = ReasoningEndCause.BUDGET
            out.append(ReasoningEnded(by_budget=cause is ReasoningEndCause.BUDGET,
                                      reasoning_tokens=self.reasoning_tokens, cause=cause))

    def _tool_call_piece(self, piece: dict[str, Any]) -> None:
        slot = self._calls.setdefault(int(piece.get("index", 0)), {"id": "", "name": "", "arguments": ""})
        slot["id"] = piece.get("id") or slot["id"]
        function = piece.get("function") or {}
        slot["name"] += function.get("name") or ""
        slot["arguments"] += function.get("arguments") or ""

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        if not self._prompt_tokens:
            self._prompt_tokens = int(usage.get("prompt_tokens") or 0)
            details = usage.get("prompt_tokens_details") or {}
            self._cached_tokens = int(details.get("cached_tokens") or 0)
        self._completion_tokens += int(usage.get("completion_tokens") or 0)

    # -- the end ---------------------------------------------------------------------------------

    def finish(self) -> list[GenerationEvent]:
        out: list[GenerationEvent] = []
        if not self.raw:
            self._route(self.splitter.finish(), out)
        if self.tools is not None:
            out.extend(self.tools.finish())
            self._emitted_calls += self.tools.calls
        for index in sorted(self._calls):
            slot = self._calls[index]
            try:
                arguments = json.loads(slot["arguments"] or "{}")
            except ValueError:
                arguments = {"_raw": slot["arguments"]}
            out.append(ToolCallEvent(ToolCall(slot["name"], arguments if isinstance(arguments, dict) else
                                              {"_raw": arguments}, slot["id"])))
            self._emitted_calls += 1
        return out

    def usage(self) -> Usage:
        end = time.perf_counter()
        first = self._first if self._first is not None else end
        answer = self.answer_tokens
        if self._completion_tokens:  # the server's count, where it gave one, for the answer's share
            answer = max(answer, self._completion_tokens - self.reasoning_tokens)
        generated = self.reasoning_tokens + answer
        decode_s = end - first
        return Usage(
            prompt_tokens=self._prompt_tokens, cached_prompt_tokens=self._cached_tokens,
            reasoning_tokens=self.reasoning_tokens, answer_tokens=answer,
            time_to_first_token_s=first - self._started,
            prefill_tokens_per_s=0.0,
            decode_tokens_per_s=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
        )

    def final_reason(self, reason: FinishReason) -> FinishReason:
        if reason is FinishReason.STOP and self._emitted_calls:
            return FinishReason.TOOL_CALLS
        return reason
