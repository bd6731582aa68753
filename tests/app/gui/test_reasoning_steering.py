"""Steering the reasoning in the window, on a real engine (tiny Nemotron-H GGUF in llama.cpp, in the
worker process): Answer now (button, menu item, key), the live budget meter, the loop warning and
its setting, and the two ways on when the thinking took all the room."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt

from app.gui.main_window import MainWindow
from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AssistantMessage
from app.gui.reasoning_menu import LOOP_SETTING, ReasoningMenu
from app.gui.steering import LOOP_TEXT, ROOM_TEXT
from engine.api import (
    BudgetPhase,
    ContentDelta,
    Finished,
    FinishReason,
    LoopSuspected,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
    ReasoningProgress,
)
from tests.app.gui.test_chat_window import last_answer, send, wait_answer

LOOP = LoopSuspected(reasoning_tokens=400, repeated="Let me check step 3 again: 2 + 2 = 4.", score=0.82,
                     action="warn")


def answers(win: MainWindow) -> list[AssistantMessage]:
    return win.chat.widget().findChildren(AssistantMessage)


def think_long(qtbot, window: MainWindow) -> AssistantMessage:  # type: ignore[no-untyped-def]
    """Start an answer whose reasoning has no limit but 1,500 tokens, and wait until it streams."""
    window.max_tokens = 1500
    window.composer.set_budget(None)
    send(qtbot, window, "Think long.")
    qtbot.waitUntil(lambda: last_answer(window).thinking.tokens > 5, timeout=30_000)
    return last_answer(window)


def answered(qtbot, window: MainWindow, answer: AssistantMessage) -> None:  # type: ignore[no-untyped-def]
    """Wait for the answer that follows the ended reasoning, then stop it (the tiny model's noise
    would run on to max tokens)."""
    qtbot.waitUntil(lambda: bool(answer.answer.text.strip()) or window.current is None, timeout=60_000)
    window.bridge.stop()
    wait_answer(qtbot, window)


def greedy(window: MainWindow) -> None:
    """Custom sampling at temperature 0: the tiny model writes the same text on every run."""
    window.composer.preset.setCurrentIndex(window.composer.preset.count() - 1)
    window.composer.temperature.setValue(0.0)


def test_answer_now_button_ends_the_reasoning_and_an_answer_follows(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    answer = think_long(qtbot, window)
    pane = answer.thinking
    assert pane.answer_now.isVisible() and pane.answer_now.isEnabled()
    assert "Ctrl+Shift+Enter" in pane.answer_now.toolTip()
    qtbot.waitUntil(lambda: window.reasoning_menu.answer_now.isEnabled(), timeout=10_000)
    qtbot.mouseClick(pane.answer_now, Qt.MouseButton.LeftButton)
    answered(qtbot, window, answer)
    assert pane.done and pane.ended_by == ReasoningEndCause.USER
    assert "ended by you" in pane.header.text()
    assert pane.tokens < 1000 and answer.answer.text.strip()  # ended early, and the model answered
    assert not pane.answer_now.isVisible() and not window.reasoning_menu.answer_now.isEnabled()
    assert window.history[-1].content and window.history[-1].reasoning == answer.reasoning
    assert window.store.path(window.conversation_id)[-1].figures["reasoning_ended_by"] == "user"


def test_answer_now_key_and_menu_item(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    menu = window.reasoning_menu
    assert menu.answer_now.shortcut().toString() == "Ctrl+Shift+Return"
    others = [a.shortcut() for m in window.menuBar().actions() if m.menu() is not menu
              for a in m.menu().actions() if not a.shortcut().isEmpty()]
    assert menu.answer_now.shortcut() not in others  # free of the window's other keys
    answer = think_long(qtbot, window)
    qtbot.waitUntil(lambda: menu.answer_now.isEnabled(), timeout=10_000)
    window.composer.input.setFocus()
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    answered(qtbot, window, answer)
    assert answer.thinking.ended_by == ReasoningEndCause.USER
    assert window.composer.input.toPlainText() == ""  # the key typed no new line


def test_meter_follows_the_real_reasoning(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.set_budget(64)
    window.max_tokens = 2000
    send(qtbot, window, "Why?")
    qtbot.waitUntil(lambda: last_answer(window).thinking.meter.isVisible(), timeout=30_000)
    meter = last_answer(window).thinking.meter
    assert "tokens" in meter.label.text() and meter.bar.maximum() > 0
    wait_answer(qtbot, window)
    pane = last_answer(window).thinking
    assert pane.ended_by == ReasoningEndCause.BUDGET
    assert meter.phase is BudgetPhase.WAITING_FOR_NEWLINE or meter.phase is BudgetPhase.COUNTING
    assert not meter.isVisible()  # folded with the trace ...
    pane.header.click()
    assert meter.isVisible() and meter.label.text()  # ... and back with it, at its last reading


def test_meter_shows_each_phase(qtbot) -> None:  # type: ignore[no-untyped-def]
    message = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(message)
    message.show()
    message.apply([ReasoningDelta("Let me see.\n", 1), ReasoningProgress(1, 1024, 3584, BudgetPhase.COUNTING)])
    meter = message.thinking.meter
    assert meter.isVisible() and meter.label.text() == "1 / 1,024 tokens"
    message.apply([ReasoningProgress(312, 1024, 3584, BudgetPhase.COUNTING)])
    assert meter.label.text() == "312 / 1,024 tokens" and (meter.bar.value(), meter.bar.maximum()) == (312, 1024)
    assert meter.bar.accessibleDescription() == "312 / 1,024 tokens" and "312" in meter.accessibleName()
    message.apply([ReasoningProgress(1036, 1024, 3584, BudgetPhase.WAITING_FOR_NEWLINE, grace_left=488)])
    assert meter.label.text() == "1,036 tokens · budget reached — ending at the next line (grace 488 left)"
    assert (meter.bar.value(), meter.bar.maximum()) == (1036, 1036 + 488)  # the scale is the hard cut
    message.apply([ReasoningProgress(1524, 1024, 3584, BudgetPhase.CUT)])
    assert meter.label.text() == "1,524 tokens · cut" and meter.bar.value() == meter.bar.maximum()
    assert "cut" in meter.bar.accessibleDescription()
    unlimited = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(unlimited)
    unlimited.apply([ReasoningDelta("Hm.", 1), ReasoningProgress(312, None, 3584, BudgetPhase.COUNTING)])
    assert unlimited.thinking.meter.label.text().startswith("312 / 3,584 tokens")
    assert unlimited.thinking.meter.bar.maximum() == 3584


def test_loop_banner_and_its_answer_now(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    answer = think_long(qtbot, window)
    banner = answer.thinking.loop_banner
    assert not banner.isVisible()
    window._on_events([LOOP])  # the engine's event, as the bridge hands it over mid-stream
    assert banner.isVisible() and banner.label.text().startswith(LOOP_TEXT)
    assert "step 3 again" in banner.label.toolTip()
    qtbot.mouseClick(banner.answer_now, Qt.MouseButton.LeftButton)
    answered(qtbot, window, answer)
    assert answer.thinking.ended_by == ReasoningEndCause.USER and not banner.isVisible()
    assert answer.answer.text.strip()


def test_loop_banner_stop(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    answer = think_long(qtbot, window)
    window._on_events([LOOP])
    qtbot.mouseClick(answer.thinking.loop_banner.stop, Qt.MouseButton.LeftButton)
    wait_answer(qtbot, window)
    assert answer.finish is FinishReason.CANCELLED and "stopped" in answer.footer.text()


def test_loop_ended_by_the_detector(qtbot) -> None:  # type: ignore[no-untyped-def]
    message = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(message)
    message.show()
    message.apply([ReasoningDelta("again and again", 400), LoopSuspected(400, "again", 0.9, "end")])
    assert not message.thinking.loop_banner.isVisible()  # nothing to choose: the engine ends it
    message.apply([ReasoningEnded(True, 402, ReasoningEndCause.LOOP), ContentDelta("An answer.")])
    assert "ended by the loop detector" in message.thinking.header.text()


def test_loop_detection_setting_is_kept_and_reaches_the_request(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    menu = window.reasoning_menu
    assert menu.loop_detection == "warn"  # the default
    texts = [a.text() for a in menu.loop_group.actions()]
    assert len(texts) == 3 and any("automatically" in t for t in texts)
    menu.loop_actions["end"].trigger()
    assert QSettings().value(LOOP_SETTING) == "end" and ReasoningMenu().loop_detection == "end"
    window.max_tokens = 8
    send(qtbot, window, "Hi")
    assert window.last_request is not None and window.last_request.loop_detection == "end"
    wait_answer(qtbot, window)
    menu.loop_actions["off"].trigger()
    send(qtbot, window, "Hi")
    assert window.last_request is not None and window.last_request.loop_detection == "off"
    wait_answer(qtbot, window)


def cramped(qtbot, window: MainWindow) -> AssistantMessage:  # type: ignore[no-untyped-def]
    """An answer with 40 tokens: the reasoning takes them all but the answer's 10, which run out."""
    greedy(window)
    window.composer.set_budget(None)
    window.max_tokens = 40
    send(qtbot, window, "Why is the sky blue?")
    wait_answer(qtbot, window)
    answer = last_answer(window)
    assert answer.finish is FinishReason.LENGTH and answer.thinking.ended_by == ReasoningEndCause.ANSWER_ROOM
    return answer


def test_answer_from_this_thinking(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    answer = cramped(qtbot, window)
    offer = answer.room_offer
    assert offer.isVisible() and offer.label.text() == ROOM_TEXT
    before = answer.answer.text.strip()
    count = len(answers(window))
    qtbot.mouseClick(offer.answer_from, Qt.MouseButton.LeftButton)
    assert not offer.isVisible()
    request = window.last_request
    assert request is not None and request.continue_final_message
    assert request.messages[-1].reasoning == answer.reasoning and request.sampling.max_tokens == 40
    wait_answer(qtbot, window)
    assert len(answers(window)) == count and last_answer(window) is answer  # the same turn went on
    assert answer.answer.text.startswith(before) and len(answer.answer.text.strip()) > len(before)
    saved = window.store.path(window.conversation_id)[-1]
    assert saved.content == answer.answer.text.strip() and saved.figures["answered_from_thinking"]
    assert "ended to leave room" in answer.thinking.header.text()  # the thinking is the one it had


def test_think_longer(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    answer = cramped(qtbot, window)
    assert answer.room_offer.think_longer.isEnabled()
    qtbot.mouseClick(answer.room_offer.think_longer, Qt.MouseButton.LeftButton)
    request = window.last_request
    assert request is not None and request.sampling.max_tokens == 80 and not request.continue_final_message
    wait_answer(qtbot, window)
    shown = window.controller.branch()
    assert len(shown) == 2 and len(shown[-1].versions) == 2  # a new version beside the cramped one
    assert last_answer(window) is not answer and last_answer(window).thinking.tokens > answer.thinking.tokens


def test_no_offer_after_a_whole_answer(qtbot) -> None:  # type: ignore[no-untyped-def]
    message = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(message)
    message.apply([ReasoningDelta("Short.", 2), ReasoningEnded(False, 2), ContentDelta("Blue."),
                   Finished(FinishReason.STOP)])
    assert not message.took_all_the_room
    inside = AssistantMessage(MarkdownRenderer())
    qtbot.addWidget(inside)
    inside.show()
    inside.apply([ReasoningDelta("Still thinking", 40), Finished(FinishReason.LENGTH)])
    assert inside.took_all_the_room  # the length limit came inside the reasoning


def test_the_offer_comes_back_with_the_saved_answer(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    cramped(qtbot, window)
    conversation = window.conversation_id
    assert conversation is not None
    window.new_chat()
    window.open_conversation(conversation)
    restored = last_answer(window)
    qtbot.waitUntil(restored.room_offer.isVisible, timeout=5_000)  # (the new column shows)
    assert restored.reasoning
    before = restored.answer.text.strip()
    qtbot.mouseClick(restored.room_offer.answer_from, Qt.MouseButton.LeftButton)
    wait_answer(qtbot, window)
    assert last_answer(window) is restored and len(restored.answer.text.strip()) > len(before)
    assert window.store.path(conversation)[-1].content == restored.answer.text.strip()
