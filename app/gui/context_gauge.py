"""The context gauge: how much of the loaded context the conversation takes, and Drop old thinking.

The counts are the engine's (EngineClient.count_tokens: real tokens of the loaded model through its
chat template), asked for only while the engine is idle and a moment after typing stops; while an
answer streams, the current turn grows with the engine's own reasoning count, and its Usage at the
end. The bar shows three parts against the context: the history, the reasoning of earlier turns
(when it is kept) and the current turn (the question being typed or sent, and the answer).

Signals:
    countWanted()        typing paused (or something changed): ask the engine for a fresh count
    dropToggled(bool)    the person switched Drop old thinking for this conversation
"""

from __future__ import annotations

from app.gui.qt import QCheckBox, QColor, QHBoxLayout, QLabel, QPainter, QSizePolicy, QTimer, QWidget, Signal
from engine.api import ContextCount, EngineEvent, Error, ReasoningDelta, ReasoningProgress, Usage

#: How long typing must pause before the engine is asked again.
DEBOUNCE_MS = 350
#: The bar's colours: history, old reasoning, current turn.
COLOURS = ("#5b8def", "#e0a030", "#3cb371")
PART_NAMES = ("history", "old reasoning", "current turn")


class ContextBar(QWidget):
    """Three segments against the whole context."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.parts: tuple[int, int, int] = (0, 0, 0)
        self.n_ctx = 0
        self.setFixedSize(160, 10)
        self.setAccessibleName("Context used")

    def set_parts(self, parts: tuple[int, int, int], n_ctx: int) -> None:
        self.parts, self.n_ctx = parts, n_ctx
        self.update()

    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().mid().color())
        x = 0.0
        width = self.width()
        for tokens, colour in zip(self.parts, COLOURS, strict=True):
            share = width * tokens / self.n_ctx if self.n_ctx else 0.0
            share = min(share, width - x)
            if share > 0:
                painter.fillRect(int(x), 0, max(1, round(share)), self.height(), QColor(colour))
            x += share
        painter.end()


class ContextGauge(QWidget):
    countWanted = Signal()
    dropToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = ContextBar(self)
        self.label = QLabel("", self)
        self.label.setAccessibleName("Context")
        self.drop = QCheckBox("Drop old thinking", self)
        self.drop.setChecked(True)
        self.drop.setToolTip("Leave the reasoning of earlier turns out of what the model reads again "
                             "(kept in the chat); saved with this conversation")
        self.drop.hide()  # shown once a count says the template can drop it
        for shrinkable in (self.label, self.drop):  # a crowded row squeezes what may shrink: these may not
            shrinkable.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 12, 0)
        for widget in (self.bar, self.label, self.drop):
            layout.addWidget(widget)
        self.count: ContextCount | None = None
        self.live_reasoning = 0  # the streaming answer's reasoning tokens, as the engine counts them
        self.usage: Usage | None = None
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._want_count)
        self._shut = False
        self.drop.toggled.connect(self._on_drop)
        self._setting = False
        self.hide()  # until a model is counted

    # -- what comes in ---------------------------------------------------------------------------

    def schedule(self) -> None:
        """Ask for a count once typing (or whatever changed) has paused for DEBOUNCE_MS."""
        self._debounce.start()

    def set_drop(self, drop: bool) -> None:
        """The conversation's own setting (opening it), without telling anyone."""
        self._setting = True
        self.drop.setChecked(drop)
        self._setting = False

    def show_count(self, result: ContextCount | Error | Exception) -> None:
        if isinstance(result, ContextCount) and not result.known:
            self.count = None
            self.show()
            self.bar.hide()
            self.drop.hide()
            self.label.setText("Context: unknown")
            self.label.setToolTip(result.note)
            return
        if not isinstance(result, ContextCount):
            if isinstance(result, Error) and result.kind == "context":
                self.label.setText("Context: full")
                self.label.setToolTip(f"{result.message} {result.action}".strip())
            return  # no model, or a failed count: the last figures stay until the next one
        self.count, self.usage, self.live_reasoning = result, None, 0
        self.bar.show()
        self.drop.setVisible(result.can_drop_reasoning)
        self.show()
        self._render()

    def shut(self) -> None:
        """The window closes: no count is asked for any more (the store may be gone)."""
        self._shut = True
        self._debounce.stop()

    def _want_count(self) -> None:
        if not self._shut:
            self.countWanted.emit()

    def answer_started(self) -> None:
        self.usage, self.live_reasoning = None, 0

    def stream(self, events: list[EngineEvent]) -> None:
        """The streaming answer's own counts: the reasoning as it grows, the Usage at the end."""
        before = (self.live_reasoning, self.usage)
        for event in events:
            if isinstance(event, ReasoningDelta):
                self.live_reasoning = max(self.live_reasoning, event.reasoning_tokens)
            elif isinstance(event, ReasoningProgress):
                self.live_reasoning = max(self.live_reasoning, event.tokens)
            elif isinstance(event, Usage):
                self.usage = event
        if (self.live_reasoning, self.usage) != before and self.count is not None:
            self._render()

    # -- what it shows ---------------------------------------------------------------------------

    def parts(self) -> tuple[int, int, int]:
        """(history, old reasoning in the context, current turn) in tokens."""
        count = self.count
        if count is None:
            return 0, 0, 0
        old = count.old_reasoning if count.reasoning_kept else 0
        current = count.current_turn + self.live_reasoning
        if self.usage is not None:  # the engine's figures for the whole prompt and answer
            used = self.usage.prompt_tokens + self.usage.completion_tokens
            current = max(used - count.history - old, 0)
        return count.history, old, current

    @property
    def total(self) -> int:
        return sum(self.parts())

    def _render(self) -> None:
        count = self.count
        assert count is not None
        parts = self.parts()
        total = sum(parts)
        share = f" ({100 * total / count.n_ctx:.0f}%)" if count.n_ctx else ""
        self.label.setText(f"Context {total:,} / {count.n_ctx:,}{share}")
        self.label.setMinimumWidth(self.label.sizeHint().width())
        split = " · ".join(f"{name} {tokens:,}" for name, tokens in zip(PART_NAMES, parts, strict=True))
        self.label.setToolTip(f"Tokens of the loaded context in use: {split}")
        self.bar.set_parts(parts, count.n_ctx)
        self.bar.setAccessibleDescription(f"{total:,} of {count.n_ctx:,} tokens: {split}")
        frees = f" — frees {count.old_reasoning:,} tokens" if count.old_reasoning else ""
        self.drop.setText(f"Drop old thinking{frees}")
        self.drop.setMinimumWidth(self.drop.sizeHint().width())

    def _on_drop(self, checked: bool) -> None:
        if not self._setting:
            self.dropToggled.emit(checked)
