"""ChatFormatter: prompts from the model's own Jinja chat template, tokenized safely.

The template is rendered the way Hugging Face transformers renders it (sandboxed Jinja, trim_blocks,
lstrip_blocks, the same `tojson`), so a prompt is byte-identical to `apply_chat_template`.

Tokenization keeps the person's text as text: before rendering, every control-token string inside
message content (`<|im_start|>`, `</think>`, `<tool_call>`, ...) is swapped for a private sentinel;
after rendering, the markers left are exactly the template's own and become special tokens, while
the sentinels turn back into their characters and are tokenized as plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.api import Message
from engine.errors import InvalidRequest, ModelLoadError

# Sentinels come from a Unicode private-use plane that text practically never holds; they are
# themselves escaped, so even text that does hold them survives the round trip.
_SENTINEL_OPEN = "\U000f0000"
_SENTINEL_CLOSE = "\U000f0001"

Tokenize = Callable[[str, bool], list[int]]


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def compile_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise ModelLoadError(f"The model's chat template does not parse: {exc}.",
                             "Use a model file with a valid chat template.") from exc


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: the exact text, its tokens, and where the last turn starts."""

    text: str
    tokens: list[int]
    last_turn_start: int | None


class _Protector:
    """Swaps marker strings in user-supplied text for sentinels, and back."""

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
            return {k: self.protect(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.protect(v) for v in value]
        return value

    def restore(self, text: str) -> str:
        return self._restore.sub(lambda m: self._by_index[int(m.group(1))], text)


class ChatFormatter:
    """Renders conversations with a model's template and tokenizes them marker-safely."""

    def __init__(self, template_source: str, special_tokens: Sequence[str], *,
                 bos_token: str = "", eos_token: str = "") -> None:
        self.source = template_source
        self._template = compile_template(template_source)
        self._special = tuple(sorted({t for t in special_tokens if t}, key=len, reverse=True))
        self._protector = _Protector(self._special)
        self._split = re.compile("(" + "|".join(re.escape(t) for t in self._special) + ")") if self._special else None
        self._token_kwargs = {"bos_token": bos_token, "eos_token": eos_token}

    @property
    def supports_thinking(self) -> bool:
        return "enable_thinking" in self.source

    def render(self, messages: Sequence[Message], *, thinking: bool = True,
               tools: Sequence[Mapping[str, Any]] = (), add_generation_prompt: bool = True,
               protect: bool = False) -> str:
        """The prompt text. With protect=True, markers inside message text are sentinels."""
        convo = [m.to_template() for m in messages]
        tool_list: list[Any] | None = [dict(t) for t in tools] or None
        if protect:
            convo = self._protector.protect(convo)
            tool_list = self._protector.protect(tool_list) if tool_list else None
        try:
            text = self._template.render(
                messages=convo, tools=tool_list, documents=None,
                add_generation_prompt=add_generation_prompt, enable_thinking=thinking,
                truncate_history_thinking=True, **self._token_kwargs,
            )
        except jinja2.TemplateError as exc:
            raise InvalidRequest(
                f"The model's chat template refused this conversation: {exc}",
                "Check the order of the messages (roles must alternate as the model expects).",
            ) from exc
        return text

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
               tools: Sequence[Mapping[str, Any]] = (), turn_marker: str = "<|im_start|>") -> Prompt:
        protected = self.render(messages, thinking=thinking, tools=tools, protect=True)
        tokens = self.tokenize_text(protected, tokenize)
        marker_ids = tokenize(turn_marker, True) if turn_marker in self._special else []
        last_turn = None
        if len(marker_ids) == 1:
            positions = [i for i, t in enumerate(tokens) if t == marker_ids[0]]
            last_turn = positions[-1] if positions else None
        return Prompt(self._protector.restore(protected), tokens, last_turn)
