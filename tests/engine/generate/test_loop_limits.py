"""The one loop's limits on the real architecture (tiny Nemotron-H on llama.cpp): max_tokens is a hard
limit with everything the engine feeds on its own counted inside it (the budget's closing, the
answer-room guard the GUI and CLI keep), stop strings apply in the reasoning too, and reasoning left
inline (a server without a reasoning parser) still has its tool calls parsed in the answer only."""

from __future__ import annotations

import pytest

from engine.api import (
    ContentDelta,
    FinishReason,
    GenerationRequest,
    Message,
    ReasoningDelta,
    SamplingParams,
    ToolCallEvent,
)
from engine.generate.loop import LoopOptions, _Run
from engine.worker.session import EngineSession
from tests.engine.helpers import collect

QUESTION = (Message("user", "Why is the sky blue?"),)


@pytest.mark.parametrize("budget", [None, 0, 1, 3])
@pytest.mark.parametrize("thinking", [True, False])
def test_max_tokens_counts_the_engines_own_tokens(nemotron_session: EngineSession, thinking: bool,
                                                  budget: int | None) -> None:
    backend = nemotron_session.backend
    assert backend is not None
    for max_tokens in range(1, 9):
        request = GenerationRequest(QUESTION, thinking=thinking, reasoning_budget=budget,  # the GUI's defaults
                                    sampling=SamplingParams(seed=max_tokens, max_tokens=max_tokens))
        answer = collect(nemotron_session.generate(request))
        assert not answer.errors
        used = answer.usage.completion_tokens
        fed = len(backend.tokens) - answer.usage.prompt_tokens  # all but the last token, which is never fed
        assert used <= max_tokens and fed <= max_tokens, (max_tokens, used, fed)
        if answer.finish is FinishReason.LENGTH:
            assert used == max_tokens


def test_a_closing_that_does_not_fit_is_cut_at_max_tokens(nemotron_session: EngineSession) -> None:
    answer = collect(nemotron_session.generate(GenerationRequest(
        QUESTION, reasoning_budget=0, sampling=SamplingParams(seed=1, max_tokens=1))))
    assert answer.usage.completion_tokens == 1 and answer.finish is FinishReason.LENGTH
    assert [e.by_budget for e in answer.ended] == [True]  # "</think>" fitted; "\n\n" did not


def test_answer_room_guard_only_when_asked(nemotron_session: EngineSession) -> None:
    def ask(keep: bool) -> tuple[str, int]:
        request = GenerationRequest(QUESTION, keep_answer_room=keep, split_reasoning=False,
                                    sampling=SamplingParams(temperature=0.0, max_tokens=40))
        answer = collect(nemotron_session.generate(request))
        return answer.content, answer.usage.reasoning_tokens

    guarded, guarded_reasoning = ask(True)
    plain, plain_reasoning = ask(False)
    assert "</think>" in guarded and guarded_reasoning < 40  # closed early to leave the answer its room
    assert plain_reasoning == 40 and "</think>" not in plain  # max_tokens as OpenAI means it


def test_stop_string_in_the_reasoning_ends_the_generation(nemotron_session: EngineSession) -> None:
    sampling = SamplingParams(temperature=0.0, max_tokens=40)
    raw = collect(nemotron_session.generate(GenerationRequest(QUESTION, split_reasoning=False, sampling=sampling)))
    stop = next(raw.content[i:i + 3] for i in range(8, len(raw.content) - 3) if raw.content[i:i + 3].isalpha())
    stopped = collect(nemotron_session.generate(GenerationRequest(
        QUESTION, sampling=SamplingParams(temperature=0.0, max_tokens=40, stop=(stop,)))))
    assert stopped.finish is FinishReason.STOP
    assert stopped.reasoning == raw.content[:raw.content.index(stop)].strip()
    assert stopped.content == ""


def test_inline_reasoning_parses_tool_calls_in_the_answer_only(nemotron_session: EngineSession) -> None:
    backend = nemotron_session.backend
    assert backend is not None
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "integer"}}}}}
    block = "<tool_call>\n<function=f>\n<parameter=x>\n1\n</parameter>\n</function>\n</tool_call>"
    text = f"Maybe {block} later.\n</think>\n\nCalling now.\n{block}"
    run = _Run(backend, LoopOptions(SamplingParams(), starts_in_reasoning=True, tools=(tool,), raw_text=True),
               lambda t: backend.tokenize(t, special=True))
    out: list = []  # type: ignore[type-arg]
    for token in backend.tokenize(text, special=True):
        out += run.events.feed(run.text.feed(backend.token_bytes(token)))
    run.finish(out)
    content = "".join(e.text for e in out if isinstance(e, ContentDelta))
    assert not any(isinstance(e, ReasoningDelta) for e in out)
    assert content == f"Maybe {block} later.\n</think>\n\nCalling now.\n"  # the reasoning as written
    assert [(e.call.name, e.call.arguments) for e in out if isinstance(e, ToolCallEvent)] == [("f", {"x": 1})]
    assert run.final_reason(FinishReason.STOP) is FinishReason.TOOL_CALLS


def test_reasoning_events_count_tokens_and_say_what_ended_the_reasoning(nemotron_session: EngineSession) -> None:
    from engine.api import ReasoningEndCause

    guarded = collect(nemotron_session.generate(GenerationRequest(
        QUESTION, sampling=SamplingParams(temperature=0.0, max_tokens=40))))  # no budget: the guard ends it
    assert [e.cause for e in guarded.ended] == [ReasoningEndCause.ANSWER_ROOM]
    assert not any(e.cause is ReasoningEndCause.BUDGET for e in guarded.ended)
    deltas = [e for e in guarded.events if isinstance(e, ReasoningDelta)]
    counts = [d.reasoning_tokens for d in deltas]
    assert counts == sorted(counts) and counts[-1] <= guarded.usage.reasoning_tokens  # tokens, not pieces
    assert counts[-1] >= guarded.ended[0].reasoning_tokens - 8  # the closing's tokens may follow the last piece
    budgeted = collect(nemotron_session.generate(GenerationRequest(
        QUESTION, reasoning_budget=4, sampling=SamplingParams(temperature=0.0, max_tokens=2000))))
    assert [e.cause for e in budgeted.ended] == [ReasoningEndCause.BUDGET]
