"""Markdown rendering and the incremental split of a streamed answer."""

from __future__ import annotations

from app.gui.markdown import MarkdownRenderer, stable_split


def test_tables_links_and_highlighted_code() -> None:
    r = MarkdownRenderer()
    html = r.render("| a | b |\n|---|---|\n| 1 | 2 |\n\n[site](https://example.org)\n\n```python\nx = 1\n```\n")
    assert "<table>" in html and 'href="https://example.org"' in html
    assert 'href="copy:0"' in html and "style=" in html  # pygments inline colours
    assert r.code.texts == ["x = 1\n"]


def test_stable_split_never_cuts_a_code_fence() -> None:
    text = "Intro.\n\n```\ncode\n\nmore code\n```\n\nTail"
    cut = stable_split(text)
    assert text[:cut].endswith("```\n\n") and text[cut:] == "Tail"
    assert stable_split("one paragraph still open") == 0
    open_fence = "Intro.\n\n```\ncode\n\nstill"
    assert open_fence[: stable_split(open_fence)] == "Intro.\n\n"


def test_stable_split_resumes_from_an_earlier_boundary() -> None:
    text = "a\n\nb\n\n```\nx\n\ny\n```\n\nc"
    first = stable_split(text[:5])
    assert first == 3
    assert stable_split(text, first) == stable_split(text)


def test_dark_and_light_code_colours() -> None:
    r = MarkdownRenderer(dark=False)
    light = r.render("```python\nx = 1\n```\n")
    r.set_dark(True)
    dark = r.render("```python\nx = 1\n```\n")
    assert "#f6f8fa" in light and "#272822" in dark
