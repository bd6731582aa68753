"""A streamed answer renders, at every frame, what the whole text so far renders at once; at the end
it equals the answer re-opened from the store. Real widgets (pytest-qt), real markdown-it and Qt."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AnswerView, AssistantMessage, BlocksView
from app.gui.qt import QTextDocument
from app.gui.rich_text import replace_from
from engine.api import ContentDelta, Finished, FinishReason

CORPUS = {
    "numbered lists from 3, loose, nested": (
        "Steps:\n\n3. Install it.\n\n   Then check:\n\n   - the version\n   - the path\n\n"
        "4. Configure.\n   1. first\n   2. second\n\n      deeper paragraph\n\n5. Run.\n\nDone.\n"),
    "quote after a list, list in a quote": (
        "- one\n- two\n\n> A quote right after the list.\n> Still the quote.\n\n"
        "> - quoted item\n> - another\n>\n> > nested quote\n\nAfter.\n"),
    "tables": (
        "Compare:\n\n| Model | Size | Speed |\n|:------|-----:|:-----:|\n| `nano` | 30 B | **fast** |\n"
        "| other | 7 B | slow |\n\nText after the table.\n\n| a |\n|---|\n| 1 |\n"),
    "fenced code, blank lines inside, unterminated at the end": (
        "Code:\n\n```python\ndef f(x):\n\n    return x  # ```not a fence\n```\n\n~~~bash\necho hi\n~~~\n\n"
        "Then:\n\n```js\nconsole.log(1)\n\nstill open"),
    "paragraphs, headings, rules, breaks": (
        "# Title\n\nFirst paragraph\nwith a soft break.\n\nSecond  \nwith a hard break.\n\nSetext\n======\n\n"
        "---\n\n## Sub *heading*\n\nLast paragraph.\n\nAnd the very last."),
    "a paragraph a table interrupts": "Before\n| x | y |\n|-|-|\n| 1 | 2 |\n\nafter\n",
    "a rule first, then a heading": "---\n\n# After the rule\n\n***\n\ntext\n",
    "indented code": "Look:\n\n    indented code\n\n    more of it\n\nback to text\n",
    "reference links defined later": (
        "See [the docs][d] and [site].\n\nMiddle paragraph.\n\n[d]: https://example.org/docs \"Docs\"\n"
        "[site]: https://example.org\n\nEnd with [d].\n"),
    "a typical answer": (
        "**Short answer:** yes.\n\n## Why\n\n1. It scatters light.\n2. It is *blue*:\n   - shorter waves\n"
        "   - more scattering\n\n> Note: see `rayleigh()`.\n\n```python\nimport math\nprint(math.pi)\n```\n\n"
        "| k | v |\n|---|---|\n| a | 1 |\n\nThat is all.\n"),
    "CRLF line ends": "One\r\n\r\n- a\r\n- b\r\n\r\nTwo\r\n",
}


def pieces(text: str, seed: int) -> list[str]:
    """Token-sized pieces (1-6 characters), as a model streams them."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 6)
        out.append(text[i:i + n])
        i += n
    return out


def reference_html(renderer: MarkdownRenderer, text: str, like: QTextDocument, within: str | None = None,
                   code_from: int = 0) -> str:
    """The HTML of a document set from the whole text at once (`within`: as part of that longer text,
    whose link reference definitions apply to it too; `code_from`: the code blocks before it)."""
    env: dict[str, Any] = {}
    renderer.parse(text if within is None else within, env)
    document = QTextDocument()
    document.setDefaultFont(like.defaultFont())
    document.setHtml(renderer.render(text, code=[""] * code_from, references=env.get("references")))
    return document.toHtml()


def final_part_html(view: BlocksView, refresh: Callable[[], None]) -> str:
    """The tail view's document without its open tail (which the next refresh puts back)."""
    document = view.document()  # not a clone: QTextDocument.clone() drops a first rule's format
    replace_from(document, view.tail_start, "")
    html = document.toHtml()
    refresh()
    return html


@pytest.mark.parametrize("settle", [AnswerView.SETTLE_CHARS, 12], ids=["settle-default", "settle-often"])
@pytest.mark.parametrize("name", list(CORPUS))
def test_streamed_answer_renders_like_the_whole_text_at_every_frame(qtbot, name: str, settle: int) -> None:  # type: ignore[no-untyped-def]
    """At every frame the settled view shows what the whole text up to its end renders, and the tail
    view the rest (its final blocks alone too); at the end all of it is in the one settled view."""
    text = CORPUS[name]
    renderer = MarkdownRenderer()
    message = AssistantMessage(renderer)
    qtbot.addWidget(message)
    message.show()
    answer = message.answer
    answer.SETTLE_CHARS = settle  # type: ignore[misc]
    document, tail = answer.document(), answer.tail.document()
    rng = random.Random(7)
    parts = pieces(text, seed=len(text))
    so_far, i, settled_seen = "", 0, 0
    while i < len(parts):
        batch = parts[i:i + rng.randint(1, 3)]  # one frame's worth of pieces
        i += len(batch)
        message.apply([ContentDelta(p) for p in batch])
        so_far += "".join(batch)
        at = f"frame at {len(so_far)} chars"
        settled, codes = so_far[:answer.settled_length], answer.settled_code
        if settled:
            settled_seen += 1
            assert document.toHtml() == reference_html(renderer, settled, document, within=so_far), at
        assert tail.toHtml() == reference_html(renderer, so_far[len(settled):], document, so_far, codes), at
        final = so_far[len(settled):answer.final_length]
        if final:  # the tail's completed blocks alone: what the whole text up to their end renders
            assert final_part_html(answer.tail, answer.refresh) == reference_html(
                renderer, final, document, within=so_far, code_from=codes), at
    assert answer.final_length > 0  # the test exercised the incremental path
    assert settled_seen > 0 or settle > len(text)  # and, settling often, the settled view
    message.apply([Finished(FinishReason.STOP)])
    assert answer.settled_length == len(text) and answer.tail.isHidden()
    reopened = AssistantMessage(renderer)
    qtbot.addWidget(reopened)
    reopened.restore("", text, "done", {})
    assert document.toHtml() == reopened.answer.document().toHtml()
    assert answer.code == reopened.answer.code


def test_a_definition_late_in_the_stream_links_the_text_before_it(qtbot) -> None:  # type: ignore[no-untyped-def]
    renderer = MarkdownRenderer()
    message = AssistantMessage(renderer)
    qtbot.addWidget(message)
    message.apply([ContentDelta("See [x].\n\nMore.\n\n")])
    assert "href" not in message.answer.tail.document().toHtml()
    message.apply([ContentDelta("[x]: https://example.org\n")])
    assert 'href="https://example.org"' in message.answer.tail.document().toHtml()


def test_each_frame_renders_only_the_open_block(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Once blocks are final, a frame renders only the last one: the work per frame does not grow."""
    renderer = MarkdownRenderer()
    message = AssistantMessage(renderer)
    qtbot.addWidget(message)
    body = "".join(f"Paragraph {i} with some words.\n\n" for i in range(200))
    message.apply([ContentDelta(body + "Open tail")])
    calls: list[int] = []
    real = renderer.parse
    renderer.parse = lambda text, env: calls.append(len(text)) or real(text, env)  # type: ignore[method-assign]
    message.apply([ContentDelta(" grows")])
    assert calls and max(calls) < 100, calls
