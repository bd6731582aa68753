"""Requests validate on construction, with messages a person can act on."""

from __future__ import annotations

import math

import pytest

from engine.api import GenerationRequest, Message, SamplingParams
from engine.errors import InvalidRequest

HELLO = (Message("user", "hi"),)


@pytest.mark.parametrize("kwargs", [
    {"temperature": -0.1}, {"temperature": math.nan}, {"temperature": 7.0},
    {"top_p": 0.0}, {"top_p": 1.5}, {"min_p": -1.0}, {"top_k": -3},
    {"max_tokens": 0}, {"seed": -1}, {"stop": ("",)},
])
def test_bad_sampling_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest) as info:
        SamplingParams(**kwargs)  # type: ignore[arg-type]
    name = next(iter(kwargs))
    assert name in info.value.message.lower()
    assert info.value.action


@pytest.mark.parametrize("budget", [-1, 2**21, 1.5])
def test_bad_budgets_are_refused(budget: object) -> None:
    with pytest.raises(InvalidRequest, match="reasoning budget"):
        GenerationRequest(HELLO, reasoning_budget=budget)  # type: ignore[arg-type]


def test_good_values_pass() -> None:
    req = GenerationRequest(HELLO, thinking=False, reasoning_budget=0,
                            sampling=SamplingParams(temperature=0.0, top_k=40, seed=7, stop=("\n\n",)))
    assert req.reasoning_budget == 0


def test_empty_conversation_and_unknown_role() -> None:
    with pytest.raises(InvalidRequest):
        GenerationRequest(())
    with pytest.raises(InvalidRequest, match="role"):
        Message("wizard", "x")  # type: ignore[arg-type]


def test_message_template_shape() -> None:
    from engine.api import ToolCall
    m = Message("assistant", "42", reasoning="think", tool_calls=(ToolCall("add", {"a": 1}),))
    d = m.to_template()
    assert d["reasoning_content"] == "think"
    assert d["tool_calls"][0]["function"] == {"name": "add", "arguments": {"a": 1}}


def _deep(levels: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("levels", [70, 600, 100_000])
def test_deep_tools_and_arguments_are_refused_where_the_request_is_made(levels: int) -> None:
    """The GUI and the CLI build requests too: the engine's own check, not only the server's."""
    from engine.api import ToolCall

    with pytest.raises(InvalidRequest, match=r"tools\[0\]\.a\.a.*nested more than 64 levels") as info:
        GenerationRequest(HELLO, tools=(_deep(levels),))
    assert info.value.action
    call = ToolCall("f", _deep(levels))
    with pytest.raises(InvalidRequest, match=r"messages\[1\]\.tool_calls\[0\]\.function\.arguments"):
        GenerationRequest((*HELLO, Message("assistant", "", tool_calls=(call,))))


def test_a_schema_of_ordinary_depth_passes() -> None:
    GenerationRequest(HELLO, tools=({"type": "function", "function": {"name": "f", "parameters": _deep(50)}},))


@pytest.mark.parametrize(("kwargs", "where"), [
    ({"messages": (Message("user", "a\ud800b"),)}, "messages[0].content"),
    ({"messages": (Message("user", "ok", reasoning="\udcff"),)}, "messages[0].reasoning_content"),
    ({"prompt": "x\udfff"}, "prompt"),
    ({"messages": HELLO, "tools": ({"\ud800": 1},)}, "tools[0]"),
])
def test_text_that_is_not_unicode_is_refused_naming_the_place(kwargs: dict[str, object], where: str) -> None:
    """A lone surrogate (a JSON "\\ud800" escape, or a command-line byte Python could not decode)."""
    with pytest.raises(InvalidRequest, match="lone surrogate") as info:
        GenerationRequest(**kwargs)  # type: ignore[arg-type]
    assert info.value.message.startswith(where)


def test_a_lone_surrogate_in_a_stop_string_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"^stop\[0\] holds a lone surrogate"):
        SamplingParams(stop=("\ud83d",))


def test_a_surrogate_pair_is_ordinary_text() -> None:
    GenerationRequest((Message("user", "smile \U0001f600"),))


@pytest.mark.parametrize("value", ["false", 0, None])
def test_switches_must_be_booleans(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^thinking must be true or false"):
        GenerationRequest(HELLO, thinking=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match=r"^ignore_eos must be true or false"):
        SamplingParams(ignore_eos=value)  # type: ignore[arg-type]


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="not a JSON value"):
        GenerationRequest(HELLO, tools=({"f": object()},))
    with pytest.raises(InvalidRequest, match="key that is not text"):
        GenerationRequest(HELLO, tools=({1: "x"},))  # type: ignore[dict-item]
    with pytest.raises(InvalidRequest, match="content must be text"):
        Message("user", None)  # type: ignore[arg-type]
