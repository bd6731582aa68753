"""ChatView: the messages of one conversation in a scrolling column."""

from __future__ import annotations

from app.gui.qt import QScrollArea, QVBoxLayout, QWidget


class ChatView(QScrollArea):
    """The messages of one conversation in a column; follows the newest text while at the bottom."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(lambda v: setattr(self, "_follow", v >= bar.maximum() - 24))
        bar.rangeChanged.connect(lambda lo, hi: bar.setValue(hi) if self._follow else None)
        self.clear()

    def clear(self) -> None:
        column = QWidget(self)
        self._layout = QVBoxLayout(column)
        self._layout.addStretch(1)
        self.setWidget(column)  # the old column and its messages are deleted with it
        self._follow = True

    def add(self, widget: QWidget) -> None:
        self._layout.insertWidget(self._layout.count() - 1, widget)
