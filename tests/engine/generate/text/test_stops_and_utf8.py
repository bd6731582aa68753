"""UTF-8 safe streaming and stop strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.generate.text.stops import StopMatcher
from engine.generate.text.utf8 import Utf8Stream

SAMPLES = ["東京は日本の首都です。", "emoji 🧠🚀 and flags 🇫🇷", "∫₀¹ x² dx = ⅓, ∀ε>0 ∃δ", "plain ascii"]


@pytest.mark.parametrize("text", SAMPLES)
def test_bytes_split_anywhere_join_to_the_text(text: str) -> None:
    data = text.encode()
    for size in (1, 2, 3, 5):
        stream = Utf8Stream()
        pieces = [stream.feed(data[i:i + size]) for i in range(0, len(data), size)]
        pieces.append(stream.finish())
        assert "".join(pieces) == text
        assert all("\ufffd" not in p for p in pieces)


def test_incomplete_character_at_the_end_is_replaced_not_dropped() -> None:
    stream = Utf8Stream()
    assert stream.feed("é".encode()[:1]) == ""
    assert stream.finish() == "\ufffd"


def run_stops(chunks: list[str], stops: tuple[str, ...]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = "".join(matcher.feed(c) for c in chunks)
    return out + matcher.finish(), matcher.stopped


def test_stop_string_across_chunks() -> None:
    assert run_stops(["Hello Wo", "rld and more"], ("World",)) == ("Hello ", True)


def test_held_back_text_is_flushed_when_no_stop_follows() -> None:
    assert run_stops(["Hello Wo"], ("World",)) == ("Hello Wo", False)


@given(st.text(alphabet="abXY", max_size=40), st.lists(st.integers(0, 40), max_size=6))
def test_stop_matching_is_chunking_invariant(text: str, cuts: list[int]) -> None:
    bounds = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=False)]
    expected = text.split("XY")[0]
    assert run_stops(chunks, ("XY",))[0] == expected
