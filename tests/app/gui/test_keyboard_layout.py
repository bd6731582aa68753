"""Issue 16, items 6, 8 and 9: the keyboard reaches everything, the layout fits half a laptop screen
and keeps its place, deleted chats are undone one by one. Real widgets, offscreen; the window has
no model loaded (nothing here needs an answer) except where a test sends one through the tiny GGUF."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QPlainTextEdit, QWidget

from app.gui.bridge import EngineBridge
from app.gui.main_window import MainWindow
from app.store import ChatStore

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def chat(store: ChatStore, title: str, turns: list[tuple[str, str]]) -> int:
    conversation = store.create(title)
    for question, answer in turns:
        store.add(conversation, "user", question)
        store.add(conversation, "assistant", answer)
    return conversation


@pytest.fixture
def bare(qtbot, store: ChatStore) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    """The window with no model: the keyboard and the layout do not need one."""
    win = MainWindow(EngineBridge(), store)
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    yield win
    win.close()


def focus(qtbot, widget: QWidget) -> None:  # type: ignore[no-untyped-def]
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus)


# -- 6. keyboard ----------------------------------------------------------------------------------

def test_tab_leaves_the_message_box_and_reaches_think_budget_and_send(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    composer = bare.composer
    focus(qtbot, composer.input)
    reached = []
    for _ in range(8):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        reached.append(QApplication.focusWidget())
        if reached[-1] is composer.send:
            break
    assert composer.input.toPlainText() == ""  # no tab typed
    assert reached[:3] == [composer.think, composer.budget, composer.preset] and reached[-1] is composer.send
    qtbot.keyClick(composer.send, Qt.Key.Key_Tab, SHIFT)
    assert QApplication.focusWidget() is reached[-2]
    focus(qtbot, composer.input)
    qtbot.keyClick(composer.input, Qt.Key.Key_Tab, CTRL)  # the literal tab, for whoever wants one
    assert composer.input.toPlainText() == "\t" and composer.input.hasFocus()


def test_enter_in_the_chat_list_opens_the_chat(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    older = chat(bare.store, "Bread", [("How is bread made?", "Flour, water, salt, yeast.")])
    chat(bare.store, "Sky", [("Why is the sky blue?", "Rayleigh scattering.")])
    bare.sidebar.model.refresh()
    listing = bare.sidebar.list
    focus(qtbot, listing)
    listing.setCurrentIndex(listing.model().index(0, 0))
    qtbot.keyClick(listing, Qt.Key.Key_Down)
    qtbot.keyClick(listing, Qt.Key.Key_Return)
    assert bare.conversation_id == older


def test_the_system_prompt_dialog_is_confirmed_with_ctrl_enter(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    def type_and_confirm() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None or not dialog.isActiveWindow():  # exec() has not shown it yet
            if dialog is not None:
                dialog.activateWindow()
            QTimer.singleShot(10, type_and_confirm)
            return
        edit = dialog.findChild(QPlainTextEdit)
        focused.append(edit is not None and dialog.focusWidget() is edit)
        if edit is not None:
            qtbot.keyClicks(edit, "Answer in French.")
            qtbot.keyClick(edit, Qt.Key.Key_Return, CTRL)
        QTimer.singleShot(0, lambda: dialog.isVisible() and dialog.reject())  # not confirmed: fail, not hang

    focused: list[bool] = []

    QTimer.singleShot(0, type_and_confirm)
    bare._edit_system_prompt()
    assert focused == [True]
    assert bare.controller.system_prompt() == "Answer in French."


def test_ctrl_q_quits(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    focus(qtbot, bare.composer.input)
    qtbot.keyClick(bare.composer.input, Qt.Key.Key_Q, CTRL)
    assert not bare.isVisible()


def test_delete_key_in_the_list_deletes_and_ctrl_z_brings_it_back(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    chat(bare.store, "Bread", [("How is bread made?", "Flour.")])
    bare.sidebar.model.refresh()
    listing = bare.sidebar.list
    focus(qtbot, listing)
    listing.setCurrentIndex(listing.model().index(0, 0))
    qtbot.keyClick(listing, Qt.Key.Key_Delete)
    assert listing.model().rowCount() == 0 and bare.undo.isVisible()
    qtbot.keyClick(listing, Qt.Key.Key_Z, CTRL)
    assert listing.model().rowCount() == 1 and not bare.undo.isVisible()


def test_shortcuts_for_regenerate_edit_and_copy(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    conversation = chat(bare.store, "Sky", [("Why is the sky blue?", "Rayleigh scattering.")])
    bare.sidebar.model.refresh()
    bare.open_conversation(conversation)
    asked: list[object] = []
    bare.controller.regenerate = lambda settings: asked.append(settings) or False  # type: ignore[method-assign]
    box = bare.composer.input
    focus(qtbot, box)
    qtbot.keyClick(box, Qt.Key.Key_R, CTRL)
    assert len(asked) == 1  # Ctrl+R asks for a new answer (the engine is not needed to see that)
    qtbot.keyClick(box, Qt.Key.Key_C, CTRL | SHIFT)
    assert QGuiApplication.clipboard().text() == "Rayleigh scattering."
    qtbot.keyClick(box, Qt.Key.Key_Up)  # Up in an empty box: edit the last question
    assert box.toPlainText() == "Why is the sky blue?" and bare.composer.editing.isVisible()
    bare.controller.cancel_edit()
    box.clear()
    qtbot.keyClick(box, Qt.Key.Key_E, CTRL)
    assert box.toPlainText() == "Why is the sky blue?"
    qtbot.keyClick(box, Qt.Key.Key_Up)  # not empty: Up moves the cursor, as always
    assert box.toPlainText() == "Why is the sky blue?"


def test_menus_have_mnemonics_and_show_their_shortcuts(bare: MainWindow) -> None:
    menus = [a.menu() for a in bare.menuBar().actions()]
    assert [m.title() for m in menus][:2] == ["&File", "&Conversation"]
    shortcuts = {}
    for menu in menus:
        assert "&" in menu.title()
        for action in menu.actions():
            if not action.isSeparator():
                assert "&" in action.text(), action.text()
                shortcuts[action.text().replace("&", "")] = action.shortcut().toString()
    assert shortcuts["Quit"] == "Ctrl+Q" and shortcuts["Regenerate answer"] == "Ctrl+R"
    assert shortcuts["Edit last question"] == "Ctrl+E" and shortcuts["Copy last answer"] == "Ctrl+Shift+C"
    assert shortcuts["Delete chat"] == "Del" and shortcuts["Undo delete"] == "Ctrl+Z"
    assert shortcuts["New chat"] == "Ctrl+N"


# -- 9. delete and undo ---------------------------------------------------------------------------

def titles(win: MainWindow) -> list[str]:
    model = win.sidebar.model
    return [model.index(i).data() for i in range(model.rowCount())]


def test_every_delete_is_undone_newest_first(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    ids = [chat(bare.store, name, [(f"About {name}?", "Yes.")]) for name in ("A", "B", "C")]
    bare.sidebar.model.refresh()
    for conversation in ids:
        bare.sidebar.delete(conversation)
    assert titles(bare) == [] and bare.undo.isVisible() and "+2 more" in bare.undo.text()
    qtbot.mouseClick(bare.undo, Qt.MouseButton.LeftButton)
    assert titles(bare) == ["C"]
    focus(qtbot, bare.sidebar.list)
    qtbot.keyClick(bare.sidebar.list, Qt.Key.Key_Z, CTRL)
    assert sorted(titles(bare)) == ["B", "C"] and bare.undo.isVisible()
    qtbot.keyClick(bare.sidebar.list, Qt.Key.Key_Z, CTRL)
    assert sorted(titles(bare)) == ["A", "B", "C"] and not bare.undo.isVisible()


def test_an_earlier_delete_running_out_leaves_the_later_offer(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    first = chat(bare.store, "First", [("One?", "One.")])
    second = chat(bare.store, "Second", [("Two?", "Two.")])
    bare.sidebar.model.refresh()
    bare.deleted_chats.seconds = 0.05  # the first offer runs out at once ...
    bare.sidebar.delete(first)
    bare.deleted_chats.seconds = 60  # ... the second's does not
    bare.sidebar.delete(second)

    qtbot.waitUntil(lambda: first not in bare.store.deleted())
    with pytest.raises(KeyError):
        bare.store.get(first)  # gone for good when its own undo ran out, messages too
    assert not bare.store.path(first)
    assert bare.undo.isVisible() and "+" not in bare.undo.text()
    qtbot.mouseClick(bare.undo, Qt.MouseButton.LeftButton)
    assert titles(bare) == ["Second"] and not bare.undo.isVisible()


def test_what_is_still_deleted_goes_at_exit_and_after_a_crash(qtbot, store: ChatStore) -> None:  # type: ignore[no-untyped-def]
    win = MainWindow(EngineBridge(), store)
    qtbot.addWidget(win)
    kept = chat(store, "Kept", [("Keep?", "Yes.")])
    gone = chat(store, "Gone", [("Go?", "Yes.")])
    win.sidebar.model.refresh()
    win.sidebar.delete(gone)
    assert store.get(gone).title == "Gone"  # hidden, still there while Undo is offered
    win.close()
    with pytest.raises(KeyError):
        store.get(gone)
    crashed = chat(store, "Crashed", [("Crash?", "Yes.")])
    store.set_delete(crashed)  # a kill while its Undo was offered
    again = MainWindow(EngineBridge(), store)
    qtbot.addWidget(again)
    with pytest.raises(KeyError):
        store.get(crashed)
    assert titles(again) == ["Kept"] and store.get(kept).title == "Kept"
    again.close()


# -- 8. layout ------------------------------------------------------------------------------------

def inside(child: QWidget, parent: QWidget) -> bool:
    top_left = child.mapTo(parent, child.rect().topLeft())
    return parent.rect().contains(top_left) and parent.rect().contains(top_left + child.rect().bottomRight())


def test_the_window_fits_half_a_laptop_screen_with_every_control_whole(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    bare.resize(640, 600)
    qtbot.waitUntil(lambda: bare.width() == 640)
    composer = bare.composer
    for preset in range(composer.preset.count()):  # the custom temperature and top-p too
        composer.preset.setCurrentIndex(preset)
        QApplication.processEvents()
        shown = [w for w in composer.findChildren(QWidget) if w.isVisible() and w.parent() is composer]
        assert shown and all(inside(w, composer) for w in shown)
        assert all(w.width() >= w.minimumSizeHint().width() for w in shown if w is not composer.budget)
        assert composer.budget.width() >= 96  # a slider, not a nub
    assert inside(composer, bare) and bare.sidebar.width() >= 160


def test_the_window_does_not_widen_itself(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    bare.resize(1100, 760)
    qtbot.waitUntil(lambda: bare.width() == 1100)
    long_status = ("Nemotron-3-Nano-30B-A3B-UD-Q4_K_XL · llama.cpp · Q4_K_XL · GPU layers 99 · context 131072 · "
                   "used 4096/131072 · 48.3 tok/s · first token 0.21 s")
    bare.status.setText(long_status)
    bare.announcer.say("Chat deleted. Undo delete is offered in the status bar.")
    bare.composer.presets.insert(0, ("This model (temperature 0.6, top-p 0.95, from its own generation config)",
                                     0.6, 0.95))
    bare.composer.preset.insertItem(0, bare.composer.presets[0][0])
    bare.composer.preset.setCurrentIndex(0)
    bare.composer.set_budget(10**6)  # the widest budget text
    QApplication.processEvents()
    assert bare.width() == 1100
    bare.composer.preset.setCurrentIndex(bare.composer.preset.count() - 1)  # Custom: temperature, top-p
    QApplication.processEvents()
    assert bare.width() == 1100
    assert bare.status.text() == long_status  # all of it, for the tooltip and a screen reader


def test_the_open_chat_stays_highlighted_and_long_titles_elide(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    long_title = "A very long question about the history of bread making in the Fertile Crescent " * 3
    older = chat(bare.store, long_title, [("Bread?", "Yes.")])
    other = chat(bare.store, "Sky", [("Sky?", "Blue.")])
    bare.sidebar.model.refresh()
    listing = bare.sidebar.list
    model = bare.sidebar.model
    qtbot.mouseClick(listing.viewport(), Qt.MouseButton.LeftButton, pos=listing.visualRect(model.index(1)).center())
    assert bare.conversation_id == older

    def highlighted() -> int | None:
        rows = listing.selectionModel().selectedRows()
        return rows[0].data(model.IdRole) if len(rows) == 1 else None

    assert highlighted() == older
    bare.conversations_changed(older)  # what every answer's end does
    assert highlighted() == older
    bare.sidebar.search.setText("Sky")
    bare.sidebar.search.clear()
    assert highlighted() == older
    bare.sidebar.delete(other)
    assert highlighted() == older
    row = model.index(model.row_of(older))
    assert listing.horizontalScrollBar().maximum() == 0  # no sideways scrolling for a long title ...
    assert listing.visualRect(row).width() <= listing.viewport().width()  # ... it ends in "…"
    assert row.data(Qt.ItemDataRole.ToolTipRole) == long_title


def test_item_models_pass_the_model_tester(qtmodeltester, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    for title in ("Bread", "Sky", "x" * 300):
        chat(bare.store, title, [("Q?", "A.")])
    model = bare.sidebar.model
    model.refresh()
    qtmodeltester.check(model)
    bare.sidebar.select(model.index(0).data(model.IdRole))
    model.refresh("Sky")
    qtmodeltester.check(model)
    model.refresh("")
    assert model.rowCount() == 3
    from app.gui.qt import QTableWidgetItem
    from app.gui.tables import row_table

    table = row_table(("Model", "Backend", "Size", "Location"), stretch_column=3)  # the wizard's and the library's
    table.setRowCount(2)
    for row in range(2):
        for col in range(4):
            table.setItem(row, col, QTableWidgetItem(f"{row},{col}"))
    qtmodeltester.check(table.model())


def test_the_connect_dialogs_error_wraps_below_its_row(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.gui.connect_dialog import ConnectDialog
    from engine.services.secrets import SecretStore

    dialog = ConnectDialog(None, SecretStore(service="nemotron-desk-tests"))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.resize(420, dialog.height())
    dialog.url.setText("http://127.0.0.1:1/v1")  # nothing listens on port 1: refused at once, no network
    before = dialog.message.text()
    dialog.test.click()
    qtbot.waitUntil(lambda: dialog.test.isEnabled() and dialog.message.text() != before, timeout=20_000)
    QApplication.processEvents()
    message = dialog.message
    assert message.fontMetrics().horizontalAdvance(message.text()) > message.width()  # long enough to wrap
    assert message.height() >= message.heightForWidth(message.width())  # every line shown
    top = message.mapTo(dialog, message.rect().topLeft()).y()
    row_bottom = dialog.test.mapTo(dialog, dialog.test.rect().bottomLeft()).y()
    buttons_top = dialog.buttons.mapTo(dialog, dialog.buttons.rect().topLeft()).y()
    assert row_bottom < top and top + message.height() <= buttons_top  # neither over the row above nor below


def test_an_opened_thinking_pane_keeps_its_height_while_the_answer_streams(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from app.gui.messages import AssistantMessage
    from engine.api import ContentDelta, ReasoningDelta, ReasoningEnded

    bare.resize(900, 600)
    message = AssistantMessage(bare.renderer)
    bare.chat.add(message)
    message.apply([ReasoningDelta(f"Step {i}: weigh the options.\n", i) for i in range(40)])
    pane = message.thinking
    pane.header.click()  # the person folds it ...
    pane.header.click()  # ... and opens it again: it stays open
    message.apply([ReasoningEnded(False, 40)])
    QApplication.processEvents()
    qtbot.waitUntil(lambda: pane.body.height() > 100)
    opened = pane.body.height()
    for i in range(60):  # an answer far taller than the chat
        message.apply([ContentDelta(f"Paragraph {i} of the answer, long enough to take a line.\n\n")])
        QApplication.processEvents()
        assert pane.body.height() == opened
    qtbot.waitUntil(lambda: bare.chat.verticalScrollBar().maximum() > 0)
    assert pane.body.isVisible() and pane.body.height() == opened


LONG = "\n\n".join(f"Paragraph {i}: a line of the answer that takes some room on the screen." for i in range(30))


def test_switching_a_version_keeps_the_reading_position(qtbot, bare: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from app.gui.branches import MessageTools

    store = bare.store
    conversation = chat(store, "Versions", [("First question?", LONG)])
    question = store.add(conversation, "user", "Second question?")
    store.add(conversation, "assistant", "Version one.\n\n" + LONG)
    store.add(conversation, "assistant", "Version two.\n\n" + LONG, parent_id=question)
    bare.sidebar.model.refresh()
    bare.resize(900, 600)
    bare.open_conversation(conversation)
    bar = bare.chat.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 1000 and bar.value() == bar.maximum())  # opened at the end
    tools = [t for t in bare.chat.widget().findChildren(MessageTools) if len(t.siblings) > 1]
    reading = bar.maximum() // 2
    bar.setValue(reading)  # the person scrolls up to read
    tools[0].switchTo.emit(tools[0].siblings[0])  # ‹: the first version
    qtbot.waitUntil(lambda: "Version one." in bare.history[-1].content)
    qtbot.waitUntil(lambda: bar.maximum() > 1000 and bar.value() == reading)
    qtbot.wait(100)  # the new column's late layout passes must not move it either
    assert bar.value() == reading != bar.maximum()


def test_sending_while_scrolled_up_brings_the_question_into_view(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from app.gui.messages import UserMessage

    conversation = chat(window.store, "Long", [("First question?", LONG), ("Second question?", LONG)])
    window.sidebar.model.refresh()
    window.resize(900, 600)
    window.open_conversation(conversation)
    bar = window.chat.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 1000 and bar.value() == bar.maximum())
    bar.setValue(0)  # the person reads the beginning
    window.composer.set_budget(64)
    window.composer.input.setPlainText("A third question")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    viewport = window.chat.viewport()

    def in_view() -> bool:
        sent = window.chat.widget().findChildren(UserMessage)[-1]
        top_left = sent.mapTo(viewport, sent.rect().topLeft())
        laid_out = sent.isVisible() and sent.y() > 1000  # below the long history, not yet at (0, 0)
        return "A third question" in sent.toPlainText() and laid_out and viewport.rect().contains(top_left)

    qtbot.waitUntil(in_view, timeout=10_000)
    qtbot.waitUntil(lambda: window.current is None and not window.bridge.busy, timeout=60_000)
