"""SystemPromptDialog: the conversation's instructions, confirmed from the keyboard with Ctrl+Enter
(Enter starts a new line, as in any multi-line box; Esc cancels)."""

from __future__ import annotations

from app.gui.qt import QDialog, QDialogButtonBox, QKeySequence, QLabel, QPlainTextEdit, QShortcut, QVBoxLayout, QWidget


class SystemPromptDialog(QDialog):
    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("System prompt")
        label = QLabel("&Instructions for this conversation (Ctrl+Enter saves):", self)
        self.edit = QPlainTextEdit(text, self)
        self.edit.setTabChangesFocus(True)
        label.setBuddy(self.edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setToolTip("Save (Ctrl+Enter)")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.edit)
        layout.addWidget(buttons)
        self.edit.setFocus()

    def text(self) -> str:
        return self.edit.toPlainText()
