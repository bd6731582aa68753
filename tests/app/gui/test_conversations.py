"""Conversations in the window: saved as they stream, listed, searched, renamed, deleted with undo,
and everything back after a restart or a kill -9."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PySide6.QtCore import Qt

from app.gui.bridge import EngineBridge
from app.gui.main_window import MainWindow
from app.gui.messages import AssistantMessage
from app.gui.sidebar import ConversationModel
from app.store import ChatStore
from tests import REPO_ROOT
from tests.app.gui.conftest import tiny_spec
from tests.app.gui.test_chat_window import last_answer, send, wait_answer

ROOT = REPO_ROOT


def test_model_passes_qt_model_tester(qtmodeltester, store: ChatStore) -> None:  # type: ignore[no-untyped-def]
    for title in ("a", "b", "c"):
        store.create(title)
    model = ConversationModel(store)
    qtmodeltester.check(model)
    model.refresh("b")
    qtmodeltester.check(model)


def test_chats_are_listed_searched_renamed_deleted_and_undone(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.set_budget(64)
    send(qtbot, window, "Why is the sky blue?")
    wait_answer(qtbot, window)
    first = window.conversation_id
    window.new_chat()
    send(qtbot, window, "Tell me about bread")
    wait_answer(qtbot, window)
    model = window.sidebar.model
    assert [model.index(i).data() for i in range(model.rowCount())] == ["Tell me about bread", "Why is the sky blue?"]
    window.sidebar.search.setText("sky")
    assert model.rowCount() == 1
    window.sidebar.search.clear()
    assert model.setData(model.index(1), "Blue sky")
    assert window.store.get(first).title == "Blue sky"  # type: ignore[arg-type]
    window.sidebar.delete(first)  # type: ignore[arg-type]
    assert model.rowCount() == 1 and window.undo.isVisible()
    qtbot.mouseClick(window.undo, Qt.MouseButton.LeftButton)
    assert model.rowCount() == 2


def test_switching_conversations_restores_messages_and_settings(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.think.setChecked(False)
    send(qtbot, window, "Hello")
    wait_answer(qtbot, window)
    first, first_text = window.conversation_id, last_answer(window).answer.text
    window.new_chat()
    window.composer.think.setChecked(True)
    window.composer.set_budget(64)
    send(qtbot, window, "Think about it")
    wait_answer(qtbot, window)
    window.open_conversation(first)  # type: ignore[arg-type]
    assert not window.composer.think.isChecked()  # remembered per conversation
    answers = window.chat.widget().findChildren(AssistantMessage)
    assert len(answers) == 1 and answers[0].answer.text.strip() == first_text.strip()
    assert [m.role for m in window.history] == ["user", "assistant"]


def test_restart_shows_everything(qtbot, tiny_nemotron, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "restart.sqlite3"
    win = MainWindow(EngineBridge(), ChatStore(db), tiny_spec(tiny_nemotron))
    qtbot.addWidget(win)
    win.max_tokens = 200
    win.composer.set_budget(64)
    qtbot.waitUntil(lambda: win.bridge.model is not None, timeout=60_000)
    send(qtbot, win, "Remember me")
    wait_answer(qtbot, win)
    reasoning, answer = last_answer(win).reasoning, last_answer(win).answer.text
    win.close()
    win.store.close()  # what the end of the process does: the next start owns the database
    again = MainWindow(EngineBridge(), ChatStore(db))
    qtbot.addWidget(again)
    assert again.sidebar.model.rowCount() == 1
    again.open_conversation(again.sidebar.model.index(0).data(ConversationModel.IdRole))
    restored = last_answer(again)
    assert restored.reasoning == reasoning and restored.answer.text.strip() == answer.strip()
    assert restored.thinking.done and "Thought for" in restored.thinking.header.text()
    again.close()


KILLED_APP = textwrap.dedent("""
    import sys
    from PySide6.QtWidgets import QApplication
    from app.gui.bridge import EngineBridge
    from app.gui.main_window import MainWindow
    from app.store import ChatStore
    from engine.backends.llama_cpp import LlamaLoadOptions
    from engine.worker.session import LoadSpec

    app = QApplication([])
    win = MainWindow(EngineBridge(), ChatStore(sys.argv[1]),
                     LoadSpec(sys.argv[2], LlamaLoadOptions(n_ctx=4096, n_threads=1, n_gpu_layers=0)))
    win.max_tokens = 100000
    win.composer.set_budget(None)
    def start(busy):
        if not busy and win.conversation_id is None:  # the load has finished
            win.send("Stream until I am killed")
    win.bridge.busyChanged.connect(start)
    win.show()
    app.exec()
""")


def test_kill_9_while_streaming_loses_nothing(qtbot, tiny_nemotron, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "killed.sqlite3"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_APP, str(db), str(tiny_nemotron.gguf_path)], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the app never streamed"
            try:  # the app may not have created the file or its schema yet
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as peek:
                    row = peek.execute("SELECT length(reasoning) FROM messages WHERE role='assistant'").fetchone()
            except sqlite3.OperationalError:
                row = None
            if row and row[0] > 200:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    win = MainWindow(EngineBridge(), ChatStore(db))
    qtbot.addWidget(win)
    win.open_conversation(win.sidebar.model.index(0).data(ConversationModel.IdRole))
    answer = last_answer(win)
    assert len(answer.reasoning) > 200
    assert "Interrupted" in answer.footer.text()
    assert [m.role for m in win.history] == ["user", "assistant"]
    win.close()


def test_regenerate_keeps_both_answers_and_switches(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from app.gui.branches import MessageTools

    window.composer.think.setChecked(False)
    window.max_tokens = 12
    send(qtbot, window, "Say something")
    wait_answer(qtbot, window)
    first = last_answer(window).answer.text
    qtbot.mouseClick(window.composer.regenerate, Qt.MouseButton.LeftButton)
    wait_answer(qtbot, window)
    second = last_answer(window).answer.text
    assert len(window.history) == 2  # one question, the new answer on screen
    tools = [t for t in window.chat.widget().findChildren(MessageTools) if len(t.siblings) == 2]
    assert tools and tools[-1].position.text() == "2/2"
    window.switch_branch(tools[-1].siblings[0])
    assert last_answer(window).answer.text.strip() == first.strip()
    assert second  # the other answer is still stored
    assert [m.content for m in window.history] == ["Say something", first.strip()]


def test_edit_an_earlier_question_makes_a_branch(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from app.gui.branches import MessageTools

    window.composer.think.setChecked(False)
    window.max_tokens = 8
    send(qtbot, window, "First question")
    wait_answer(qtbot, window)
    send(qtbot, window, "Second question")
    wait_answer(qtbot, window)
    first_q = next(t for t in window.chat.widget().findChildren(MessageTools))
    window.edit(first_q.message_id)
    assert window.composer.input.toPlainText() == "First question" and window.composer.editing.isVisibleTo(window)
    window.composer.input.setPlainText("First question, edited")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    wait_answer(qtbot, window)
    assert [m.role for m in window.history] == ["user", "assistant"]
    assert window.history[0].content == "First question, edited"
    switcher = next(t for t in window.chat.widget().findChildren(MessageTools) if len(t.siblings) == 2)
    window.switch_branch(switcher.siblings[0])  # back to the old branch, with its follow-up
    assert [m.content for m in window.history][::2] == ["First question", "Second question"]


def test_system_prompt_and_presets_reach_the_request(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.set_system_prompt("Answer in French.")
    window.composer.preset.setCurrentIndex(1)  # tool calling
    window.composer.think.setChecked(False)
    window.max_tokens = 4
    send(qtbot, window, "Hi")
    wait_answer(qtbot, window)
    request = window.last_request
    assert request is not None and request.messages[0].role == "system"
    assert request.messages[0].content == "Answer in French."
    assert (request.sampling.temperature, request.sampling.top_p) == (0.6, 0.95)
    window.composer.preset.setCurrentIndex(2)  # custom
    window.composer.temperature.setValue(0.3)
    assert window.composer.sampling() == (0.3, 1.0)
