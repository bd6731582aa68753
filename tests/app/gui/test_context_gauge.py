"""The context gauge and Drop old thinking, in the window on a real engine (the tiny Nemotron-H GGUF
in llama.cpp, in the worker process): the counts are the engine's, split three ways against the
loaded context; the toggle reaches the request and stays with its conversation."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.gui.main_window import MainWindow
from app.gui.messages import AssistantMessage
from engine.api import ContextCount


def send(qtbot, win: MainWindow, text: str) -> None:  # type: ignore[no-untyped-def]
    win.composer.input.setPlainText(text)
    qtbot.keyClick(win.composer.input, Qt.Key.Key_Return)


def turn(qtbot, win: MainWindow, text: str) -> None:  # type: ignore[no-untyped-def]
    """One answer, and the fresh count the window asks for once the engine is idle again."""
    before = win.gauge.count
    send(qtbot, win, text)
    qtbot.waitUntil(lambda: win.current is None and not win.bridge.busy, timeout=60_000)
    qtbot.waitUntil(lambda: win.gauge.count is not before and win.gauge.usage is None, timeout=10_000)


def direct_count(win: MainWindow, draft: str = "") -> ContextCount:
    result = win.bridge.client.count_tokens(win.controller.request(win.settings(), draft=draft))
    assert isinstance(result, ContextCount)
    return result


def test_the_gauge_counts_after_load_and_after_a_turn(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: window.gauge.count is not None, timeout=10_000)
    empty = window.gauge.count
    assert empty is not None and empty.n_ctx == 4096 and empty.history == 0
    window.composer.set_budget(64)
    seen: list[int] = []
    window.bridge.events.connect(lambda _: seen.append(window.gauge.total))
    turn(qtbot, window, "Why is the sky blue?")
    count = window.gauge.count
    assert count is not None and count == direct_count(window)  # what the engine says for this conversation
    assert count.history > empty.history and count.old_reasoning > 0  # the answer's reasoning is old now
    history, old, current = window.gauge.parts()
    assert history + old + current == window.gauge.total == count.total
    assert window.gauge.label.text().endswith(f"{count.total:,} / 4,096 ({100 * count.total / 4096:.0f}%)")
    assert max(seen) >= empty.total + 64  # it grew with the engine's counts (the reasoning) while streaming
    assert window.gauge.bar.parts == (history, old, current) and window.gauge.bar.n_ctx == 4096


def test_typing_updates_the_current_turn(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: window.gauge.count is not None, timeout=10_000)
    first = window.gauge.count
    with qtbot.waitSignal(window.bridge.counted, timeout=10_000):
        window.composer.input.setPlainText("A much longer question about the colour of the sky at dusk " * 4)
    count = window.gauge.count
    assert count is not None and first is not None and count.current_turn > first.current_turn + 20
    assert count == direct_count(window, window.composer.input.toPlainText())


def test_drop_old_thinking_reaches_the_request_and_stays_with_the_conversation(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.set_budget(64)
    turn(qtbot, window, "Why is the sky blue?")
    count = window.gauge.count
    assert count is not None and not count.reasoning_kept and window.gauge.drop.isChecked()
    assert window.gauge.drop.isVisible()
    assert window.gauge.drop.text() == f"Drop old thinking — frees {count.old_reasoning:,} tokens"
    assert window.last_request is not None
    assert window.last_request.chat_template_kwargs == {"truncate_history_thinking": True}
    dropped_total = window.gauge.total
    with qtbot.waitSignal(window.bridge.counted, timeout=10_000):
        window.gauge.drop.click()  # keep the old thinking
    kept = window.gauge.count
    assert kept is not None and kept.reasoning_kept
    assert window.gauge.total == dropped_total + kept.old_reasoning
    assert window.gauge.parts()[1] == kept.old_reasoning
    first = window.conversation_id
    assert first is not None and not window.store.get(first).drop_thinking
    turn(qtbot, window, "And at sunset?")
    assert window.last_request.chat_template_kwargs == {"truncate_history_thinking": False}
    assert any(m.reasoning for m in window.last_request.messages)
    window.new_chat()
    assert window.gauge.drop.isChecked()  # a new conversation starts with the template's default
    turn(qtbot, window, "Something else")
    assert window.last_request.chat_template_kwargs == {"truncate_history_thinking": True}
    window.open_conversation(first)
    assert not window.gauge.drop.isChecked()


def test_thought_for_survives_reopening(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.composer.set_budget(64)
    turn(qtbot, window, "Why is the sky blue?")
    live = window.chat.widget().findChildren(AssistantMessage)[-1].thinking
    tokens = live.tokens
    assert "Thought for" in live.header.text() and f"· {tokens} tokens" in live.header.text() and tokens >= 64
    first = window.conversation_id
    assert first is not None
    figures = window.store.path(first)[-1].figures
    assert figures["reasoning_tokens"] == tokens  # the engine's count is what is kept
    window.new_chat()
    window.open_conversation(first)
    shown = window.chat.widget().findChildren(AssistantMessage)[-1].thinking
    assert shown.tokens == tokens
    assert shown.header.text().startswith(f"▸ Thought for {figures['thinking_s']:.0f} s · {tokens} tokens")


def test_a_burst_of_typing_asks_for_one_count(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.gui.context_gauge import ContextGauge

    gauge = ContextGauge()
    qtbot.addWidget(gauge)
    wanted: list[None] = []
    gauge.countWanted.connect(lambda: wanted.append(None))
    for _ in range(5):  # keystrokes with no pause between them
        gauge.schedule()
    assert not wanted  # nothing while typing goes on
    qtbot.waitUntil(lambda: bool(wanted), timeout=5_000)
    qtbot.wait(3 * 350)
    assert len(wanted) == 1
    gauge.shut()
    gauge.schedule()
    qtbot.wait(3 * 350)
    assert len(wanted) == 1  # a closed window asks for nothing


def test_live_counts_and_a_full_context(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.gui.context_gauge import ContextGauge
    from engine.api import BudgetPhase, Error, ReasoningDelta, ReasoningProgress, Usage

    gauge = ContextGauge()
    qtbot.addWidget(gauge)
    gauge.show_count(ContextCount(1000, history=300, old_reasoning=200, current_turn=20, reasoning_kept=True,
                                  can_drop_reasoning=True))
    assert gauge.parts() == (300, 200, 20) and gauge.label.text() == "Context 520 / 1,000 (52%)"
    gauge.answer_started()
    gauge.stream([ReasoningDelta("a", 5), ReasoningProgress(40, None, 900, BudgetPhase.COUNTING)])
    assert gauge.parts() == (300, 200, 60)
    gauge.stream([Usage(520, 0, 50, 30, 0.1, 1.0, 1.0)])  # the engine's own figures at the end
    assert gauge.total == 600 and gauge.parts()[2] == 100
    gauge.show_count(Error("The conversation is 1,200 tokens long.", "Start a new one.", "context"))
    assert gauge.label.text() == "Context: full" and "Start a new one" in gauge.label.toolTip()
