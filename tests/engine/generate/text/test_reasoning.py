"""ReasoningSplitter: markers, whitespace and, above all, chunking must not change the result."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api import ContentDelta, ReasoningDelta
from engine.generate.text.reasoning import ReasoningSplitter, prompt_opens_reasoning


def split(chunks: list[str], *, starts_in_reasoning: bool) -> tuple[str, str]:
    splitter = ReasoningSplitter(starts_in_reasoning=starts_in_reasoning)
    deltas = [d for c in chunks for d in splitter.feed(c)] + splitter.finish()
    reasoning = "".join(d.text for d in deltas if isinstance(d, ReasoningDelta))
    answer = "".join(d.text for d in deltas if isinstance(d, ContentDelta))
    return reasoning, answer


def test_prompt_inside_think_block() -> None:
    assert split(["Let me think.\nOK.\n</think>\n\nParis."], starts_in_reasoning=True) == (
        "Let me think.\nOK.", "Paris.")


def test_thinking_off_prompt_gives_answer_only() -> None:
    assert split(["Paris is the capital."], starts_in_reasoning=False) == ("", "Paris is the capital.")


def test_model_that_opens_its_own_think_block() -> None:
    assert split(["<think>\nhmm\n</think>\nParis"], starts_in_reasoning=False) == ("hmm", "Paris")


def test_empty_think_block_from_model() -> None:
    assert split(["<think></think>Paris"], starts_in_reasoning=False) == ("", "Paris")


def test_missing_close_stays_reasoning() -> None:
    assert split(["still thinking when max_tokens hit"], starts_in_reasoning=True) == (
        "still thinking when max_tokens hit", "")


def test_markers_never_reach_the_answer() -> None:
    reasoning, answer = split(["a</think>b<think>c</think>d"], starts_in_reasoning=True)
    assert reasoning == "a"
    assert answer == "bcd"


def test_dropping_a_marker_cannot_form_another() -> None:
    assert split(["</th<think>ink>x"], starts_in_reasoning=False) == ("", "x")
    assert split(["a</think>b</th<think>ink>c"], starts_in_reasoning=True) == ("a", "bc")


def test_partial_marker_at_end_is_plain_text() -> None:
    assert split(["x</thi"], starts_in_reasoning=True) == ("x</thi", "")
    assert split(["a</think>b </thi"], starts_in_reasoning=True) == ("a", "b </thi")


def test_text_that_only_looks_like_a_marker_prefix() -> None:
    assert split(["if a <b and c</th", "ink>d"], starts_in_reasoning=True) == ("if a <b and c", "d")


def test_prompt_detection() -> None:
    assert prompt_opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n<think></think>")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n")
    assert prompt_opens_reasoning("<|im_start|>assistant\n<think>\nSo far I")
    assert not prompt_opens_reasoning("<think>\nold\n</think>\nanswer<|im_end|>\n<|im_start|>assistant\n")


def test_deltas_arrive_while_streaming() -> None:
    splitter = ReasoningSplitter(starts_in_reasoning=True)
    assert splitter.feed("step one") == [ReasoningDelta("step one")]
    assert splitter.feed(" and two </") == [ReasoningDelta(" and two")]
    assert splitter.feed("think>\n\nAns") == [ContentDelta("Ans")]
    assert not splitter.in_reasoning


_pieces = st.sampled_from(["<think>", "</think>", "<", "</", "think", ">", "\n", " ", "a", "bc", "é", "思考",
                           "</th", "ink>", "<thi", "\n\n", "Paris"])


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(_pieces, max_size=30), cuts=st.lists(st.integers(0, 400), max_size=12),
       starts=st.booleans())
def test_any_chunking_gives_the_same_split(parts: list[str], cuts: list[int], starts: bool) -> None:
    text = "".join(parts)
    whole = split([text], starts_in_reasoning=starts)
    bounds = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=False)]
    assert split(chunks, starts_in_reasoning=starts) == whole
    one_by_one = split(list(text), starts_in_reasoning=starts)
    assert one_by_one == whole
    assert "<think>" not in whole[1] and "</think>" not in whole[1]
