"""ElidedLabel: one line of text that ends in "…" where it does not fit, instead of widening the window.

A plain QLabel asks for its whole text's width as its minimum, so a long status line (the model's
name, place and speed) or announcement pushes the status bar, and with it the window, wider.
"""

from __future__ import annotations

from app.gui.qt import QLabel, QPainter, QSize, QSizePolicy, Qt, QWidget


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(self.alignment()), text)
