"""ChatView: the messages of one conversation in a scrolling column."""

from __future__ import annotations

from app.gui.qt import QLabel, QScrollArea, Qt, QTimer, QVBoxLayout, QWidget
from engine.api import ModelInfo

# The widest the column of messages gets: lines of ~100 characters, not 1,100 px of text.
READING_WIDTH = 860

EMPTY_HINT = ("Ask anything: type below and press Enter (Shift+Enter for a new line).\n"
              "With Think on, the model reasons first; the budget limits how long.")
DEMO_HINT = ("This is the small demo model: fine for a try, not for facts, and it cannot reason.\n"
             "Model ▸ Download a model… gets Nemotron. Type below and press Enter.")


def empty_hint(info: ModelInfo | None) -> str:
    """What an empty chat says, for the loaded model."""
    return DEMO_HINT if info is not None and info.is_demo else EMPTY_HINT


class ChatView(QScrollArea):
    """The messages of one conversation in a column, at most READING_WIDTH wide and centred;
    follows the newest text while at the bottom.

    `clear(keep=…)` shows new messages at the old reading position (switching a version must not jump
    to the bottom); `follow_bottom()` brings the end into view (a question just sent, however far up
    the person had scrolled).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self._follow = True  # the person is at the bottom: keep them there as text arrives
        self._following = False  # our own scroll is under way: its value changes say nothing
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_value)
        # Layouts settle over several passes: scroll once they have, not in the middle of one.
        self._to_bottom = QTimer(self)
        self._to_bottom.setSingleShot(True)
        self._to_bottom.setInterval(0)
        self._to_bottom.timeout.connect(self._scroll_to_bottom)
        bar.rangeChanged.connect(self._on_range)
        self._hold: int | None = None  # a reading position to keep while the new column settles
        self._hint_text = EMPTY_HINT
        self.clear()

    def set_hint(self, text: str) -> None:
        """The short text an empty chat shows (it goes with the first message)."""
        self._hint_text = text
        self.hint.setText(text)

    def _on_range(self, lo: int, hi: int) -> None:
        if self._hold is not None:
            self._set_value(min(self._hold, hi))  # the column grows as it settles: back to the position
        elif self._follow:
            self._to_bottom.start()

    def _on_value(self, value: int) -> None:
        if self._following:
            return
        bar = self.verticalScrollBar()
        if self._hold is not None:
            if bar.maximum() < self._hold or value == self._hold:
                return  # clamped while the column is still shorter than the position: not the person
            self._hold = None  # the person scrolled: from here on, theirs
        self._follow = value >= bar.maximum() - 24
        if not self._follow:
            self._to_bottom.stop()  # the person scrolled away: a pending follow must not pull them back

    def _set_value(self, value: int) -> None:
        self._following = True
        self.verticalScrollBar().setValue(value)
        self._following = False

    def follow_bottom(self) -> None:
        """Bring the end into view now and keep following it."""
        self._hold = None
        self._follow = True
        self._to_bottom.start()

    def _scroll_to_bottom(self) -> None:
        if not self._follow:
            return
        self._set_value(self.verticalScrollBar().maximum())

    def clear(self, keep: int | None = None) -> None:
        """An empty column; with `keep`, what comes next shows at that scroll position, not the bottom."""
        column = QWidget(self)
        column.setMaximumWidth(READING_WIDTH)
        self._layout = QVBoxLayout(column)
        self.hint = QLabel(self._hint_text, column)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: palette(placeholder-text); padding: 24px;")
        self._layout.addWidget(self.hint)
        self._layout.addStretch(1)
        self._following = True  # setWidget moves the bar itself: not the person
        self.setWidget(column)  # the old column and its messages are deleted with it
        self._following = False
        self._hold = keep
        self._follow = keep is None
        self._on_range(0, self.verticalScrollBar().maximum())

    def add(self, widget: QWidget) -> None:
        self.hint.hide()
        self._layout.insertWidget(self._layout.count() - 1, widget)
