"""Tool calls in the model's answer: the qwen3_coder format Nemotron-3-Nano writes, parsed as it streams.

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

The model may leave out the last `</parameter>`. Parameter values are text; each is converted by the
tool's JSON schema (integer, number, boolean, object, array), so arguments come out as the mapping
the chat template needs when the call goes back into the history. Only answer text is parsed: a
`<tool_call>` inside the reasoning is thinking, not a call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from engine.api import ContentDelta, ToolCall, ToolCallEvent
from engine.generate.text.stops import held_prefix_length

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_FUNCTION = re.compile(r"<function=([^>\n]+)>")
_PARAMETER = re.compile(r"<parameter=([^>\n]+)>")
_PARAM_END = re.compile(r"</parameter>|</function>|<parameter=")


def schemas_by_name(tools: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Parameter schemas of OpenAI-style tool definitions, by function name."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        fn = tool.get("function", tool)
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters") or {}
            props = params.get("properties") if isinstance(params, Mapping) else None
            out[fn["name"]] = dict(props) if isinstance(props, Mapping) else {}
    return out


def convert_value(raw: str, schema: Mapping[str, Any] | None) -> Any:
    """A parameter's text as the type its JSON schema asks for; text when it does not parse."""
    kind = schema.get("type") if schema else None
    if kind == "string":
        return raw
    if kind == "boolean":
        lowered = raw.strip().lower()
        return {"true": True, "false": False}.get(lowered, raw)
    if kind in ("integer", "number", "object", "array", None) or isinstance(kind, list):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind is None and not isinstance(value, (dict, list, int, float, bool)) and value is not None:
            return raw
        return value
    return raw


def parse_block(block: str, schemas: Mapping[str, Mapping[str, Any]]) -> ToolCall | None:
    """One `<tool_call>` body (without the tags) as a ToolCall, or None when it names no function."""
    match = _FUNCTION.search(block)
    if match is None:
        return None
    name = match.group(1).strip()
    props = schemas.get(name, {})
    arguments: dict[str, Any] = {}
    for param in _PARAMETER.finditer(block, match.end()):
        start = param.end()
        end_match = _PARAM_END.search(block, start)
        raw = block[start: end_match.start() if end_match else len(block)]
        raw = raw.removeprefix("\n").removesuffix("\n")
        key = param.group(1).strip()
        arguments[key] = convert_value(raw, props.get(key))
    return ToolCall(name=name, arguments=arguments, id=f"call_{uuid.uuid4().hex[:24]}")


class ToolCallParser:
    """Streams answer text through; turns complete `<tool_call>` blocks into ToolCallEvents."""

    def __init__(self, tools: Sequence[Mapping[str, Any]]) -> None:
        self._schemas = schemas_by_name(tools)
        self._held = ""
        self._in_call = False
        self.calls = 0

    def feed(self, text: str) -> list[ContentDelta | ToolCallEvent]:
        out: list[ContentDelta | ToolCallEvent] = []
        self._held += text
        while self._held:
            marker = CLOSE if self._in_call else OPEN
            index = self._held.find(marker)
            if index < 0:
                if not self._in_call:
                    keep = held_prefix_length(self._held, (OPEN,))
                    self._emit_text(self._held[: len(self._held) - keep], out)
                    self._held = self._held[len(self._held) - keep:]
                break
            before, self._held = self._held[:index], self._held[index + len(marker):]
            if self._in_call:
                self._emit_call(before, out)
            else:
                self._emit_text(before, out)
            self._in_call = not self._in_call
        return out

    def finish(self) -> list[ContentDelta | ToolCallEvent]:
        """End of the answer: a call missing its `</tool_call>` still counts if it names a function."""
        out: list[ContentDelta | ToolCallEvent] = []
        held, self._held = self._held, ""
        if self._in_call:
            if not self._emit_call(held, out):
                self._emit_text(OPEN + held, out)
        else:
            self._emit_text(held, out)
        return out

    def _emit_text(self, text: str, out: list[ContentDelta | ToolCallEvent]) -> None:
        # Text after a call is only the whitespace between calls; the format allows no suffix.
        if text and not (self.calls and not text.strip()):
            out.append(ContentDelta(text))

    def _emit_call(self, block: str, out: list[ContentDelta | ToolCallEvent]) -> bool:
        call = parse_block(block, self._schemas)
        if call is None:
            return False
        self.calls += 1
        out.append(ToolCallEvent(call))
        return True
