"""The composer: message input, reasoning toggle, budget slider, send and stop.

Signals:
    sendRequested(str)   the person sent a message (Enter, or the Send button)
    stopRequested()      Stop (the button or Esc)
"""

from __future__ import annotations

from app.gui.qt import (
    QCheckBox,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)

#: Slider positions: no limit, then 64 to 32768 tokens on half-octave (log) steps.
BUDGET_STEPS: tuple[int | None, ...] = (None, *(round(64 * 2 ** (k / 2)) for k in range(19)))


class MessageInput(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line."""

    submitted = Signal()

    def keyPressEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class Composer(QWidget):
    sendRequested = Signal(str)
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.input = MessageInput(self)
        self.input.setPlaceholderText("Message Nemotron… (Enter sends, Shift+Enter for a new line)")
        self.input.setAccessibleName("Message")
        self.input.setFixedHeight(80)
        self.think = QCheckBox("Think", self)
        self.think.setChecked(True)
        self.think.setToolTip("Let the model reason before it answers")
        self.budget = QSlider(Qt.Orientation.Horizontal, self)
        self.budget.setRange(0, len(BUDGET_STEPS) - 1)
        self.budget.setAccessibleName("Reasoning budget")
        self.budget.setMaximumWidth(220)
        self.budget_label = QLabel(self)
        self.send = QPushButton("Send", self)
        self.stop = QPushButton("Stop", self)
        self.stop.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.stop.setToolTip("Stop the answer (Esc)")
        row = QHBoxLayout()
        for widget in (self.think, QLabel("Budget:", self), self.budget, self.budget_label):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.stop)
        row.addWidget(self.send)
        layout = QVBoxLayout(self)
        layout.addWidget(self.input)
        layout.addLayout(row)
        self.input.submitted.connect(self._send)
        self.send.clicked.connect(self._send)
        self.stop.clicked.connect(self.stopRequested)
        self.budget.valueChanged.connect(self._show_budget)
        self.think.toggled.connect(self.budget.setEnabled)
        self._show_budget()
        self.set_busy(False)

    @property
    def budget_tokens(self) -> int | None:
        return BUDGET_STEPS[self.budget.value()]

    def set_budget(self, tokens: int | None) -> None:
        """Move the slider to the step nearest `tokens`."""
        if tokens is None:
            self.budget.setValue(0)
            return
        nearest = min(range(1, len(BUDGET_STEPS)), key=lambda i: abs((BUDGET_STEPS[i] or 0) - tokens))
        self.budget.setValue(nearest)

    def set_busy(self, busy: bool) -> None:
        self.send.setEnabled(not busy)
        self.stop.setEnabled(busy)

    def _show_budget(self) -> None:
        tokens = self.budget_tokens
        self.budget_label.setText("no limit" if tokens is None else f"{tokens} tokens")

    def _send(self) -> None:
        text = self.input.toPlainText().strip()
        if text and self.send.isEnabled():
            self.input.clear()
            self.sendRequested.emit(text)
