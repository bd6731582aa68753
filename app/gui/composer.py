"""The composer: message input, reasoning toggle, budget slider, send and stop.

Signals:
    sendRequested(str)       the person sent a message (Enter, or the Send button)
    stopRequested()          Stop (the button or Esc)
    regenerateRequested()    a new answer to the last question
    cancelEditRequested()    leave editing an earlier question
"""

from __future__ import annotations

from app.gui.qt import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
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

#: Sampling presets from the model card: (name, temperature, top_p); None = the custom values.
PRESETS: tuple[tuple[str, float | None, float | None], ...] = (
    ("Reasoning (temperature 1.0, top-p 1.0)", 1.0, 1.0),
    ("Tool calling (temperature 0.6, top-p 0.95)", 0.6, 0.95),
    ("Custom", None, None),
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
    regenerateRequested = Signal()
    cancelEditRequested = Signal()

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
        self.preset = QComboBox(self)
        self.preset.setAccessibleName("Sampling preset")
        for name, _, _ in PRESETS:
            self.preset.addItem(name)
        self.temperature = QDoubleSpinBox(self)
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(1.0)
        self.temperature.setPrefix("temp ")
        self.top_p = QDoubleSpinBox(self)
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setValue(1.0)
        self.top_p.setPrefix("top-p ")
        self.editing = QLabel("Editing an earlier message: sending it starts a new branch.", self)
        self.cancel_edit = QPushButton("Cancel edit", self)
        self.regenerate = QPushButton("Regenerate", self)
        self.regenerate.setToolTip("Write a new answer to the last question (the old one is kept)")
        self.send = QPushButton("Send", self)
        self.stop = QPushButton("Stop", self)
        self.stop.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.stop.setToolTip("Stop the answer (Esc)")
        row = QHBoxLayout()
        controls: tuple[QWidget, ...] = (self.think, QLabel("Budget:", self), self.budget, self.budget_label,
                                         self.preset, self.temperature, self.top_p)
        for control in controls:
            row.addWidget(control)
        row.addStretch(1)
        for button in (self.regenerate, self.stop, self.send):
            row.addWidget(button)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.editing)
        edit_row.addWidget(self.cancel_edit)
        edit_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(edit_row)
        layout.addWidget(self.input)
        layout.addLayout(row)
        self.input.submitted.connect(self._send)
        self.send.clicked.connect(self._send)
        self.stop.clicked.connect(self.stopRequested)
        self.budget.valueChanged.connect(self._show_budget)
        self.think.toggled.connect(self.budget.setEnabled)
        self.regenerate.clicked.connect(self.regenerateRequested)
        self.cancel_edit.clicked.connect(self.cancelEditRequested)
        self.preset.currentIndexChanged.connect(self._show_preset)
        self._show_budget()
        self._show_preset()
        self.show_editing(False)
        self.set_busy(False)

    def sampling(self) -> tuple[float, float]:
        """(temperature, top_p) of the chosen preset."""
        _, temperature, top_p = PRESETS[self.preset.currentIndex()]
        if temperature is None or top_p is None:
            return self.temperature.value(), self.top_p.value()
        return temperature, top_p

    def show_editing(self, editing: bool) -> None:
        self.editing.setVisible(editing)
        self.cancel_edit.setVisible(editing)

    def _show_preset(self) -> None:
        custom = PRESETS[self.preset.currentIndex()][1] is None
        self.temperature.setVisible(custom)
        self.top_p.setVisible(custom)

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
        self.regenerate.setEnabled(not busy)
        self.stop.setEnabled(busy)

    def _show_budget(self) -> None:
        tokens = self.budget_tokens
        self.budget_label.setText("no limit" if tokens is None else f"{tokens} tokens")

    def _send(self) -> None:
        text = self.input.toPlainText().strip()
        if text and self.send.isEnabled():
            self.input.clear()
            self.sendRequested.emit(text)
