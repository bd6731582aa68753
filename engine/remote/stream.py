"""ServerStream: what is server-specific in a remote answer, mapped into engine.generate's EventBuilder.

The events themselves (phases, whitespace, stop strings, tool calls in the text, token counts,
ReasoningEnded and its cause) come from the one EventBuilder. What is left here is the servers' part:

- server-split reasoning (`reasoning_content`, or vLLM's newer `reasoning`) is put back between think
  markers before it goes in, so a server that splits and one that does not give the same events, and
  `builder.written` is the text the model has written (inserted closings included): what a
  continuation request appends to the rendered prompt;
- vLLM's nemotron_v3 parser with thinking off streams the answer as reasoning, then repeats it;
- tool calls the server parsed itself arrive as `tool_calls` pieces;
- the server's usage figures (prompt, cached, completion tokens) where it gives them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from engine.api import GenerationEvent, ToolCall, ToolCallEvent, Usage
from engine.generate.text.events import EventBuilder
from engine.generate.text.reasoning import THINK_CLOSE, THINK_OPEN, Phase


class ServerStream:
    """One answer's chunks, across one or several requests, into `builder`."""

    def __init__(self, builder: EventBuilder, *, thinking: bool = True) -> None:
        self.builder = builder
        self.thinking = thinking
        self._answer_as_reasoning = ""  # thinking off, yet the server called the answer reasoning
        self._server_reasoning_open = False
        self._calls: dict[int, dict[str, str]] = {}
        self._started = time.perf_counter()
        self._first: float | None = None
        self._prompt_tokens = 0
        self._cached_tokens = 0
        self._completion_tokens = 0

    @property
    def generated(self) -> int:
        """Tokens generated so far: the server's count where it gave one (a piece may hold several)."""
        return max(self.builder.generated, self._completion_tokens)

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
            opening = THINK_OPEN if self.builder.splitter.phase is Phase.START else ""
            self._server_reasoning_open = True
            out += self._text(opening + reasoning)
        if content:
            if self._server_reasoning_open:  # the server ended the reasoning: the content is answer
                out += self._text(THINK_CLOSE, tokens=0)
                self._server_reasoning_open = False
            out += self._text(content)
        return out

    def _text(self, text: str, tokens: int = 1) -> list[GenerationEvent]:
        """One streamed piece: one token on every server we know (the server's usage corrects it)."""
        if not text:
            return []
        if tokens and self._first is None:
            self._first = time.perf_counter()
        return self.builder.feed(text, tokens)

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
        out = self.builder.finish()
        for index in sorted(self._calls):
            slot = self._calls[index]
            try:
                arguments = json.loads(slot["arguments"] or "{}")
            except ValueError:
                arguments = {"_raw": slot["arguments"]}
            out.append(ToolCallEvent(ToolCall(slot["name"], arguments if isinstance(arguments, dict) else
                                              {"_raw": arguments}, slot["id"])))
        return out

    @property
    def server_calls(self) -> int:
        return len(self._calls)

    def usage(self) -> Usage:
        end = time.perf_counter()
        first = self._first if self._first is not None else end
        reasoning, answer = self.builder.reasoning_tokens, self.builder.answer_tokens
        if self._completion_tokens:  # the server's count, where it gave one, for the answer's share
            answer = max(answer, self._completion_tokens - reasoning)
        generated = reasoning + answer
        decode_s = end - first
        return Usage(
            prompt_tokens=self._prompt_tokens, cached_prompt_tokens=self._cached_tokens,
            reasoning_tokens=reasoning, answer_tokens=answer,
            time_to_first_token_s=first - self._started,
            prefill_tokens_per_s=0.0,
            decode_tokens_per_s=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
        )
