"""ChatFormatter: prompts from the model's own Jinja chat template, tokenized safely.

The template is rendered the way Hugging Face transformers renders it (sandboxed Jinja, trim_blocks,
lstrip_blocks, the same `tojson`), so a prompt is byte-identical to `apply_chat_template`; the
template runs in engine/template_sandbox.py, within a time, size and memory bound, and a cancelled
generation stops its render.

Tokenization keeps the person's text as text: before rendering, every control-token string inside
message content, tool definitions and tool calls (`<|im_start|>`, `</think>`, `<tool_call>`, ...),
in dict keys as in values, is swapped for a private sentinel; after rendering, the markers left are
exactly the template's own and become special tokens, while the sentinels turn back into their
characters and are tokenized as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.api import Message
from engine.template_limits import DEFAULT_LIMITS, RenderLimits
from engine.template_sandbox import ChatTemplate, compile_template

if TYPE_CHECKING:
    from engine.generation import CancelFlag

# Sentinels come from a Unicode private-use plane that text practically never holds; they are
# themselves escaped, so even text that does hold them survives the round trip.
_SENTINEL_OPEN = "\U000f0000"
_SENTINEL_CLOSE = "\U000f0001"

Tokenize = Callable[[str, bool], list[int]]


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: the exact text, its tokens, and where the last turn starts."""

    text: str
    tokens: list[int]
    last_turn_start: int | None


class _Protector:
    """Swaps marker strings in user-supplied text for sentinels, and back.

    Dict keys are text too (a tool's parameter names, a tool call's argument names): a template
    writes them into the prompt as it writes values, so they are protected the same way.
    """

    def __init__(self, markers: Iterable[str]) -> None:
        protected = sorted({m for m in markers if m} | {_SENTINEL_OPEN, _SENTINEL_CLOSE}, key=len, reverse=True)
        self._index = {m: i for i, m in enumerate(protected)}
        self._by_index = protected
        self._find = re.compile("|".join(re.escape(m) for m in protected))
        self._restore = re.compile(f"{_SENTINEL_OPEN}(\\d+){_SENTINEL_CLOSE}")

    def protect(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._find.sub(lambda m: f"{_SENTINEL_OPEN}{self._index[m.group(0)]}{_SENTINEL_CLOSE}", value)
        if isinstance(value, Mapping):
            return {self.protect(k): self.protect(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.protect(v) for v in value]
        return value

    def restore(self, text: str) -> str:
        return self._restore.sub(lambda m: self._by_index[int(m.group(1))], text)


class ChatFormatter:
    """Renders conversations with a model's template and tokenizes them marker-safely."""

    def __init__(self, template: str | ChatTemplate, special_tokens: Sequence[str], *,
                 bos_token: str = "", eos_token: str = "", limits: RenderLimits = DEFAULT_LIMITS) -> None:
        self._template = compile_template(template) if isinstance(template, str) else template
        self.source = self._template.source
        self.limits = limits
        self._special = tuple(sorted({t for t in special_tokens if t}, key=len, reverse=True))
        self._protector = _Protector(self._special)
        self._split = re.compile("(" + "|".join(re.escape(t) for t in self._special) + ")") if self._special else None
        self._token_kwargs = {"bos_token": bos_token, "eos_token": eos_token}

    @property
    def supports_thinking(self) -> bool:
        return "enable_thinking" in self.source

    def render(self, messages: Sequence[Message], *, thinking: bool = True,
               tools: Sequence[Mapping[str, Any]] = (), add_generation_prompt: bool = True,
               protect: bool = False, cancel: CancelFlag | None = None) -> str:
        """The prompt text. With protect=True, markers inside message text are sentinels.

        Raises ChatTemplateError (the template is broken, too slow or too large), InvalidRequest
        (the template refused the conversation) or RenderCancelled (`cancel` was set).
        """
        convo = [m.to_template() for m in messages]
        tool_list: list[Any] | None = [dict(t) for t in tools] or None
        if protect:
            convo = self._protector.protect(convo)
            tool_list = self._protector.protect(tool_list) if tool_list else None
        variables = {
            "messages": convo, "tools": tool_list, "documents": None, "add_generation_prompt": add_generation_prompt,
            "enable_thinking": thinking, "truncate_history_thinking": True, **self._token_kwargs,
        }
        return self._template.render(variables, limits=self.limits, cancel=cancel)

    def segments(self, protected_text: str) -> list[tuple[str, bool]]:
        """Split rendered text into (text, is_marker) pieces; sentinels become their characters."""
        parts = self._split.split(protected_text) if self._split else [protected_text]
        out: list[tuple[str, bool]] = []
        for i, part in enumerate(parts):
            if not part:
                continue
            is_marker = i % 2 == 1
            out.append((part, True) if is_marker else (self._protector.restore(part), False))
        return out

    def tokenize_text(self, protected_text: str, tokenize: Tokenize) -> list[int]:
        """Tokens for rendered text: template markers special, everything else plain text."""
        tokens: list[int] = []
        for text, is_marker in self.segments(protected_text):
            tokens += tokenize(text, is_marker)
        return tokens

    def prompt(self, messages: Sequence[Message], tokenize: Tokenize, *, thinking: bool = True,
               tools: Sequence[Mapping[str, Any]] = (), turn_marker: str = "<|im_start|>",
               cancel: CancelFlag | None = None) -> Prompt:
        protected = self.render(messages, thinking=thinking, tools=tools, protect=True, cancel=cancel)
        tokens = self.tokenize_text(protected, tokenize)
        marker_ids = tokenize(turn_marker, True) if turn_marker in self._special else []
        last_turn = None
        if len(marker_ids) == 1:
            positions = [i for i, t in enumerate(tokens) if t == marker_ids[0]]
            last_turn = positions[-1] if positions else None
        return Prompt(self._protector.restore(protected), tokens, last_turn)
