"""The thinking pane's steering parts: the live budget meter, the loop warning, and the offer shown
when the thinking took all the room for its answer.

Signals:
    LoopBanner.answerNowRequested(), LoopBanner.stopRequested()
    RoomOffer.answerFromThinkingRequested(), RoomOffer.thinkLongerRequested()
"""

from __future__ import annotations

from dataclasses import replace

from app.gui.qt import (
    QAccessible,
    QAccessibleValueChangeEvent,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
    Signal,
)
from engine.api import BudgetPhase, LoopSuspected, ReasoningProgress

#: The window-wide key for "Answer now" (also in the Reasoning menu and the button's tooltip).
ANSWER_NOW_KEY = "Ctrl+Shift+Return"
ANSWER_NOW_TIP = "End the thinking now: the model answers from what it has thought so far (Ctrl+Shift+Enter)"
LOOP_TEXT = "The model seems to be repeating itself"
ROOM_TEXT = "The thinking used all the room for this answer."


def meter_text(progress: ReasoningProgress) -> str:
    """What the meter says: tokens against the budget (or the answer's limit), the newline wait, the cut."""
    if progress.phase is BudgetPhase.WAITING_FOR_NEWLINE:
        grace = f" (grace {progress.grace_left:,} left)" if progress.grace_left is not None else ""
        return f"{progress.tokens:,} tokens · budget reached — ending at the next line{grace}"
    if progress.phase is BudgetPhase.CUT:
        return f"{progress.tokens:,} tokens · cut"
    if progress.budget is None:
        return f"{progress.tokens:,} / {progress.limit:,} tokens · no budget: up to the answer's limit"
    return f"{progress.tokens:,} / {progress.budget:,} tokens"


class BudgetMeter(QWidget):
    """A slim bar and a line of text from the engine's ReasoningProgress events."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar(self)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(5)
        self.bar.setMaximumWidth(220)
        self.bar.setAccessibleName("Reasoning budget used")
        self.label = QLabel(self)
        self.label.setStyleSheet("color: palette(placeholder-text);")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.label, 1)
        self.phase: BudgetPhase | None = None
        self._last: ReasoningProgress | None = None
        self.hide()  # until the first reading

    def follow(self, tokens: int) -> None:
        """The reasoning's own count moved on between readings: below the budget, show it (the
        header and the meter then say the same number)."""
        last = self._last
        if last is not None and last.phase is BudgetPhase.COUNTING and tokens > last.tokens:
            self.show_progress(replace(last, tokens=tokens))

    def show_progress(self, progress: ReasoningProgress) -> None:
        self.phase, self._last = progress.phase, progress
        if progress.phase is BudgetPhase.WAITING_FOR_NEWLINE and progress.grace_left is not None:
            scale = progress.tokens + progress.grace_left  # the hard cut
        else:
            scale = progress.budget if progress.budget is not None else progress.limit
        scale = max(scale, progress.tokens, 1)
        self.bar.setRange(0, scale)
        self.bar.setValue(scale if progress.phase is BudgetPhase.CUT else progress.tokens)
        text = meter_text(progress)
        self.label.setText(text)
        self.bar.setAccessibleDescription(text)
        self.setAccessibleName(f"Reasoning: {text}")
        if QAccessible.isActive():
            QAccessible.updateAccessibility(QAccessibleValueChangeEvent(self.bar, text))
        self.show()


class Banner(QFrame):
    """A framed line of text with buttons, inside the thinking pane."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setStyleSheet("QFrame#banner { border: 1px solid #d4a017; border-radius: 6px;"
                           " background: rgba(212, 160, 23, 0.12); }")
        self.label = QLabel(text, self)
        self.label.setWordWrap(True)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(8, 4, 8, 4)
        self.row.addWidget(self.label, 1)
        self.setAccessibleName(text)

    def button(self, text: str, tip: str) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tip)
        self.row.addWidget(button)
        return button


class LoopBanner(Banner):
    """Shown when the engine suspects a thinking loop (LoopSuspected, action warn)."""

    answerNowRequested = Signal()
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(LOOP_TEXT, parent)
        self.answer_now = self.button("Answer now", ANSWER_NOW_TIP)
        self.stop = self.button("Stop", "Stop the answer (Esc)")
        self.answer_now.clicked.connect(self.answerNowRequested)
        self.stop.clicked.connect(self.stopRequested)
        self.hide()

    def warn(self, event: LoopSuspected) -> None:
        sample = " ".join(event.repeated.split())[:160]
        self.label.setText(f"{LOOP_TEXT}.")
        self.label.setToolTip(f"It keeps writing: “{sample}” ({event.score:.0%} of the recent thinking repeats)")
        self.setAccessibleDescription(self.label.toolTip())
        self.show()


class RoomOffer(Banner):
    """Under an answer whose thinking took all its room: answer from that thinking, or think longer."""

    answerFromThinkingRequested = Signal()
    thinkLongerRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(ROOM_TEXT, parent)
        self.answer_from = self.button("Answer from this thinking",
                                       "Close the thinking as it is and let the model write its answer, "
                                       "with a fresh allowance of tokens")
        self.think_longer = self.button("Think longer",
                                        "Write a new answer with twice the room to think (the old one is kept)")
        self.answer_from.clicked.connect(self.answerFromThinkingRequested)
        self.think_longer.clicked.connect(self.thinkLongerRequested)
        self.hide()

