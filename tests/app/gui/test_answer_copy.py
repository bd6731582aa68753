"""Each answer's Copy links copy that answer's own code, through a real click and the real
clipboard (offscreen Qt), and say so; answers streamed later do not disturb earlier ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.gui.bridge import EngineBridge
from app.gui.main_window import MainWindow
from app.gui.messages import AnswerView, AssistantMessage, BlocksView
from app.gui.qt import QGuiApplication, Qt, QTextCursor
from app.store import ChatStore
from engine.api import ContentDelta, Finished, FinishReason


@pytest.fixture
def bare_window(qtbot, store: ChatStore) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    """The main window without a model: the engine process is never started."""
    win = MainWindow(EngineBridge(), store)
    qtbot.addWidget(win)
    win.resize(1000, 800)
    win.show()
    yield win
    win.close()


def stream_answer(win: MainWindow, text: str) -> AssistantMessage:
    message = AssistantMessage(win.renderer)
    win.chat.add(message)
    for i in range(0, len(text), 3):
        message.apply([ContentDelta(text[i:i + 3])])
    message.apply([Finished(FinishReason.STOP)])
    return message


def link_in(view: AnswerView, index: int) -> tuple[BlocksView, str] | None:
    """The view (the settled blocks or the streaming tail) with the link to copy:<index>, and its text."""
    for part in (view, view.tail):
        block = part.document().begin()
        while block.isValid():
            pieces = block.begin()
            while not pieces.atEnd():
                piece = pieces.fragment()
                pieces += 1
                if piece.charFormat().anchorHref() == f"copy:{index}":
                    return part, piece.text()
            block = block.next()
    return None


def link_text(view: AnswerView, index: int) -> str:
    """The text of the link to copy:<index>."""
    found = link_in(view, index)
    assert found is not None, f"no copy:{index} link"
    return found[1]


def click_link(qtbot, view: AnswerView, index: int) -> None:  # type: ignore[no-untyped-def]
    """A left click in the middle of the copy:<index> link, as a person clicks it."""
    found_in = link_in(view, index)
    assert found_in is not None
    part, text = found_in
    found = part.document().find(text)
    while found.charFormat().anchorHref() != f"copy:{index}":
        found = part.document().find(text, found)
    cursor = QTextCursor(part.document())
    cursor.setPosition(found.selectionStart() + 2)
    qtbot.mouseClick(part.viewport(), Qt.MouseButton.LeftButton, pos=part.cursorRect(cursor).center())


def test_each_answer_copies_its_own_code(qtbot, bare_window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    answers = [stream_answer(bare_window, f"Answer {n}:\n\n```python\nprint({n})\n```\n\nThen:\n\n"
                                          f"```bash\necho {n}\nexit\n```\n\nDone.\n") for n in range(3)]
    qtbot.waitUntil(lambda: all(a.answer.height() > 100 for a in answers))
    clipboard = QGuiApplication.clipboard()
    for n, message in enumerate(answers):
        assert message.answer.code == [f"print({n})\n", f"echo {n}\nexit\n"]
        for index, expected in enumerate(message.answer.code):
            clipboard.setText("")
            click_link(qtbot, message.answer, index)
            assert clipboard.text() == expected, (n, index)
    # Feedback: the link says "Copied" for a moment, the status line says what was copied.
    last = answers[-1].answer
    assert link_text(last, 1) == "Copied" and link_text(last, 0) == "Copy"
    assert bare_window.statusBar().currentMessage() == "Copied 2 lines of code"
    assert bare_window.status.isHidden()  # the message shows in the status label's place
    qtbot.waitUntil(lambda: link_text(last, 1) == "Copy", timeout=10_000)
    assert answers[0].answer.document().toPlainText().count("Copied") == 0


def test_copied_feedback_in_the_final_part_keeps_the_streaming_tail_in_place(qtbot, bare_window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """The link text changes length inside the final blocks while the answer still streams."""
    message = AssistantMessage(bare_window.renderer)
    bare_window.chat.add(message)
    message.apply([ContentDelta("```\nfirst\n```\n\nA paragraph\nstill ")])
    assert message.answer.final_length > 0
    message.answer.copy_code(0)
    assert link_text(message.answer, 0) == "Copied"
    message.apply([ContentDelta("growing.\n\n- and a list")])
    plain = message.answer.tail.document().toPlainText()
    assert plain.count("A paragraph still growing.") == 1 and plain.rstrip().endswith("and a list")
    qtbot.waitUntil(lambda: link_text(message.answer, 0) == "Copy", timeout=10_000)
    message.apply([ContentDelta(" item")])
    assert message.answer.tail.document().toPlainText().rstrip().endswith("and a list item")
