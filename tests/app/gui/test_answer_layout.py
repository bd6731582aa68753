"""How an answer is laid out: a bounded, centred reading column; long code lines wrapped inside their
block, never cut off; tables with borders, padding and a shaded header (as Qt's layout has them)."""

from __future__ import annotations

from app.gui.chat_view import READING_WIDTH, ChatView
from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AnswerView, AssistantMessage, UserMessage
from app.gui.qt import QTextCursor, QTextDocument
from engine.api import ContentDelta, Finished, FinishReason

LONG_LINE = "result = compute(" + ", ".join(f"argument_{i}" for i in range(40)) + ")"
NO_SPACES = "x" * 400
ANSWER = (f"Some words. {'More words. ' * 100}\n\n```python\n{LONG_LINE}\n{NO_SPACES}\n```\n\n"
          "| Name | Value |\n|:-----|------:|\n| a | 1 |\n")


def chat_with_answer(qtbot, width: int) -> tuple[ChatView, AssistantMessage]:  # type: ignore[no-untyped-def]
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(width, 700)
    view.show()
    view.add(UserMessage("Show me."))
    message = AssistantMessage(MarkdownRenderer())
    view.add(message)
    message.apply([ContentDelta(ANSWER), Finished(FinishReason.STOP)])  # all of it in the answer's one view
    qtbot.waitUntil(lambda: message.answer.document().textWidth() == message.answer.viewport().width())
    return view, message


def test_the_column_is_bounded_and_centred_in_a_wide_window(qtbot) -> None:  # type: ignore[no-untyped-def]
    view, message = chat_with_answer(qtbot, 1600)
    column = view.widget().geometry()
    assert column.width() == READING_WIDTH <= 900
    left, right = column.left(), view.viewport().width() - column.right() - 1
    assert abs(left - right) <= 1  # centred
    assert message.answer.width() <= READING_WIDTH


def test_the_column_fills_a_narrow_window(qtbot) -> None:  # type: ignore[no-untyped-def]
    view, _ = chat_with_answer(qtbot, 600)
    assert view.widget().width() == view.viewport().width()


def test_long_code_lines_wrap_within_the_answer_and_stay_whole(qtbot) -> None:  # type: ignore[no-untyped-def]
    for width in (1600, 500):
        _, message = chat_with_answer(qtbot, width)
        answer: AnswerView = message.answer
        document = answer.document()
        assert document.idealWidth() <= answer.viewport().width()  # nothing runs past the right edge
        plain = document.toPlainText()
        assert LONG_LINE in plain and NO_SPACES in plain  # all of each line is there, to read and select
        assert answer.code[0] == f"{LONG_LINE}\n{NO_SPACES}\n"  # Copy gives the lines unwrapped


def first_table_with(document: QTextDocument, columns: int):  # type: ignore[no-untyped-def]
    block = document.begin()
    while block.isValid():
        table = QTextCursor(block).currentTable()
        if table is not None and table.columns() == columns:
            return table
        block = block.next()
    raise AssertionError("no such table")


def test_tables_have_borders_padding_and_a_shaded_header(qtbot) -> None:  # type: ignore[no-untyped-def]
    _, message = chat_with_answer(qtbot, 1000)
    renderer_theme = MarkdownRenderer().theme
    table = first_table_with(message.answer.document(), 2)
    style = table.format()
    assert style.border() >= 1 and style.borderCollapse() and style.cellPadding() >= 4
    assert style.borderBrush().color().name() == renderer_theme.border
    assert table.cellAt(0, 0).format().background().color().name() == renderer_theme.header_bg
    assert table.cellAt(1, 0).format().background().style().name == "NoBrush"
    right = table.cellAt(1, 1).firstCursorPosition().blockFormat().alignment()
    assert right & right.AlignRight


def test_a_quote_after_a_list_stands_apart_with_a_bar(qtbot) -> None:  # type: ignore[no-untyped-def]
    message = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(message)
    text = "1. one\n2. two\n\n> The quote.\n"
    for i in range(len(text)):
        message.apply([ContentDelta(text[i])])
    document = message.answer.tail.document()  # still streaming: the blocks are in the tail
    quote = document.find("The quote.").block()
    assert QTextCursor(quote).currentList() is None  # not the list item before it
    table = QTextCursor(quote).currentTable()
    assert table is not None and table.columns() == 2  # the bar cell, then the quoted text
    assert table.cellAt(0, 0).format().background().color().name() == MarkdownRenderer().theme.border
    assert document.find("two").block().textList() is not None
