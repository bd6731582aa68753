"""The thinking-loop detector: it fires on scripted loops and stays silent on over 200,000 characters
of loop-free reasoning-like text (tests/fixtures/reasoning_corpus.py), fed in token-sized pieces."""

from __future__ import annotations

import pytest

from engine.generate.text.loops import LoopDetector
from tests.fixtures.reasoning_corpus import Trace, loop_free_corpus, pieces, scripted_loops


def first_finding(trace: Trace, seed: int = 0) -> tuple[int, LoopDetector] | None:
    detector, at = LoopDetector(), 0
    for piece in pieces(trace.text, seed):
        at += len(piece)
        if detector.feed(piece) is not None:
            return at, detector
    return None


def test_the_corpus_is_large_and_loop_free() -> None:
    corpus = loop_free_corpus()
    assert sum(len(t.text) for t in corpus) > 200_000
    assert {t.source for t in corpus} == {"math_working", "sympy_docs", "project_docs"}
    fired = [(t.source, t.text[:60]) for t in corpus if first_finding(t) is not None]
    assert fired == []


@pytest.mark.parametrize("trace", scripted_loops(), ids=lambda t: t.source)
def test_every_scripted_loop_fires_after_it_starts(trace: Trace) -> None:
    found = first_finding(trace)
    assert found is not None, trace.source
    at, _ = found
    assert trace.loop_starts is not None and at > trace.loop_starts  # not in the good reasoning before it


def test_the_split_into_pieces_does_not_matter() -> None:
    trace = scripted_loops()[0]
    whole = LoopDetector().feed(trace.text)
    assert whole is not None
    for seed in range(3):
        found = first_finding(trace, seed)
        assert found is not None and found[1].fired


def test_fires_once() -> None:
    detector = LoopDetector()
    assert detector.feed("Wait, let me reconsider this.\n" * 10) is not None
    assert detector.feed("Wait, let me reconsider this.\n" * 10) is None
