"""Tool-call parsing of the qwen3_coder format, as it streams."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api import ContentDelta, ToolCallEvent
from engine.generate.text.tool_calls import ToolCallParser, convert_value

TOOLS: tuple[dict[str, Any], ...] = ({
    "type": "function",
    "function": {"name": "book", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "nights": {"type": "integer"}, "price": {"type": "number"},
        "breakfast": {"type": "boolean"}, "guests": {"type": "array"}, "extras": {"type": "object"},
        "code": {"type": "string"},
    }}},
},)

CALL = ("Let me book it.\n<tool_call>\n<function=book>\n<parameter=city>\nNew York\n</parameter>\n"
        "<parameter=nights>\n3\n</parameter>\n<parameter=price>\n99.5\n</parameter>\n"
        "<parameter=breakfast>\nTrue\n</parameter>\n<parameter=guests>\n[\"Ann\", \"Bo\"]\n</parameter>\n"
        "<parameter=extras>\n{\"late\": true}\n</parameter>\n<parameter=code>\n007\n</parameter>\n"
        "</function>\n</tool_call>")


def parse(chunks: list[str]) -> tuple[str, list[ToolCallEvent]]:
    parser = ToolCallParser(TOOLS)
    events = [e for c in chunks for e in parser.feed(c)] + parser.finish()
    text = "".join(e.text for e in events if isinstance(e, ContentDelta))
    return text, [e for e in events if isinstance(e, ToolCallEvent)]


def test_a_call_with_every_schema_type() -> None:
    text, calls = parse([CALL])
    assert text == "Let me book it.\n"
    (event,) = calls
    assert event.call.name == "book" and event.call.id.startswith("call_")
    assert event.call.arguments == {"city": "New York", "nights": 3, "price": 99.5, "breakfast": True,
                                    "guests": ["Ann", "Bo"], "extras": {"late": True}, "code": "007"}


def test_missing_last_parameter_close_and_missing_tool_call_close() -> None:
    _, calls = parse(["<tool_call>\n<function=book>\n<parameter=city>\nOslo\n</function>\n</tool_call>"])
    assert calls[0].call.arguments == {"city": "Oslo"}
    _, calls = parse(["<tool_call>\n<function=book>\n<parameter=nights>\n2\n"])  # cut by max_tokens
    assert calls[0].call.arguments == {"nights": 2}


def test_two_calls_and_no_function_is_text() -> None:
    block = "<tool_call>\n<function=book>\n<parameter=city>\nA\n</parameter>\n</function>\n</tool_call>"
    text, calls = parse([block + "\n" + block.replace(">\nA\n", ">\nB\n")])
    assert [c.call.arguments["city"] for c in calls] == ["A", "B"]
    assert text == ""
    text, calls = parse(["I would use <tool_call> here"])
    assert not calls and text == "I would use <tool_call> here"


def test_unknown_tool_values_are_guessed_safely() -> None:
    assert convert_value("12", None) == 12
    assert convert_value("hello world", None) == "hello world"
    assert convert_value("\"quoted\"", None) == "\"quoted\""
    assert convert_value("not json", {"type": "object"}) == "not json"
    assert convert_value("3.0", {"type": "integer"}) == 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(CALL)), max_size=10))
def test_chunking_does_not_change_the_result(cuts: list[int]) -> None:
    bounds = sorted(set(cuts))
    chunks = [CALL[a:b] for a, b in zip([0, *bounds], [*bounds, len(CALL)], strict=False)]
    text, calls = parse(chunks)
    whole_text, whole_calls = parse([CALL])
    assert text == whole_text
    assert [c.call.arguments for c in calls] == [c.call.arguments for c in whole_calls]
