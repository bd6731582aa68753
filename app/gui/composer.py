"""The composer: message input, reasoning toggle, budget slider, send and stop.

The limits follow the loaded model (`follow_model`): max tokens is its context, and the budget
slider's steps stop below the context less the room the engine keeps for the answer, so no two
positions behave alike. A model that cannot reason gets Think off and greyed, with the reason.

Signals:
    sendRequested(str)       the person sent a message (Enter, or the Send button)
    stopRequested()          Stop (the button or Esc)
    regenerateRequested()    a new answer to the last question
    cancelEditRequested()    leave editing an earlier question
    editLastRequested()      Up in an empty message box: edit the last question

Keyboard: Tab and Shift+Tab move the focus out of the message box (to Think, the budget, the preset,
Send), as in every form; a literal tab, rarely wanted in a chat message, is Ctrl+Tab.
"""

from __future__ import annotations

from itertools import pairwise

from app.gui.qt import (
    QAccessible,
    QAccessibleValueChangeEvent,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from engine.api import ModelInfo

Preset = tuple[str, float | None, float | None]


class ElidingComboBox(QComboBox):
    """A combo box as wide as a short name that shows a longer one cut with "…" (the list and the
    tooltip show it whole), instead of clipping it mid-word."""

    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        text_rect = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                                QStyle.SubControl.SC_ComboBoxEditField, self)
        option.currentText = self.fontMetrics().elidedText(option.currentText, Qt.TextElideMode.ElideRight,
                                                           text_rect.width())
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)

#: Sampling presets from the model card: (name, temperature, top_p); None = the custom values.
PRESETS: tuple[Preset, ...] = (
    ("Reasoning (temperature 1.0, top-p 1.0)", 1.0, 1.0),
    ("Tool calling (temperature 0.6, top-p 0.95)", 0.6, 0.95),
    ("Custom", None, None),
)
#: For a model that cannot reason and declares no defaults (the demo): temperature 1.0 makes a
#: small model ramble, so a low one (SmolLM2's own card uses 0.2 and top-p 0.9).
PLAIN_MODEL_SAMPLING = (0.2, 0.9)

#: The context before a model is loaded, and of a server that does not say its own.
DEFAULT_CONTEXT = 8192
#: The engine's answer reserve at most (engine/generate/text/budget.py): a budget that leaves less
#: than this of the context behaves like no limit.
ANSWER_ROOM = 512
NO_THINKING_TIP = "{name} cannot reason (its chat template has no thinking switch): it answers directly."


def budget_steps(context: int) -> tuple[int | None, ...]:
    """Slider positions: no limit, then 64 tokens and up on half-octave (log) steps, below what the
    context leaves once the answer's room is kept."""
    ceiling = context - min(ANSWER_ROOM, context // 4)
    steps = []
    k = 0
    while (tokens := round(64 * 2 ** (k / 2))) < ceiling:
        steps.append(tokens)
        k += 1
    return (None, *steps)


#: The steps for the default context (before a model is loaded).
BUDGET_STEPS: tuple[int | None, ...] = budget_steps(DEFAULT_CONTEXT)


THINK_TIP = "Let the model reason before it answers"


class MessageInput(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line; Tab moves the focus on, Ctrl+Tab types a tab; Up in
    an empty box asks to edit the last question."""

    submitted = Signal()
    editLastRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)

    def keyPressEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        key, mods = event.key(), event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not mods & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        if key == Qt.Key.Key_Tab and mods & Qt.KeyboardModifier.ControlModifier:
            self.insertPlainText("\t")
            return
        if key == Qt.Key.Key_Up and not mods and not self.toPlainText():
            self.editLastRequested.emit()
            return
        super().keyPressEvent(event)


class Composer(QWidget):
    sendRequested = Signal(str)
    stopRequested = Signal()
    regenerateRequested = Signal()
    cancelEditRequested = Signal()
    editLastRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.input = MessageInput(self)
        self.input.setPlaceholderText("Message Nemotron… (Enter sends, Shift+Enter for a new line)")
        self.input.setAccessibleName("Message")
        self.input.setFixedHeight(80)
        self.think = QCheckBox("Think", self)
        self.think.setChecked(True)
        self.think.setToolTip(THINK_TIP)
        self.thinking_available = True
        self._think_wanted = True  # the person's choice, kept while a model that cannot reason is loaded
        self.context = DEFAULT_CONTEXT
        self.cap_tokens: int | None = None  # a lower limit than the context, where one is set
        self.steps = BUDGET_STEPS
        self.budget = QSlider(Qt.Orientation.Horizontal, self)
        self.budget.setRange(0, len(self.steps) - 1)
        self.budget.setAccessibleName("Reasoning budget")
        self.budget.setMinimumWidth(96)  # never a nub that reads as a checkbox
        self.budget.setMaximumWidth(220)
        self.budget_caption = QLabel("&Budget:", self)
        self.budget_caption.setBuddy(self.budget)
        self.budget_label = QLabel(self)
        self.preset = ElidingComboBox(self)
        self.preset.currentTextChanged.connect(self.preset.setToolTip)
        self.preset.setAccessibleName("Sampling preset")
        # As wide as a short name, not the longest one (the list shows them whole): a model's own,
        # longer preset must not widen the window.
        self.preset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset.setMinimumContentsLength(10)
        self.presets: list[Preset] = list(PRESETS)
        for name, _, _ in self.presets:
            self.preset.addItem(name)
        self.temperature = QDoubleSpinBox(self)
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(1.0)
        self.temperature.setAccessibleName("Temperature")
        self.temperature.setToolTip("Temperature: higher is more varied, lower more focused")
        self.temperature_label = QLabel("&Temperature", self)
        self.temperature_label.setBuddy(self.temperature)
        self.top_p = QDoubleSpinBox(self)
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setValue(1.0)
        self.top_p.setAccessibleName("Top-p")
        self.top_p.setToolTip("Top-p: sample only from the most likely tokens that add up to this share")
        self.top_p_label = QLabel("Top-&p", self)
        self.top_p_label.setBuddy(self.top_p)
        self.editing = QLabel("Editing an earlier message: sending it starts a new branch.", self)
        self.cancel_edit = QPushButton("Cancel edit", self)
        self.regenerate = QPushButton("Regenerate", self)
        self.regenerate.setToolTip("Write a new answer to the last question (the old one is kept)")
        self.send = QPushButton("Send", self)
        self.stop = QPushButton("Stop", self)
        self.stop.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.stop.setToolTip("Stop the answer (Esc)")
        self._layout()
        self.input.submitted.connect(self._send)
        self.input.editLastRequested.connect(self.editLastRequested)
        self._tab_order()
        self.send.clicked.connect(self._send)
        self.stop.clicked.connect(self.stopRequested)
        self.budget.valueChanged.connect(self._show_budget)
        self.think.toggled.connect(self._on_think)
        self.regenerate.clicked.connect(self.regenerateRequested)
        self.cancel_edit.clicked.connect(self.cancelEditRequested)
        self.preset.currentIndexChanged.connect(self._show_preset)
        self._show_budget()
        self._show_preset()
        self.show_editing(False)
        self.set_busy(False)

    def _layout(self) -> None:
        """The buttons beside the message box, the reasoning and sampling controls under it, and the
        custom temperature and top-p on a row of their own: narrow enough for half a laptop screen."""
        buttons = QVBoxLayout()
        for button in (self.send, self.stop, self.regenerate):
            buttons.addWidget(button)
        buttons.addStretch(1)
        message = QHBoxLayout()
        message.addWidget(self.input, 1)
        message.addLayout(buttons)
        rows = []
        for widgets in ((self.think, self.budget_caption, self.budget, self.budget_label, self.preset),
                        (self.temperature_label, self.temperature, self.top_p_label, self.top_p),
                        (self.editing, self.cancel_edit)):
            row = QHBoxLayout()
            for widget in widgets:
                row.addWidget(widget)
            row.addStretch(1)
            rows.append(row)
        self.editing.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(rows[2])
        layout.addLayout(message)
        layout.addLayout(rows[0])
        layout.addLayout(rows[1])

    def _tab_order(self) -> None:
        """From the message box: Think, the budget, the sampling, then Send, Stop, Regenerate."""
        chain = (self.input, self.think, self.budget, self.preset, self.temperature, self.top_p, self.send,
                 self.stop, self.regenerate, self.cancel_edit)
        for first, second in pairwise(chain):
            QWidget.setTabOrder(first, second)

    # -- the loaded model ------------------------------------------------------------------------

    def follow_model(self, info: ModelInfo) -> None:
        """A model was loaded: its context sets the limits; whether it can reason sets Think; its own
        sampling defaults (or, for a small plain model, a low temperature) become the first preset."""
        self.set_context(info.n_ctx or DEFAULT_CONTEXT)
        self.set_thinking_available(info.has_thinking, NO_THINKING_TIP.format(name=info.name))
        self._model_preset(info)

    @property
    def max_tokens(self) -> int:
        """The answer's limit, reasoning included: the loaded context (or the cap, where lower)."""
        return min(self.context, self.cap_tokens) if self.cap_tokens else self.context

    def set_context(self, context: int) -> None:
        tokens = self.budget_tokens
        self.context = context
        self.steps = budget_steps(context)
        self.budget.blockSignals(True)  # one valueChanged below, for the step nearest the old one
        self.budget.setRange(0, len(self.steps) - 1)
        self.budget.blockSignals(False)
        self.set_budget(tokens)
        self._show_budget()

    def set_thinking_available(self, available: bool, why: str = "") -> None:
        """Think off and greyed (with `why` as its tooltip) for a model that cannot reason; the
        person's choice comes back with a model that can."""
        self.thinking_available = available
        self.think.setEnabled(available)
        self.think.setToolTip(THINK_TIP if available else why)
        self.think.blockSignals(True)  # what the conversation stores stays the person's choice
        self.think.setChecked(self._think_wanted and available)
        self.think.blockSignals(False)
        self._enable_budget()

    def _on_think(self, checked: bool) -> None:
        self._think_wanted = checked
        if checked and not self.thinking_available:
            # A stored conversation asked for thinking: it keeps asking (its settings are saved from
            # this signal), the box shows what this model does, once the signal is through.
            QTimer.singleShot(0, lambda: self.set_thinking_available(self.thinking_available))
        self._enable_budget()

    def _enable_budget(self) -> None:
        on = self.think.isChecked() and self.thinking_available
        self.budget.setEnabled(on)
        self.budget_label.setEnabled(on)

    def _model_preset(self, info: ModelInfo) -> None:
        custom = self.presets[self.preset.currentIndex()]
        if self.presets[0] not in PRESETS:  # the last model's own entry
            self.presets.pop(0)
            self.preset.removeItem(0)
        own = self._own_sampling(info)
        if own is not None:
            temperature, top_p = own
            self.presets.insert(0, (f"This model (temperature {temperature:g}, top-p {top_p:g})", temperature, top_p))
            self.preset.insertItem(0, self.presets[0][0])
            self.preset.setCurrentIndex(0)
        elif custom not in self.presets:
            self.preset.setCurrentIndex(0)
        self._show_preset()

    @staticmethod
    def _own_sampling(info: ModelInfo) -> tuple[float, float] | None:
        """None for Nemotron (the model card's presets); else what the model declares, or a low
        temperature for a plain model that declares nothing."""
        if info.architecture.startswith("nemotron") or info.backend == "remote":
            return None
        if info.default_temperature is not None:
            return info.default_temperature, info.default_top_p if info.default_top_p is not None else 1.0
        return None if info.has_thinking else PLAIN_MODEL_SAMPLING

    # -- the request -----------------------------------------------------------------------------

    @property
    def thinking(self) -> bool:
        return self.think.isChecked() and self.thinking_available

    def sampling(self) -> tuple[float, float]:
        """(temperature, top_p) of the chosen preset."""
        _, temperature, top_p = self.presets[self.preset.currentIndex()]
        if temperature is None or top_p is None:
            return self.temperature.value(), self.top_p.value()
        return temperature, top_p

    def show_editing(self, editing: bool) -> None:
        self.editing.setVisible(editing)
        self.cancel_edit.setVisible(editing)

    def _show_preset(self) -> None:
        custom = self.presets[self.preset.currentIndex()][1] is None
        for widget in (self.temperature_label, self.temperature, self.top_p_label, self.top_p):
            widget.setVisible(custom)

    @property
    def budget_tokens(self) -> int | None:
        return self.steps[min(self.budget.value(), len(self.steps) - 1)]

    def set_budget(self, tokens: int | None) -> None:
        """Move the slider to the step nearest `tokens`."""
        if tokens is None or len(self.steps) == 1:
            self.budget.setValue(0)
            return
        nearest = min(range(1, len(self.steps)), key=lambda i: abs((self.steps[i] or 0) - tokens))
        self.budget.setValue(nearest)

    def set_busy(self, busy: bool) -> None:
        self.send.setEnabled(not busy)
        self.regenerate.setEnabled(not busy)
        self.stop.setEnabled(busy)

    def _show_budget(self) -> None:
        """The budget in tokens on the label, in the tooltip and for a screen reader (whose value
        would otherwise be the slider's position)."""
        tokens = self.budget_tokens
        text = "no limit" if tokens is None else f"{tokens} tokens"
        self.budget_label.setText(text)
        largest = self.steps[-1]
        metrics = self.budget_label.fontMetrics()  # as wide as its widest text: the slider never jumps
        self.budget_label.setMinimumWidth(max(metrics.horizontalAdvance(t) for t in ("no limit", f"{largest} tokens")))
        span = f"64 to {largest} tokens, or no limit" if largest is not None else "no limit"
        tip = (f"Reasoning budget: {text} ({span}). The context holds {self.context} tokens; an answer, "
               f"reasoning included, may use up to {self.max_tokens}.")
        self.budget.setToolTip(tip)
        self.budget.setAccessibleDescription(tip)
        self.budget.setAccessibleName(f"Reasoning budget: {text}")
        if QAccessible.isActive():
            QAccessible.updateAccessibility(QAccessibleValueChangeEvent(self.budget, text))

    def _send(self) -> None:
        text = self.input.toPlainText().strip()
        if text and self.send.isEnabled():
            self.input.clear()
            self.sendRequested.emit(text)
