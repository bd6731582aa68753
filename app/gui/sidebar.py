"""The conversation list: newest first, searchable, rename in place, delete with undo.

Keyboard: Enter opens the chosen conversation, Delete deletes it (the window offers Undo), F2 renames.
The open conversation stays highlighted across every refresh of the list (the model resets on each),
and a long title ends in "…" (its full text is the tooltip) instead of widening the list.

Signals (Sidebar):
    conversationChosen(int)   the person picked a conversation
    newRequested()            "New chat"
    deleted(int)              a conversation was deleted (the window offers Undo)
"""

from __future__ import annotations

from typing import Any

from app.gui.qt import (
    QAbstractItemView,
    QAbstractListModel,
    QAction,
    QLineEdit,
    QListView,
    QMenu,
    QModelIndex,
    QPersistentModelIndex,
    QPushButton,
    QSize,
    QStyledItemDelegate,
    QStyleOptionViewItem,
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
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole, Qt.ItemDataRole.ToolTipRole):
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


class ElidingDelegate(QStyledItemDelegate):
    """Rows as wide as the list, not as their text: the view then elides a long title with "…"
    (QListView lays rows out at their text's width, which brings a horizontal scrollbar instead)."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(0, super().sizeHint(option, index).height())


class Sidebar(QWidget):
    conversationChosen = Signal(int)
    newRequested = Signal()
    deleted = Signal(int)

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.new = QPushButton("New chat", self)
        self.new.setToolTip("New chat (Ctrl+N)")
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search chats")
        self.model = ConversationModel(store, self)
        self.list = QListView(self)
        self.list.setModel(self.model)
        self.list.setAccessibleName("Conversations")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setItemDelegate(ElidingDelegate(self.list))
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.current: int | None = None  # the conversation on screen: highlighted whatever the list does
        self.delete_action = QAction("&Delete chat", self)
        self.delete_action.setShortcut(Qt.Key.Key_Delete)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # the list's Delete, not a text box's
        self.list.addAction(self.delete_action)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.new, self.search, self.list):
            layout.addWidget(widget)
        self.setMinimumWidth(160)
        self.setMaximumWidth(320)
        self.new.clicked.connect(self.newRequested)
        self.search.textChanged.connect(self.model.refresh)
        self.list.clicked.connect(self._choose)
        self.list.activated.connect(self._choose)  # Enter (and a double click where the platform says so)
        self.list.customContextMenuRequested.connect(self._menu)
        self.model.modelReset.connect(self._highlight)
        self.delete_action.triggered.connect(self.delete_chosen)

    def _choose(self, index: QModelIndex) -> None:
        if index.isValid():
            self.conversationChosen.emit(index.data(ConversationModel.IdRole))

    def select(self, conversation_id: int | None) -> None:
        """Highlight the conversation on screen (None: none is), now and after every refresh."""
        self.current = conversation_id
        self._highlight()

    def _highlight(self) -> None:
        row = self.model.row_of(self.current) if self.current is not None else -1
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))
        else:
            self.list.clearSelection()

    def delete_chosen(self) -> None:
        """Delete the conversation under the list's cursor (Delete key, Conversation menu)."""
        index = self.list.currentIndex()
        if index.isValid():
            self.delete(index.data(ConversationModel.IdRole))
        elif self.current is not None:
            self.delete(self.current)

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
        delete = menu.addAction("Delete", lambda: self.delete(index.data(ConversationModel.IdRole)))
        delete.setShortcut(self.delete_action.shortcut())
        menu.exec(self.list.viewport().mapToGlobal(pos))
