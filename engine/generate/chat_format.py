"""ChatFormatter: prompts from the model's own Jinja chat template, tokenized safely.

The template is rendered the way Hugging Face transformers renders it (sandboxed Jinja, trim_blocks,
lstrip_blocks, the same `tojson`, `add_generation_prompt` and `continue_final_message` as
`apply_chat_template` defines them), so a prompt is byte-identical to transformers' and its tokens
are the same ids; the template runs in engine/generate/templates/sandbox.py, within a time, size and memory
bound, and a cancelled generation stops its render. One deliberate difference:

Text a person or a tool wrote stays text. Before rendering, every control-token string inside
user, system and tool content, tool-call names and arguments, tool definitions and template
variables (`<|im_start|>`, `</think>`, `<tool_call>`, ...), in dict keys as in values, is swapped
for a private sentinel; after rendering, the markers left are the template's own and become special
tokens, while the sentinels turn back into their characters and are tokenized as plain text.

Assistant turns are the model's own writing: in their content and reasoning the reasoning markers
`<think>` and `</think>` stay markers, so the template's own reasoning logic (its truncation of old
reasoning, its split on `</think>`) sees them as transformers would; every other control token in
them (turn and tool-call markers) is text, so no message can open a turn or a call of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.api import Message
from engine.errors import InvalidRequest
from engine.generate.templates.limits import DEFAULT_LIMITS, RenderLimits
from engine.generate.templates.sandbox import ChatTemplate, compile_template
from engine.generate.text.reasoning import THINK_CLOSE, THINK_OPEN, prompt_opens_reasoning

if TYPE_CHECKING:
    from engine.generate.loop import CancelFlag

# Sentinels come from a Unicode private-use plane that text practically never holds; they are
# themselves escaped, so even text that does hold them survives the round trip.
_SENTINEL_OPEN = "\U000f0000"
_SENTINEL_CLOSE = "\U000f0001"

Tokenize = Callable[[str, bool], list[int]]

#: What transformers appends to the final message to find where it ends in the rendered text.
CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
#: Markers the model writes in its own turns and the template reads there.
ASSISTANT_MARKERS = frozenset({THINK_OPEN, THINK_CLOSE})


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: the exact text, its tokens, where the last turn starts, and whether it
    ends inside an open reasoning block (decided on the template's own markers, not a person's)."""

    text: str
    tokens: list[int]
    last_turn_start: int | None
    opens_reasoning: bool = False


class _Protector:
    """Swaps marker strings in user-supplied text for sentinels, and back.

    `live` names markers that stay markers in this value (the reasoning markers in assistant turns);
    the sentinels themselves are always escaped. Dict keys are text too (a tool's parameter names, a
    tool call's argument names): a template writes them into the prompt as it writes values, so they
    are protected the same way (always fully).
    """

    def __init__(self, markers: Iterable[str]) -> None:
        protected = sorted({m for m in markers if m} | {_SENTINEL_OPEN, _SENTINEL_CLOSE}, key=len, reverse=True)
        self._index = {m: i for i, m in enumerate(protected)}
        self._by_index = protected
        self._finders: dict[frozenset[str], re.Pattern[str]] = {}
        self._restore = re.compile(f"{_SENTINEL_OPEN}(\\d+){_SENTINEL_CLOSE}")

    def _finder(self, live: frozenset[str]) -> re.Pattern[str]:
        if live not in self._finders:
            kept = [m for m in self._by_index if m not in live]
            self._finders[live] = re.compile("|".join(re.escape(m) for m in kept))
        return self._finders[live]

    def protect(self, value: Any, live: frozenset[str] = frozenset()) -> Any:
        if isinstance(value, str):
            return self._finder(live).sub(
                lambda m: f"{_SENTINEL_OPEN}{self._index[m.group(0)]}{_SENTINEL_CLOSE}", value)
        if isinstance(value, Mapping):
            return {self.protect(k): self.protect(v, live) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.protect(v, live) for v in value]
        return value

    def protect_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A template message with only the markers its author may write left live."""
        if message.get("role") != "assistant":
            return {k: self.protect(v) for k, v in message.items()}
        return {k: self.protect(v, frozenset() if k == "tool_calls" else ASSISTANT_MARKERS)
                for k, v in message.items()}

    def restore(self, text: str) -> str:
        return self._restore.sub(lambda m: self._by_index[int(m.group(1))], text)


class ChatFormatter:
    """Renders conversations with a model's template and tokenizes them marker-safely."""

    def __init__(self, template: str | ChatTemplate, special_tokens: Sequence[str], *,
                 bos_token: str = "", eos_token: str = "", limits: RenderLimits = DEFAULT_LIMITS) -> None:
        self._template = compile_template(template) if isinstance(template, str) else template
        self.source = self._template.source
        self.limits = limits
        #: The variables the template reads: what chat_template_kwargs may set.
        self.variables = self._template.variables
        self._special = tuple(sorted({t for t in special_tokens if t}, key=len, reverse=True))
        self._protector = _Protector(self._special)
        self._split = re.compile("(" + "|".join(re.escape(t) for t in self._special) + ")") if self._special else None
        self._token_kwargs = {"bos_token": bos_token, "eos_token": eos_token}

    @property
    def supports_thinking(self) -> bool:
        return "enable_thinking" in self.source

    def render(self, messages: Sequence[Message], *, thinking: bool = True,
               tools: Sequence[Mapping[str, Any]] = (), add_generation_prompt: bool = True,
               continue_final_message: bool = False, template_kwargs: Mapping[str, Any] | None = None,
               protect: bool = False, cancel: CancelFlag | None = None) -> str:
        """The prompt text, as apply_chat_template gives it. With protect=True, markers inside text a
        person or tool wrote are sentinels.

        Raises ChatTemplateError (the template is broken, too slow or too large), InvalidRequest
        (the template refused the conversation, or the options cannot apply) or RenderCancelled
        (`cancel` was set).
        """
        if continue_final_message and add_generation_prompt:
            raise InvalidRequest("continue_final_message and add_generation_prompt cannot both be true.",
                                 "Set add_generation_prompt to false to continue the final message.")
        kwargs = self._checked_kwargs(template_kwargs or {})
        convo = [m.to_template() for m in messages]
        tool_list: list[Any] | None = [dict(t) for t in tools] or None
        if protect:
            convo = [self._protector.protect_message(m) for m in convo]
            tool_list = self._protector.protect(tool_list) if tool_list else None
            kwargs = self._protector.protect(kwargs)
        final = convo[-1]["content"] if continue_final_message and convo else None
        if continue_final_message:
            self._tag_final_message(convo)
        variables = {
            "messages": convo, "tools": tool_list, "documents": None, "add_generation_prompt": add_generation_prompt,
            **self._token_kwargs, "enable_thinking": thinking, **kwargs,
        }
        text = self._template.render(variables, limits=self.limits, cancel=cancel)
        return _cut_after_final_message(text, final) if final is not None else text

    def _checked_kwargs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        unread = sorted(set(kwargs) - self.variables)
        if unread:
            readable = sorted(self.variables - {"messages", "tools", "documents", "bos_token", "eos_token"})
            raise InvalidRequest(
                f"The model's chat template does not read {', '.join(repr(k) for k in unread)} "
                "(chat_template_kwargs), so it would have no effect.",
                f"Leave it out; this template reads: {', '.join(readable) or 'no further variables'}.")
        return dict(kwargs)

    def _tag_final_message(self, convo: list[dict[str, Any]]) -> None:
        if not convo:
            raise InvalidRequest("continue_final_message is set but the conversation is empty.",
                                 "Send the message to continue as the last one.")
        if "content" not in self.source:
            raise InvalidRequest("This chat template does not read message content, so continue_final_message "
                                 "cannot continue it.", "Leave continue_final_message out.")
        convo[-1] = {**convo[-1], "content": convo[-1]["content"] + CONTINUE_TAG}

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
               tools: Sequence[Mapping[str, Any]] = (), add_generation_prompt: bool = True,
               continue_final_message: bool = False, template_kwargs: Mapping[str, Any] | None = None,
               turn_marker: str = "<|im_start|>", cancel: CancelFlag | None = None) -> Prompt:
        protected = self.render(messages, thinking=thinking, tools=tools, add_generation_prompt=add_generation_prompt,
                                continue_final_message=continue_final_message, template_kwargs=template_kwargs,
                                protect=True, cancel=cancel)
        tokens = self.tokenize_text(protected, tokenize)
        marker_ids = tokenize(turn_marker, True) if turn_marker in self._special else []
        last_turn = None
        if len(marker_ids) == 1:
            positions = [i for i, t in enumerate(tokens) if t == marker_ids[0]]
            last_turn = positions[-1] if positions else None
        return Prompt(self._protector.restore(protected), tokens, last_turn, prompt_opens_reasoning(protected))


def _cut_after_final_message(text: str, final: str) -> str:
    """transformers' continue_final_message: the text ends where the final message's content does."""
    tag = CONTINUE_TAG.strip()
    if final.strip() not in text or tag not in text:
        raise InvalidRequest(
            "continue_final_message is set, but the chat template leaves out part of the final message, "
            "so it cannot be continued.", "Continue a message the template renders whole (an assistant turn).")
    at = text.rindex(tag)
    if text[at:at + len(CONTINUE_TAG)] == CONTINUE_TAG:
        return text[:at]  # the template kept the message's spacing
    return text[:at].rstrip()  # the template trimmed it: so is the continued text
