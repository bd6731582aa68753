"""The behaviour table of the one EventBuilder, local side: scripted model text, token by token through
the real loop's `_Run` on the tiny Nemotron-H's own vocabulary (its real special tokens, its real
closing tokens), for the cases a random model cannot be made to write: an answer after the thinking,
markers split across pieces, stop strings, a tool call, the budget's newline and hard cut.

The model is a script (the tiny model's weights are random): `Case.text` is what it writes, the
closing `</think>` included where it closes on its own, and `after_close` what it writes once the
engine closed its reasoning. Only the choice of tokens is scripted; the text goes through the same
code as a real generation. tests/engine/remote/test_scripted_events.py runs the same table through
the remote engine against a server that follows the same script, and checks the same events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.api import (
    ContentDelta,
    Finished,
    FinishReason,
    GenerationEvent,
    ReasoningDelta,
    ReasoningEnded,
    SamplingParams,
    ToolCallEvent,
)
from engine.backends.base import Backend
from engine.generate.loop import LoopOptions, _Run
from engine.generate.text.budget import BudgetController
from engine.generate.text.events import EventBuilder
from engine.worker.session import EngineSession

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}
CALL = ("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>")


@dataclass(frozen=True)
class Case:
    text: str
    after_close: str = ""
    thinking: bool = True
    budget: int | None = None
    max_tokens: int = 2000
    stop: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    special_markers: bool = True  # False: the markers come as plain text, split over several tokens
    piece_chars: int = 0  # a server streams pieces of this many characters (0: one token each)

    def continuation(self, written: str) -> str:
        """What the scripted model writes after `written` (its own text so far, closings included)."""
        if self.text.startswith(written):
            return self.text[len(written):]
        close = written.rfind("</think>")
        assert close >= 0, f"the script went off course: {written!r}"
        done = written[close + len("</think>"):].lstrip("\n")
        assert self.after_close.startswith(done), (done, self.after_close)
        return self.after_close[len(done):]


@dataclass(frozen=True)
class Seen:
    """What must be the same on every engine."""

    reasoning: str
    content: str
    ended: tuple[bool, ...]  # ReasoningEnded.by_budget, in order
    calls: tuple[tuple[str, str], ...] = field(default=())
    finish: FinishReason = FinishReason.STOP

    @classmethod
    def of(cls, events: Sequence[object]) -> Seen:
        finished = [e for e in events if isinstance(e, Finished)]
        assert finished, events
        return cls("".join(e.text for e in events if isinstance(e, ReasoningDelta)),
                   "".join(e.text for e in events if isinstance(e, ContentDelta)),
                   tuple(e.by_budget for e in events if isinstance(e, ReasoningEnded)),
                   tuple((e.call.name, repr(e.call.arguments)) for e in events if isinstance(e, ToolCallEvent)),
                   finished[-1].reason)


LONG = " ".join(f"w{i}" for i in range(40))
CASES: dict[str, tuple[Case, Seen]] = {
    "reasoning split": (
        Case("Blue light scatters more.\n</think>\n\nRayleigh scattering."),
        Seen("Blue light scatters more.", "Rayleigh scattering.", (False,))),
    "markers split across pieces": (
        Case("Blue light scatters more.\n</think>\n\nRayleigh scattering.", special_markers=False, piece_chars=3),
        Seen("Blue light scatters more.", "Rayleigh scattering.", (False,))),
    "stop string inside the reasoning": (
        Case("Blue light scatters. HALT more\n</think>\n\nNever seen.", stop=("HALT",)),
        Seen("Blue light scatters.", "", ())),
    "stop string inside the answer": (
        Case("Think.\n</think>\n\nThe answer is 42. END more", stop=("END",)),
        Seen("Think.", "The answer is 42. ", (False,))),
    "tool call": (
        Case(f"I should look it up.\n</think>\n\n{CALL}", tools=(WEATHER,)),
        Seen("I should look it up.", "", (False,), (("get_weather", repr({"city": "Paris", "days": 3})),),
             FinishReason.TOOL_CALLS)),
    "tool call inside the reasoning is thinking": (
        Case(f"Maybe {CALL} later.\n</think>\n\nNo call.", tools=(WEATHER,)),
        Seen(f"Maybe {CALL} later.", "No call.", (False,))),
    "budget: closed at the next newline": (
        Case("one two three four five six seven\neight nine ten", "Short answer.", budget=4),
        Seen("one two three four five six seven", "Short answer.", (True,))),
    "budget: hard cut after the grace": (
        Case(" the" * 600, "Cut short.", budget=1),  # " the" is one token
        Seen(("the " * 501).strip() + ".", "Cut short.", (True,))),
    "stop string after the budget, before the newline": (
        Case("one two three four five HALT six\nseven", "Never.", budget=3, stop=("HALT",)),
        Seen("one two three four five", "", ())),
    "past the budget the model closes on its own, before a newline: not the budget's": (
        Case("one two three four</think>\n\nDone.", "Never.", budget=2),
        Seen("one two three four", "Done.", (False,))),
    "budget not reached: the model closes on its own": (
        Case("Quick.\n</think>\n\nDone.", "Never.", budget=50),
        Seen("Quick.", "Done.", (False,))),
    "reasoning off": (
        Case("Just the answer.", thinking=False),
        Seen("", "Just the answer.", ())),
    "max_tokens in the reasoning": (
        Case(LONG, max_tokens=6),
        Seen(" ".join(LONG.split()[:3]), "", (), finish=FinishReason.LENGTH)),
}


def tokens_of(backend: Backend, case: Case, text: str) -> list[int]:
    return backend.tokenize(text, special=case.special_markers)


def run_local(backend: Backend, case: Case) -> list[GenerationEvent]:
    """The loop's own steps (generate_tokens, less sampling and feeding the model) over the script."""
    options = LoopOptions(SamplingParams(max_tokens=case.max_tokens, stop=case.stop),
                          starts_in_reasoning=case.thinking, reasoning_budget=case.budget, tools=case.tools,
                          keep_answer_room=False)
    run = _Run(backend, options, lambda text: backend.tokenize(text, special=True))
    out: list[GenerationEvent] = []
    opening = run.events.opening_closing()
    if opening is not None:
        run.force_close(opening, out)
    reason = FinishReason.LENGTH
    while run.tokens_left() > 0:
        rest = case.continuation(run.events.written)
        if not rest:
            reason = FinishReason.STOP  # the end of the turn
            break
        if run.step(tokens_of(backend, case, rest)[0], out) is None:
            reason = FinishReason.STOP  # a stop string
            break
    run.finish(out)
    return [*out, Finished(run.final_reason(reason))]


@pytest.mark.parametrize("name", CASES)
def test_local_events(name: str, nemotron_session: EngineSession) -> None:
    case, expected = CASES[name]
    assert nemotron_session.backend is not None
    assert Seen.of(run_local(nemotron_session.backend, case)) == expected


def test_pieces_in_any_chunks_give_the_same_events() -> None:
    text = "Blue light scatters more.\n</think>\n\nRayleigh scattering."
    for size in (1, 2, 3, 5, 8, len(text)):
        builder = EventBuilder(BudgetController(None, 1000, answer_room=False), starts_in_reasoning=True)
        events = [e for i in range(0, len(text), size) for e in builder.feed(text[i:i + size])]
        seen = Seen.of([*events, *builder.finish(), Finished(FinishReason.STOP)])
        assert seen == Seen("Blue light scatters more.", "Rayleigh scattering.", (False,)), size


def test_inserted_closing_counts_as_reasoning_and_ends_it_by_the_budget() -> None:
    builder = EventBuilder(BudgetController(2, 1000, answer_room=False), starts_in_reasoning=True)
    builder.feed("one")
    assert builder.closing(100) is None  # below the budget
    builder.feed(" two")
    assert builder.closing(100) is None  # at the budget: waits for a newline
    builder.feed(" three.\n")
    closing = builder.closing(100)
    assert closing == "</think>\n\n"
    events = builder.insert(closing, 3)
    assert ReasoningEnded(True, 6) in events and builder.written == "one two three.\n</think>\n\n"
