"""Markdown rendering, and where a streamed answer's final blocks end."""

from __future__ import annotations

from app.gui.markdown import MarkdownRenderer, MarkdownStream


def test_tables_links_and_highlighted_code_into_the_callers_list() -> None:
    r = MarkdownRenderer()
    code: list[str] = ["earlier block"]
    html = r.render("| a | b |\n|---|---|\n| 1 | 2 |\n\n[site](https://example.org)\n\n```python\nx = 1\n```\n", code)
    assert "<table border" in html and 'href="https://example.org"' in html
    assert 'href="copy:1"' in html and "style=" in html  # numbered on from the list; pygments inline colours
    assert code == ["earlier block", "x = 1\n"]
    assert r.render("```\ny\n```\n") .count("copy:0") == 1  # no list given: a fresh one


def test_tables_have_borders_padding_and_a_shaded_header() -> None:
    r = MarkdownRenderer()
    html = r.render("| left | right |\n|:-----|------:|\n| 1 | 2 |\n")
    assert '<table border="1" cellspacing="0" cellpadding="6"' in html and "border-collapse:collapse" in html
    assert f'<th align="left" bgcolor="{r.theme.header_bg}">left</th>' in html
    assert '<td align="right">2</td>' in html


def test_long_code_lines_wrap_inside_their_block() -> None:
    html = MarkdownRenderer().render("```\n" + "x" * 300 + "\n```\n")
    assert "white-space:pre-wrap" in html


def test_final_blocks_end_where_the_last_block_of_the_complete_lines_starts() -> None:
    r = MarkdownRenderer()
    text = "Intro.\n\n```\ncode\n\nmore code\n```\n\nTail"
    assert text[r.final_end(text, 0, {}):] == "```\ncode\n\nmore code\n```\n\nTail"  # "Tail" is no line yet
    assert text[r.final_end(text + "\n", 0, {}):] == "Tail"
    assert r.final_end("one paragraph still open", 0, {}) == 0
    open_fence = "Intro.\n\n```\ncode\n\nstill"
    assert open_fence[: r.final_end(open_fence, 0, {})] == "Intro.\n\n"
    # A loose list stays one open block across its blank lines: its items are not split apart.
    loose = "1. a\n\n2. b\n\n   - nested\n\n3. c\n"
    assert r.final_end(loose, 0, {}) == 0
    closed = loose + "\nAfter\n"
    assert closed[r.final_end(closed, 0, {}):] == "After\n"


def test_a_partial_line_cannot_finalise_a_block() -> None:
    """`|-` under `| a |` turns the paragraph before into a table header; `|-x` turns it back."""
    r = MarkdownRenderer()
    assert r.final_end("para\n| a |\n|-", 0, {}) == 0
    assert r.final_end("para\n| a |\n|-|\n", 0, {}) == len("para\n")


def test_final_end_resumes_from_an_earlier_boundary() -> None:
    r = MarkdownRenderer()
    text = "a\n\nb\n\n```\nx\n\ny\n```\n\nc\n"
    first = r.final_end(text[:6], 0, {})
    assert first == 3
    assert r.final_end(text, first, {}) == r.final_end(text, 0, {})


def test_each_stream_owns_its_code_blocks() -> None:
    r = MarkdownRenderer()
    one, two = MarkdownStream(r), MarkdownStream(r)
    one.advance("```\nfirst\n```\n\ntext\n")
    two.advance("```\nsecond\n```\n\n```\nthird\n```\n")
    one.advance("```\nfirst\n```\n\ntext\n\nmore\n")
    assert one.code == ["first\n"] and two.code == ["second\n", "third\n"]


def test_dark_and_light_code_colours() -> None:
    r = MarkdownRenderer(dark=False)
    light = r.render("```python\nx = 1\n```\n")
    r.set_dark(True)
    dark = r.render("```python\nx = 1\n```\n")
    assert "#f6f8fa" in light and "#272822" in dark
