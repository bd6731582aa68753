"""The conversation list: newest first, searchable, rename in place, delete with undo.

Signals (Sidebar):
    conversationChosen(int)   the person picked a conversation
    newRequested()            "New chat"
    deleted(int)              a conversation was deleted (the window offers Undo)
"""

from __future__ import annotations

from typing import Any

from app.gui.qt import (
    QAbstractListModel,
    QLineEdit,
    QListView,
    QMenu,
    QModelIndex,
    QPersistentModelIndex,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.store import ChatStore, Conversation

Index = QModelIndex | QPersistentModelIndex


class ConversationModel(QAbstractListModel):
    IdRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._search = ""
        self._rows: list[Conversation] = store.conversations()

    def refresh(self, search: str | None = None) -> None:
        if search is not None:
            self._search = search
        self.beginResetModel()
        self._rows = self._store.conversations(self._search)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's own default)
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return row.title
        if role == self.IdRole:
            return row.id
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsEditable if index.isValid() and not self._store.read_only else base

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not str(value).strip():
            return False
        self._store.rename(self._rows[index.row()].id, str(value))
        self._rows[index.row()] = self._store.get(self._rows[index.row()].id)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole])
        return True

    def row_of(self, conversation_id: int) -> int:
        return next((i for i, c in enumerate(self._rows) if c.id == conversation_id), -1)


class Sidebar(QWidget):
    conversationChosen = Signal(int)
    newRequested = Signal()
    deleted = Signal(int)

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.new = QPushButton("New chat", self)
        self.new.setShortcut("Ctrl+N")
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search chats")
        self.model = ConversationModel(store, self)
        self.list = QListView(self)
        self.list.setModel(self.model)
        self.list.setAccessibleName("Conversations")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.new, self.search, self.list):
            layout.addWidget(widget)
        self.setMinimumWidth(200)
        self.setMaximumWidth(320)
        self.new.clicked.connect(self.newRequested)
        self.search.textChanged.connect(self.model.refresh)
        self.list.clicked.connect(lambda index: self.conversationChosen.emit(index.data(ConversationModel.IdRole)))
        self.list.customContextMenuRequested.connect(self._menu)

    def select(self, conversation_id: int) -> None:
        row = self.model.row_of(conversation_id)
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))

    def delete(self, conversation_id: int) -> None:
        if self.store.read_only:
            return
        self.store.set_delete(conversation_id)
        self.model.refresh()
        self.deleted.emit(conversation_id)

    def _menu(self, pos: Any) -> None:
        index = self.list.indexAt(pos)
        if not index.isValid():
            return
        if self.store.read_only:
            return
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.edit(index))
        menu.addAction("Delete", lambda: self.delete(index.data(ConversationModel.IdRole)))
        menu.exec(self.list.viewport().mapToGlobal(pos))
