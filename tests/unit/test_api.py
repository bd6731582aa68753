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
