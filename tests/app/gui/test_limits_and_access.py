"""Issue 16, items 4, 10 and 11: limits follow the loaded context and are shown in tokens; the
thinking pane counts the engine's tokens and names what ended the reasoning; a model that cannot
reason gets Think off with the reason; what changes away from the focus is announced."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtGui import QAccessible

from app.gui.bridge import EngineBridge
from app.gui.composer import Composer
from app.gui.main_window import MainWindow
from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AssistantMessage
from app.store import ChatStore
from engine.api import (
    ContentDelta,
    Finished,
    FinishReason,
    LlamaLoadOptions,
    LoadSpec,
    ModelInfo,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
    Usage,
)
from tests.app.gui.test_chat_window import last_answer, send, wait_answer

NEMOTRON = ModelInfo(path="/m/nemotron.gguf", name="Nemotron 3 Nano", backend="llama.cpp",
                     architecture="nemotron_h_moe", quantization="Q4_K_M", size_bytes=1, context_length=1 << 20,
                     n_ctx=8192, n_gpu_layers=99, is_demo=False, has_thinking=True)
DEMO = replace(NEMOTRON, name="Demo", architecture="llama", is_demo=True, has_thinking=False)


def name_of(widget) -> str:  # type: ignore[no-untyped-def]
    """What a screen reader hears as the widget's name (Qt's accessibility interface, offscreen too)."""
    return QAccessible.queryAccessibleInterface(widget).text(QAccessible.Text.Name)


def test_max_tokens_and_the_budget_steps_follow_the_context(qtbot) -> None:  # type: ignore[no-untyped-def]
    composer = Composer()
    qtbot.addWidget(composer)
    composer.follow_model(NEMOTRON)
    assert composer.max_tokens == 8192
    steps = composer.steps
    assert steps[0] is None and composer.budget.maximum() == len(steps) - 1
    assert len(set(steps)) == len(steps) and max(s for s in steps if s) < 8192 - 512  # no two alike
    composer.set_budget(32768)
    assert composer.budget_tokens == steps[-1]
    composer.follow_model(replace(NEMOTRON, n_ctx=262144))
    assert composer.max_tokens == 262144 and composer.budget_tokens == steps[-1]  # the budget stays
    assert max(s for s in composer.steps if s) > 32768  # a long context reaches further
    composer.set_budget(2048)
    assert composer.budget_label.text() == "2048 tokens"
    for text in (composer.budget.toolTip(), composer.budget.accessibleDescription()):
        assert "2048 tokens" in text and "262144" in text
    assert "2048 tokens" in name_of(composer.budget)  # the slider's position (0-19) is not the news
    composer.set_budget(None)
    assert "no limit" in name_of(composer.budget)


def test_the_pane_counts_engine_tokens_and_says_what_ended_the_reasoning(qtbot) -> None:  # type: ignore[no-untyped-def]
    answer = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(answer)
    answer.show()
    answer.apply([ReasoningDelta("First", 3), ReasoningDelta(" step", 7)])  # two pieces, seven tokens
    assert answer.thinking.tokens == 7 and "7 tokens" in answer.thinking.header.text()
    answer.apply([ReasoningDelta(".", 7700), ContentDelta("The answer."),
                  ReasoningEnded(True, 7704, ReasoningEndCause.ANSWER_ROOM)])
    header = answer.thinking.header.text()
    assert "7704 tokens" in header and "room for the answer" in header and "budget" not in header
    answer.apply([Usage(10, 0, 7704, 3, 0.1, 100.0, 50.0), Finished(FinishReason.STOP)])
    assert answer.figures()["reasoning_ended_by"] == "answer_room"
    again = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(again)
    again.restore(answer.reasoning, "The answer.", "done", answer.figures())
    assert "room for the answer" in again.thinking.header.text()
    cut = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(cut)
    cut.show()
    cut.apply([ReasoningDelta("Still thinking", 40), Finished(FinishReason.LENGTH)])
    assert "cut at the length limit" in cut.thinking.header.text() and "budget" not in cut.thinking.header.text()


def test_the_thinking_header_is_heard_as_its_text(qtbot) -> None:  # type: ignore[no-untyped-def]
    answer = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(answer)
    answer.show()
    answer.apply([ReasoningDelta("Hmm", 5), ReasoningEnded(False, 843)])
    assert "Thought for" in name_of(answer.thinking.header) and "843 tokens" in name_of(answer.thinking.header)
    assert "reasoning" in answer.thinking.header.accessibleDescription()


def test_sampling_boxes_have_names_and_buddies(qtbot) -> None:  # type: ignore[no-untyped-def]
    composer = Composer()
    qtbot.addWidget(composer)
    assert name_of(composer.temperature) == "Temperature" and name_of(composer.top_p) == "Top-p"
    assert composer.temperature_label.buddy() is composer.temperature
    assert composer.top_p_label.buddy() is composer.top_p
    assert composer.budget_caption.buddy() is composer.budget


def test_a_model_that_cannot_reason_gets_think_off_and_a_low_temperature(qtbot) -> None:  # type: ignore[no-untyped-def]
    composer = Composer()
    qtbot.addWidget(composer)
    composer.follow_model(DEMO)
    assert not composer.think.isChecked() and not composer.think.isEnabled()
    assert "cannot reason" in composer.think.toolTip() and not composer.budget.isEnabled()
    assert composer.sampling() == (0.2, 0.9)
    composer.follow_model(replace(DEMO, default_temperature=0.7, default_top_p=0.8))  # it declares its own
    assert composer.sampling() == (0.7, 0.8) and "0.7" in composer.preset.currentText()
    composer.follow_model(NEMOTRON)  # the model card's values, and the person's Think comes back
    assert composer.sampling() == (1.0, 1.0) and composer.preset.count() == 3
    assert composer.think.isChecked() and composer.think.isEnabled() and composer.budget.isEnabled()


def test_the_demo_in_the_window(qtbot, demo_gguf: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = ChatStore(tmp_path / "chats.sqlite3")
    chat = store.create("Earlier, with Nemotron", True, 1024)
    win = MainWindow(EngineBridge(), store, LoadSpec(None, LlamaLoadOptions(n_ctx=2048, n_threads=2,
                                                                            n_gpu_layers=0)))
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.bridge.model is not None and not win.bridge.busy, timeout=60_000)
        assert win.bridge.model is not None and win.bridge.model.is_demo
        assert not win.composer.think.isChecked() and not win.composer.think.isEnabled()
        assert not win.composer.budget.isEnabled() and win.composer.sampling() == (0.2, 0.9)
        assert win.max_tokens == 2048  # the loaded context, not a fixed 8192
        assert win.chat.hint.isVisible() and "demo" in win.chat.hint.text()
        assert "Model loaded" in name_of(win.announcer.live)
        win.open_conversation(chat)  # it was saved with thinking on
        qtbot.waitUntil(lambda: not win.composer.think.isChecked())
        assert store.get(chat).thinking  # kept for a model that can reason
        win.max_tokens = 8
        send(qtbot, win, "Hello")
        assert not win.chat.hint.isVisible()
        assert win.last_request is not None and not win.last_request.thinking
        wait_answer(qtbot, win)
        assert name_of(win.announcer.live).startswith("Answer")  # "Answer cut at the length limit." and kin
    finally:
        win.close()
        store.close()


def test_answers_errors_and_the_undo_offer_are_announced(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    window.bridge.events.connect(lambda _: seen.append(name_of(window.announcer.live)))
    window.composer.set_budget(16)
    send(qtbot, window, "Why is the sky blue?")
    wait_answer(qtbot, window)
    assert "Thinking…" in seen and seen[-1].startswith("Answer")
    assert last_answer(window).thinking.tokens > 0
    conversation = window.conversation_id
    assert conversation is not None
    window.store.set_delete(conversation, True)
    window.sidebar.deleted.emit(conversation)
    assert "Undo" in name_of(window.announcer.live)
    window.unload_model()
    send(qtbot, window, "Are you there?")
    qtbot.waitUntil(lambda: "Error" in name_of(window.announcer.live), timeout=30_000)
