"""Steering the reasoning through the conversation controller, without a window: a real EngineClient
on the tiny Nemotron-H GGUF (llama.cpp, in its worker process) and a real ChatStore. Answer now,
the loop detection setting in the request, and the two ways on when the thinking took all the room:
answering from that thinking (the same turn, continued) and thinking longer (a new version)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.controller import TurnSettings, took_all_the_room
from app.store import ChatStore
from engine.api import (
    ContentDelta,
    Error,
    FinishReason,
    LlamaLoadOptions,
    LoadSpec,
    ModelInfo,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
)
from engine.client import EngineClient
from tests.app.test_controller import Harness

#: Greedy, so the tiny model's text is the same on every run; 40 tokens: the room guard closes the
#: reasoning at ~30 and the answer's 10 run out (finish LENGTH): the thinking took all the room.
CRAMPED = TurnSettings(thinking=True, budget=None, temperature=0.0, max_tokens=40)
LONG = TurnSettings(thinking=True, budget=None, temperature=0.0, max_tokens=3000)


@pytest.fixture(scope="module")
def client(tiny_nemotron) -> Iterator[EngineClient]:  # type: ignore[no-untyped-def]
    c = EngineClient()
    spec = LoadSpec(str(tiny_nemotron.gguf_path), LlamaLoadOptions(n_ctx=4096, n_threads=2, n_gpu_layers=0))
    events = list(c.load(spec))
    assert isinstance(events[-1], ModelInfo), events
    yield c
    c.close()


@pytest.fixture
def harness(client: EngineClient, tmp_path: Path) -> Iterator[Harness]:
    store = ChatStore(tmp_path / "chats.sqlite3")
    h = Harness(client, store)
    yield h
    h.controller.close()
    store.close()


def test_took_all_the_room_rule() -> None:
    length, stop = FinishReason.LENGTH, FinishReason.STOP
    assert took_all_the_room("r", "", length, "")  # the limit came inside the reasoning
    assert took_all_the_room("r", "length", length, "")
    assert took_all_the_room("r", ReasoningEndCause.ANSWER_ROOM, length, "a cut answ")
    assert took_all_the_room("r", ReasoningEndCause.ANSWER_ROOM, stop, "  ")  # closed, and no answer
    assert not took_all_the_room("r", ReasoningEndCause.ANSWER_ROOM, stop, "A whole answer.")
    assert not took_all_the_room("r", ReasoningEndCause.BUDGET, length, "a long answer, cut")
    assert not took_all_the_room("", "", length, "no thinking at all")


def test_answer_now_ends_the_reasoning_and_the_model_answers(harness: Harness) -> None:
    c = harness.controller
    assert not c.answer_now()  # nothing runs
    c.send("Think long.", LONG)
    seen = harness.pump(until_events=3)
    while not c.reasoning_now:
        seen += harness.pump(until_events=1)
    assert c.answer_now()
    seen += harness.pump()
    ended = [e for e in seen if isinstance(e, ReasoningEnded)]
    assert len(ended) == 1 and ended[0].cause is ReasoningEndCause.USER
    assert ended[0].reasoning_tokens < 3000 - 100
    after = seen[seen.index(ended[0]):]
    assert not any(isinstance(e, ReasoningDelta) for e in after)
    assert any(isinstance(e, ContentDelta) and e.text.strip() for e in after)  # an answer follows
    answer = c.branch()[-1].message
    assert answer.state == "done" and answer.figures["reasoning_ended_by"] == "user"
    assert not c.reasoning_now and not c.answer_now()


def test_loop_detection_setting_reaches_the_request(harness: Harness) -> None:
    c = harness.controller
    c.send("Hi", TurnSettings(thinking=True, temperature=0.0, max_tokens=8, loop_detection="end"))
    assert c.last_request is not None and c.last_request.loop_detection == "end"
    harness.pump()
    c.send("Hi", TurnSettings(thinking=True, temperature=0.0, max_tokens=8))
    assert c.last_request is not None and c.last_request.loop_detection == "warn"  # the default
    harness.pump()


def cramped_answer(harness: Harness) -> tuple[str, str]:
    c = harness.controller
    c.send("Why is the sky blue?", CRAMPED)
    harness.pump()
    answer = c.branch()[-1].message
    assert answer.figures["finish"] == "length" and answer.figures["reasoning_ended_by"] == "answer_room"
    assert c.answered is not None and c.answered.took_all_the_room
    return answer.reasoning, answer.content


def test_answer_from_this_thinking_continues_the_same_turn(harness: Harness) -> None:
    c = harness.controller
    reasoning, content = cramped_answer(harness)
    before = c.branch()
    assert c.answer_from_thinking(TurnSettings(thinking=True, temperature=0.0, max_tokens=30))
    request = c.last_request
    assert request is not None and request.continue_final_message and not request.opens_new_turn
    final = request.messages[-1]
    assert (final.role, final.reasoning, final.content) == ("assistant", reasoning, content)
    assert request.reasoning_budget is None and request.sampling.max_tokens == 30  # a fresh allowance
    events = harness.pump()
    assert not any(isinstance(e, (ReasoningDelta, ReasoningEnded)) for e in events)  # the thinking stays closed
    added = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert added.strip()
    after = c.branch()
    assert [s.message.id for s in after] == [s.message.id for s in before]  # the same turn, no new version
    continued = after[-1].message
    assert continued.content == (content + added).strip() and continued.reasoning == reasoning
    assert continued.figures["answered_from_thinking"] and continued.figures["reasoning_ended_by"] == "answer_room"
    assert ("answer_resumed", None) in harness.view.calls
    assert len(after[-1].versions) == 1


def test_think_longer_writes_a_new_version_with_twice_the_room(harness: Harness) -> None:
    c = harness.controller
    cramped_answer(harness)
    assert c.think_longer_settings(CRAMPED, context=60) is None  # the context is full: nothing to gain
    assert c.think_longer(CRAMPED, context=4096)
    request = c.last_request
    assert request is not None and request.sampling.max_tokens == 80 and request.reasoning_budget is None
    assert not request.continue_final_message
    harness.pump()
    assert len(c.branch()[-1].versions) == 2
    budgeted = TurnSettings(thinking=True, budget=16, temperature=0.0, max_tokens=40)
    c.send("Again, with a budget", budgeted)
    harness.pump()
    longer = c.think_longer_settings(budgeted, context=4096)
    if longer is not None:  # (when that answer's thinking took all the room too)
        assert (longer.budget, longer.max_tokens) == (32, 80)


def test_nothing_to_continue_after_a_whole_answer(harness: Harness) -> None:
    c = harness.controller
    assert not c.answer_from_thinking(CRAMPED)  # no conversation
    c.send("Hi", TurnSettings(thinking=False, temperature=0.0, max_tokens=8))
    harness.pump()
    assert not c.answer_from_thinking(CRAMPED) and not c.think_longer(CRAMPED)  # no thinking to answer from


def test_a_failed_continuation_keeps_the_saved_answer(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats.sqlite3")
    conversation = store.create("Saved")
    store.add(conversation, "user", "Why?")
    figures = {"finish": "length", "reasoning_ended_by": "answer_room", "reasoning_tokens": 30}
    answer = store.add(conversation, "assistant", "A cut ans", "Thinking so far")
    store.update(answer, figures=figures)
    with EngineClient() as unloaded:  # no model: the continuation fails
        h = Harness(unloaded, store)
        c = h.controller
        assert c.open(conversation)
        assert c.answer_from_thinking(CRAMPED)
        events = h.pump()
        assert any(isinstance(e, Error) for e in events)
        saved = c.branch()[-1].message
        assert (saved.content, saved.reasoning, saved.state) == ("A cut ans", "Thinking so far", "done")
        assert saved.figures == figures and len(c.branch()) == 2
        c.close()
    store.close()
