"""The chat window on a real engine (tiny Nemotron-H GGUF in llama.cpp, in the worker process)."""

from __future__ import annotations

import os
import signal

from PySide6.QtCore import Qt

from app.gui.composer import BUDGET_STEPS
from app.gui.main_window import MainWindow
from engine.api import FinishReason


def send(qtbot, win: MainWindow, text: str) -> None:  # type: ignore[no-untyped-def]
    win.composer.input.setPlainText(text)
    qtbot.keyClick(win.composer.input, Qt.Key.Key_Return)


def wait_answer(qtbot, win: MainWindow) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: win.current is None and not win.bridge.busy, timeout=60_000)


def last_answer(win: MainWindow):  # type: ignore[no-untyped-def]
    from app.gui.messages import AssistantMessage
    return win.chat.widget().findChildren(AssistantMessage)[-1]


def test_window_opens_with_the_model_loaded(window: MainWindow) -> None:
    assert "nemotron_h_moe" not in window.status.text()  # the name, not the arch
    assert "llama.cpp" in window.status.text() and window.composer.send.isEnabled()


def test_a_full_turn_with_budget_from_the_slider(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.set_budget(64)
    assert window.composer.budget_tokens == 64
    send(qtbot, window, "Why is the sky blue?")
    assert window.last_request is not None and window.last_request.reasoning_budget == 64
    assert window.composer.input.toPlainText() == ""
    wait_answer(qtbot, window)
    answer = last_answer(window)
    pane = answer.thinking
    assert pane.isVisible() and pane.done and pane.by_budget
    assert 64 <= pane.tokens <= 64 + 500 + 5
    assert not pane.header.isChecked() and not pane.body.isVisible()  # folded when the answer started
    assert "Thought for" in pane.header.text() and "ended by the budget" in pane.header.text()
    assert answer.reasoning and "</think>" not in answer.answer.text
    assert [m.role for m in window.history] == ["user", "assistant"]
    assert window.history[1].reasoning == answer.reasoning
    assert "tok/s" in window.status.text()


def test_opened_pane_stays_open(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.set_budget(64)
    send(qtbot, window, "Explain rainbows.")
    qtbot.waitUntil(lambda: last_answer(window).thinking.isVisible(), timeout=30_000)
    pane = last_answer(window).thinking
    pane.header.click()  # the person folds it while it streams ...
    pane.header.click()  # ... and opens it again
    wait_answer(qtbot, window)
    assert pane.opened_by_person and pane.header.isChecked() and pane.body.isVisible()


def test_thinking_off_has_no_pane(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.think.setChecked(False)
    assert not window.composer.budget.isEnabled()
    send(qtbot, window, "Hello")
    assert window.last_request is not None
    assert window.last_request.thinking is False and window.last_request.reasoning_budget is None
    wait_answer(qtbot, window)
    answer = last_answer(window)
    assert not answer.thinking.isVisible() and answer.reasoning == ""
    assert answer.answer.text


def test_stop_mid_stream(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.max_tokens = 4000
    window.composer.set_budget(None)
    assert window.composer.budget_tokens is None and BUDGET_STEPS[0] is None
    send(qtbot, window, "Think long.")
    qtbot.waitUntil(lambda: last_answer(window).thinking.tokens > 5, timeout=30_000)
    assert window.composer.stop.isEnabled()
    qtbot.mouseClick(window.composer.stop, Qt.MouseButton.LeftButton)
    wait_answer(qtbot, window)
    answer = last_answer(window)
    assert answer.finish is FinishReason.CANCELLED and "stopped" in answer.footer.text()
    assert window.composer.send.isEnabled()


def test_engine_crash_shows_an_error_and_the_next_message_works(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.max_tokens = 4000
    send(qtbot, window, "Think long.")
    qtbot.waitUntil(lambda: last_answer(window).thinking.tokens > 5, timeout=30_000)
    pid = window.bridge.client.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_answer(qtbot, window)
    failed = last_answer(window)
    assert failed.error is not None and "killed" in failed.footer.text()
    assert window.history == [] and window.composer.input.toPlainText() == "Think long."
    window.max_tokens = 40
    send(qtbot, window, "Again")
    wait_answer(qtbot, window)
    assert last_answer(window).error is None and [m.role for m in window.history] == ["user", "assistant"]


def test_load_settings_unload_and_reload(qtbot, window: MainWindow, tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    from app.gui.load_dialog import LoadSettingsDialog, saved_options

    dialog = LoadSettingsDialog(window)
    dialog.context.setValue(2048)
    dialog.threads.setValue(1)
    dialog.gpu_layers.setValue(0)
    dialog.accept()
    assert (saved_options().n_ctx, saved_options().n_threads, saved_options().n_gpu_layers) == (2048, 1, 0)
    pid = window.bridge.client.worker_pid
    window.unload_model()
    assert window.bridge.client.worker_pid is None and "No model" in window.status.text()
    assert pid is not None
    window.load_model(str(tiny_nemotron.gguf_path))
    qtbot.waitUntil(lambda: window.bridge.model is not None and not window.bridge.busy, timeout=60_000)
    assert window.bridge.model.n_ctx == 2048 and "context 2048" in window.status.text()


def test_bad_model_file_is_explained_in_the_status_line(qtbot, window: MainWindow, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model")
    window.load_model(str(bad))
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=30_000)
    assert "not a GGUF file" in window.status.text() and "Choose a .gguf" in window.status.text()


def test_follows_the_system_colour_scheme(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window._follow_color_scheme(Qt.ColorScheme.Dark)
    assert "#272822" in window.renderer.render("```\nx\n```\n")
    window._follow_color_scheme(Qt.ColorScheme.Light)
    assert "#f6f8fa" in window.renderer.render("```\nx\n```\n")


def test_folding_while_streaming_keeps_the_reading_position(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.resize(900, 420)  # small, so the conversation scrolls
    window.composer.set_budget(None)
    window.max_tokens = 3000
    send(qtbot, window, "Think long about these lines:\n" + "\n".join(f"line {i}" for i in range(40)))

    def scrolling_and_thinking() -> None:
        assert last_answer(window).thinking.tokens > 50, last_answer(window).thinking.tokens
        assert window.chat.verticalScrollBar().maximum() > 0, window.chat.viewport().height()

    qtbot.waitUntil(scrolling_and_thinking, timeout=30_000)
    bar = window.chat.verticalScrollBar()
    bar.setValue(0)  # the person scrolls up to read the question while the reasoning streams
    pane = last_answer(window).thinking
    pane.header.click()  # fold ...
    qtbot.wait(150)  # (the layout settles: the column is shorter now)
    pane.header.click()  # ... and open again, mid-stream
    qtbot.wait(300)  # more tokens arrive meanwhile
    assert bar.value() == 0  # not yanked to the bottom
    window.bridge.stop()
    wait_answer(qtbot, window)
    bar.setValue(bar.maximum())
    send(qtbot, window, "And again")  # at the bottom, the view follows the new text
    qtbot.waitUntil(lambda: last_answer(window).thinking.tokens > 50 and bar.value() == bar.maximum() > 0,
                    timeout=30_000)
    qtbot.wait(200)  # more text arrives: the view keeps following it
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=2_000)
    window.bridge.stop()
    wait_answer(qtbot, window)


def test_hugging_face_folder_runs_on_torch_from_the_model_menu(qtbot, window: MainWindow, tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    """The Model menu's folder entry ends in load_model(folder): the same window, the torch backend."""
    from app.gui.load_dialog import LoadSettingsDialog

    dialog = LoadSettingsDialog(window)
    dialog.threads.setValue(1)  # torch's thread pool and llama.cpp's share 2 cores here
    dialog.accept()
    model_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Model")
    assert any(a.text() == "Open &Hugging Face folder…" for a in model_menu.actions())
    window.load_model(str(tiny_nemotron.hf_dir))
    qtbot.waitUntil(lambda: window.bridge.model is not None and window.bridge.model.backend == "torch"
                    and not window.bridge.busy, timeout=120_000)
    assert "torch" in window.status.text() and "CPU float32" in window.status.text()
    assert "PyTorch" in window.status.toolTip()  # the compute path, for whoever asks
    window.composer.set_budget(16)
    send(qtbot, window, "Why is the sky blue?")
    wait_answer(qtbot, window)
    pane = last_answer(window).thinking
    assert pane.done and pane.by_budget and last_answer(window).error is None


def test_folder_without_config_is_explained(qtbot, window: MainWindow, tmp_path) -> None:  # type: ignore[no-untyped-def]
    window.load_model(str(tmp_path))
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=30_000)
    assert "no config.json" in window.status.text() and "safetensors" in window.status.text()


def test_a_failed_send_is_rolled_back_and_a_resend_shows_once(qtbot, store) -> None:  # type: ignore[no-untyped-def]
    from app.gui.branches import MessageTools
    from app.gui.bridge import EngineBridge
    from app.gui.messages import UserMessage

    win = MainWindow(EngineBridge(), store, None)  # no model loaded
    qtbot.addWidget(win)
    win.show()
    send(qtbot, win, "Hello")
    wait_answer(qtbot, win)
    assert "No model is loaded" in last_answer(win).footer.text()
    assert win.history == [] and win.composer.input.toPlainText() == "Hello"  # back in the box
    qtbot.keyClick(win.composer.input, Qt.Key.Key_Return)  # resend it as it is
    wait_answer(qtbot, win)
    questions = win.chat.widget().findChildren(UserMessage)
    assert [q.toPlainText() for q in questions] == ["Hello"]  # once, not twice
    assert not [t for t in win.chat.widget().findChildren(MessageTools) if len(t.siblings) > 1]  # no false ‹ 2/2 ›
    assert win.history == []
    win.close()


def test_something_shows_between_send_and_the_first_token(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.think.setChecked(False)
    window.max_tokens = 8
    send(qtbot, window, "Hi")
    waiting = last_answer(window)  # no event can have arrived yet: they come in a later turn of the event loop
    assert "Waiting for the first token" in waiting.footer.text(), waiting.footer.text()
    wait_answer(qtbot, window)
    assert "Waiting" not in waiting.footer.text() and waiting.answer.text
