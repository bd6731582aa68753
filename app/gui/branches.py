"""The row under a message: switch between its alternatives (regenerated answers, edited questions),
and edit a question.

Signals (MessageTools):
    switchTo(int message_id)   show the branch through this alternative
    editRequested(int message_id)
"""

from __future__ import annotations

from app.gui.qt import QHBoxLayout, QLabel, QToolButton, QWidget, Signal


class MessageTools(QWidget):
    switchTo = Signal(int)
    editRequested = Signal(int)

    def __init__(self, message_id: int, siblings: list[int], editable: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_id = message_id
        self.siblings = siblings
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        index = siblings.index(message_id) if message_id in siblings else 0
        if len(siblings) > 1:
            back, forward = QToolButton(self), QToolButton(self)
            back.setText("‹")
            forward.setText("›")
            back.setAccessibleName("Previous version")
            forward.setAccessibleName("Next version")
            back.setEnabled(index > 0)
            forward.setEnabled(index < len(siblings) - 1)
            back.clicked.connect(lambda: self.switchTo.emit(siblings[index - 1]))
            forward.clicked.connect(lambda: self.switchTo.emit(siblings[index + 1]))
            self.position = QLabel(f"{index + 1}/{len(siblings)}", self)
            for widget in (back, self.position, forward):
                row.addWidget(widget)
        if editable:
            edit = QToolButton(self)
            edit.setText("Edit")
            edit.setAccessibleName("Edit this message and send it again")
            edit.clicked.connect(lambda: self.editRequested.emit(message_id))
            row.addWidget(edit)
        row.addStretch(1)
