"""The remote engine's pure parts: server addresses, and chunks from servers that split reasoning
or not becoming the same events through the one EventBuilder."""

from __future__ import annotations

from typing import Any

import pytest

from engine.api import (
    ContentDelta,
    ReasoningDelta,
    ReasoningEnded,
    RemoteSpec,
    ToolCallEvent,
    normalize_base_url,
    secret_name,
)
from engine.errors import InvalidRequest
from engine.generate.text.budget import BudgetController
from engine.generate.text.events import EventBuilder
from engine.remote.stream import ServerStream


@pytest.mark.parametrize(("given", "expected"), [
    ("gpu-box:8000", "http://gpu-box:8000/v1"),
    ("http://gpu-box:8000/", "http://gpu-box:8000/v1"),
    ("https://integrate.api.nvidia.com/v1/", "https://integrate.api.nvidia.com/v1"),
    ("http://host/proxy/v1", "http://host/proxy/v1"),
])
def test_base_urls(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected
    assert secret_name(given) == f"remote:{expected}"


@pytest.mark.parametrize("bad", ["", "ftp://host", "http://", "   "])
def test_bad_addresses(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        RemoteSpec(bad)


def stream_for(*, starts_in_reasoning: bool, budget: int | None = None,
                 **kw: Any) -> ServerStream:
    rule = BudgetController(budget, 1000, answer_room=False)
    return ServerStream(EventBuilder(rule, starts_in_reasoning=starts_in_reasoning, **kw))


def chat(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def run(stream: ServerStream, chunks: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for chunk in chunks:
        out += stream.absorb_chunk(chunk)
    return out + stream.finish()


def texts(events: list[Any]) -> tuple[str, str]:
    return ("".join(e.text for e in events if isinstance(e, ReasoningDelta)),
            "".join(e.text for e in events if isinstance(e, ContentDelta)))


def test_split_and_unsplit_servers_give_the_same_events() -> None:
    split = run(stream_for(starts_in_reasoning=True),
                [chat(reasoning_content="Blue light "), chat(reasoning_content="scatters.\n"),
                 chat(content="\n\nRayleigh"), chat(content=" scattering.")])
    unsplit = run(stream_for(starts_in_reasoning=True),
                  [chat(content="Blue light "), chat(content="scatters.\n</th"), chat(content="ink>\n\nRayleigh"),
                   chat(content=" scattering.")])
    assert texts(split) == texts(unsplit) == ("Blue light scatters.", "Rayleigh scattering.")
    assert [e for e in split if isinstance(e, ReasoningEnded)] == [ReasoningEnded(False, 2)]
    # as locally, the piece that closes the thinking counts as thinking
    assert [e for e in unsplit if isinstance(e, ReasoningEnded)] == [ReasoningEnded(False, 3)]


def test_vllm_newer_reasoning_field_and_a_prompt_that_did_not_open_thinking() -> None:
    events = run(stream_for(starts_in_reasoning=False), [chat(reasoning="Hmm."), chat(content="Yes.")])
    assert texts(events) == ("Hmm.", "Yes.")


def test_inserted_closing_is_by_budget_and_continues_the_text() -> None:
    stream = stream_for(starts_in_reasoning=True, budget=2)
    events = run(stream, [{"choices": [{"index": 0, "text": "one two"}]}])
    events += stream.builder.insert(".\n</think>\n\n", 0)
    assert ReasoningEnded(True, 1) in events
    assert stream.builder.written == "one two.\n</think>\n\n" and not stream.builder.in_reasoning


def test_streamed_tool_call_pieces() -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "weather", "arguments": '{"city": '}}
    more = {"index": 0, "function": {"arguments": '"Oslo"}'}}
    stream = stream_for(starts_in_reasoning=False)
    events = run(stream, [chat(tool_calls=[call]), chat(tool_calls=[more])])
    (event,) = [e for e in events if isinstance(e, ToolCallEvent)]
    assert event.call.name == "weather" and event.call.arguments == {"city": "Oslo"} and event.call.id == "c1"


def test_generated_follows_the_servers_count_when_pieces_hold_several_tokens() -> None:
    stream = stream_for(starts_in_reasoning=True)
    run(stream, [chat(reasoning_content="several tokens at once"),
                 {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}}])
    assert stream.generated == 5 and stream.builder.reasoning_tokens == 1
    assert stream.usage().prompt_tokens == 9
