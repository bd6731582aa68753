"""Steering a running reasoning on the real architecture, in both backends (tiny random Nemotron-H
on llama.cpp and on torch): "answer now" ends the reasoning within one token by feeding the closing
sequence into the running sequence and the model answers; the reasoning meter counts the engine's
tokens; loop detection set to "end" ends a reasoning that repeats itself. The random model "reasons"
because the template's generation prompt opens <think>."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.api import (
    BudgetPhase,
    FinishReason,
    GenerationRequest,
    LoopSuspected,
    Message,
    ReasoningEndCause,
    ReasoningProgress,
    SamplingParams,
)
from engine.generate.text.budget import CLOSE_AT_NEWLINE, CLOSE_CUT
from engine.worker.session import EngineSession
from tests.conftest import load_session
from tests.engine.backends.test_nemotron_backends import model_path, sequence_after_prompt
from tests.engine.helpers import Answer, collect

QUESTION = (Message("user", "Why is the sky blue?"),)


class SetAfter:
    """A flag that the generation loop finds set from its `n`-th question on (after n-1 tokens).

    Only the loop asks an answer-now flag (before each token, while reasoning), unlike cancel."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked >= self.n


@pytest.fixture(scope="module", params=["llama.cpp", "torch"])
def nemotron_session(request: pytest.FixtureRequest, tiny_nemotron) -> Iterator[EngineSession]:  # type: ignore[no-untyped-def]
    session = load_session(model_path(tiny_nemotron, request.param), n_ctx=4096)
    yield session
    session.unload()


def ask(session: EngineSession, *, answer_now: object = None, max_tokens: int = 80, seed: int = 11,
        **kw: object) -> Answer:
    sampling = SamplingParams(seed=seed, max_tokens=max_tokens, ignore_eos=True)
    request = GenerationRequest(QUESTION, sampling=sampling, keep_answer_room=False, **kw)  # type: ignore[arg-type]
    return collect(session.generate(request, None, answer_now))  # type: ignore[arg-type]


@pytest.mark.parametrize("after", [1, 5, 20])
def test_answer_now_ends_the_reasoning_within_one_token(nemotron_session: EngineSession, after: int) -> None:
    backend = nemotron_session.backend
    assert backend is not None
    answer = ask(nemotron_session, answer_now=SetAfter(after + 1))  # set once `after` tokens are out
    assert not answer.errors
    (ended,) = answer.ended
    assert ended.cause is ReasoningEndCause.USER and not ended.by_budget
    generated = sequence_after_prompt(nemotron_session, answer)
    piece = backend.token_bytes(generated[after - 1]).decode("utf-8", "replace")
    closing = backend.tokenize(CLOSE_AT_NEWLINE if piece.endswith("\n") else CLOSE_CUT, special=True)
    # the closing went in right after the `after`-th token, in the same sequence
    assert generated[after:after + len(closing)] == closing
    assert ended.reasoning_tokens == after + len(closing)
    assert answer.usage.answer_tokens == 80 - ended.reasoning_tokens > 0  # and the model answered
    assert answer.content.strip()


def test_answer_now_before_the_first_token_closes_at_once(nemotron_session: EngineSession) -> None:
    answer = ask(nemotron_session, answer_now=SetAfter(1), max_tokens=16)
    (ended,) = answer.ended
    assert ended.cause is ReasoningEndCause.USER and answer.reasoning.strip() == ""
    closing = nemotron_session.tokenize(CLOSE_AT_NEWLINE, True)  # the prompt's "<think>\n" ended a line
    assert sequence_after_prompt(nemotron_session, answer)[:len(closing)] == closing


def test_answer_now_unset_changes_nothing(nemotron_session: EngineSession) -> None:
    plain = ask(nemotron_session, max_tokens=40)
    steered = ask(nemotron_session, answer_now=SetAfter(10**9), max_tokens=40)
    assert (plain.reasoning, plain.content) == (steered.reasoning, steered.content)


def test_meter_counts_engine_tokens_through_the_budget_rule(nemotron_session: EngineSession) -> None:
    budget = 24
    answer = ask(nemotron_session, reasoning_budget=budget, max_tokens=700, seed=3)
    readings = [e for e in answer.events if isinstance(e, ReasoningProgress)]
    (ended,) = answer.ended
    assert ended.cause is ReasoningEndCause.BUDGET
    assert readings[0].tokens == 1 and readings[-1].tokens == ended.reasoning_tokens
    assert all(r.budget == budget for r in readings)
    assert [r.tokens for r in readings] == sorted(r.tokens for r in readings)
    waiting = [r for r in readings if r.phase is BudgetPhase.WAITING_FOR_NEWLINE]
    assert waiting and waiting[0].tokens == budget and waiting[0].grace_left == 500
    phases = [r.phase for r in readings]
    assert phases.index(BudgetPhase.WAITING_FOR_NEWLINE) > phases.index(BudgetPhase.COUNTING)
    closing = sequence_after_prompt(nemotron_session, answer)[:ended.reasoning_tokens]
    cut = closing[-len(nemotron_session.tokenize(CLOSE_CUT, True)):] == nemotron_session.tokenize(CLOSE_CUT, True)
    assert (readings[-1].phase is BudgetPhase.CUT) == (cut and ended.reasoning_tokens > budget + 500)


def test_meter_without_budget_counts_against_max_tokens(nemotron_session: EngineSession) -> None:
    answer = ask(nemotron_session, max_tokens=48)
    readings = [e for e in answer.events if isinstance(e, ReasoningProgress)]
    assert readings and all(r.budget is None and r.phase is BudgetPhase.COUNTING for r in readings)
    assert all(r.limit == 48 for r in readings if r.tokens < 48)
    assert max(r.tokens for r in readings) == answer.usage.reasoning_tokens


def test_loop_detection_end_on_a_scripted_looping_token_stream(nemotron_session: EngineSession) -> None:
    """A looping reasoning as this vocabulary's tokens, through the loop's own text path: the detector
    fires, and with "end" the next token boundary closes the reasoning (cause LOOP), once."""
    from engine.generate.loop import LoopOptions, _Run
    from engine.generate.steering import Steering

    backend = nemotron_session.backend
    assert backend is not None
    loop = "Wait, let me reconsider the question.\n" * 12
    run = _Run(backend, LoopOptions(SamplingParams(), starts_in_reasoning=True),
               lambda t: backend.tokenize(t, special=True), Steering(None, "end"))
    out: list = []  # type: ignore[type-arg]
    for token in backend.tokenize(loop, special=False):
        assert run.step(token, out) == [token]  # the detector asks; the budget never closes here
    (found,) = [e for e in out if isinstance(e, LoopSuspected)]
    assert found.action == "end" and "reconsider" in found.repeated
    assert run.steer(out) == backend.tokenize(CLOSE_AT_NEWLINE, special=True)
    assert [e.cause for e in out if hasattr(e, "cause")] == [ReasoningEndCause.LOOP]
    assert run.steer(out) is None  # once


def test_loop_detection_is_silent_on_the_random_models_reasoning(nemotron_session: EngineSession) -> None:
    answer = ask(nemotron_session, loop_detection="end", max_tokens=300, seed=5)
    assert not [e for e in answer.events if isinstance(e, LoopSuspected)] and not answer.ended
    assert answer.finish is FinishReason.LENGTH


def test_answer_now_on_the_demo_model(demo_session: EngineSession) -> None:
    """A real small instruct model (the demo GGUF) made to reason by a raw prompt that opens <think>:
    answer now after 6 tokens feeds the closing there, and the model writes an answer after it."""
    prompt = ("<|im_start|>user\nWhat is 17 times 23? Think step by step.<|im_end|>\n"
              "<|im_start|>assistant\n<think>\n")
    request = GenerationRequest(prompt=prompt, keep_answer_room=False,
                                sampling=SamplingParams(temperature=0.0, max_tokens=60, ignore_eos=True))
    answer = collect(demo_session.generate(request, None, SetAfter(7)))  # type: ignore[arg-type]
    (ended,) = answer.ended
    assert ended.cause is ReasoningEndCause.USER
    thought, closing, after = answer.content.partition("</think>")  # raw text: the markers as fed
    assert closing and after.strip()
    assert thought.endswith((".\n", "\n"))  # CLOSE_CUT's ".\n", or the model's own line end
    assert ended.reasoning_tokens <= 6 + len(demo_session.tokenize(CLOSE_CUT, True))
