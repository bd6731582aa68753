"""Engine events to OpenAI bodies: checked against the official client's own response types."""

from __future__ import annotations

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.server.convert import ChunkMaker, full_response
from engine.api import ContentDelta, FinishReason, ReasoningDelta, ToolCall, ToolCallEvent, Usage

USAGE = Usage(prompt_tokens=10, cached_prompt_tokens=4, reasoning_tokens=3, answer_tokens=7,
              time_to_first_token_s=0.1, prefill_tokens_per_s=100.0, decode_tokens_per_s=50.0)
EVENTS = [ReasoningDelta("Need the tool."), ContentDelta("Checking."),
          ToolCallEvent(ToolCall("get_weather", {"city": "Paris", "days": 2}, "call_a")),
          ToolCallEvent(ToolCall("get_time", {}, "call_b"))]


def test_full_chat_response_with_tool_calls_parses_in_the_openai_client() -> None:
    body = full_response(ChunkMaker("m", chat=True), EVENTS, FinishReason.TOOL_CALLS, USAGE)
    reply = ChatCompletion.model_validate(body)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert (choice.message.model_extra or {})["reasoning_content"] == "Need the tool."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_a", "get_weather", '{"city": "Paris", "days": 2}'), ("call_b", "get_time", "{}")]
    assert reply.usage is not None and reply.usage.total_tokens == 20
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 3


def test_stream_chunks_parse_in_the_openai_client() -> None:
    maker = ChunkMaker("m", chat=True)
    chunks = [maker.first()] + [c for e in EVENTS if (c := maker.delta(e)) is not None]
    chunks.append(maker.last(FinishReason.TOOL_CALLS))
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    tool_deltas = [d for p in parsed for d in p.choices[0].delta.tool_calls or []]
    assert [d.index for d in tool_deltas] == [0, 1]
    assert parsed[-1].choices[0].finish_reason == "tool_calls"
    assert len({p.id for p in parsed}) == 1


def test_cancelled_maps_to_stop_and_reasoning_can_be_left_out() -> None:
    body = full_response(ChunkMaker("m", chat=True), EVENTS[:2], FinishReason.CANCELLED, USAGE,
                         include_reasoning=False)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert "reasoning_content" not in body["choices"][0]["message"]
