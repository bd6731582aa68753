"""DeletedChats: every deleted conversation stays undoable for a while, newest first.

A delete only hides the conversation (ChatStore.set_delete); it is removed for good (ChatStore.purge)
when its own undo time is over, or when the window closes. Each delete has its own deadline, so a
later delete never shortens an earlier one's offer, and Undo (the status-bar button, or Ctrl+Z)
brings back the newest; pressed again, the one before it.

Signals:
    changed()   something was deleted, brought back or purged (the Undo offer follows `titles`)
"""

from __future__ import annotations

from collections.abc import Callable

from app.gui.qt import QObject, QTimer, Signal
from app.store import ChatStore

#: How long one delete stays undoable.
UNDO_SECONDS = 60.0


class DeletedChats(QObject):
    changed = Signal()

    def __init__(self, store: ChatStore, restore: Callable[[int], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._restore = restore
        self._stack: list[tuple[int, QTimer]] = []  # oldest first
        self.seconds = UNDO_SECONDS

    @property
    def titles(self) -> list[str]:
        """The undoable chats' titles, newest first."""
        return [self._store.get(cid).title for cid, _ in reversed(self._stack)]

    def __len__(self) -> int:
        return len(self._stack)

    def push(self, conversation_id: int) -> None:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(lambda: self._expire(conversation_id))
        timer.start(int(self.seconds * 1000))
        self._stack.append((conversation_id, timer))
        self.changed.emit()

    def undo(self) -> int | None:
        """Bring back the newest deleted chat; returns its id (None: nothing to undo)."""
        if not self._stack:
            return None
        conversation_id, timer = self._stack.pop()
        timer.stop()
        timer.deleteLater()
        self._restore(conversation_id)
        self.changed.emit()
        return conversation_id

    def purge_all(self) -> None:
        """At exit: what is still deleted goes for good."""
        for conversation_id, timer in self._stack:
            timer.stop()
            self._store.purge(conversation_id)
        self._stack.clear()
        self.changed.emit()

    def _expire(self, conversation_id: int) -> None:
        for i, (cid, timer) in enumerate(self._stack):
            if cid == conversation_id:
                del self._stack[i]
                timer.deleteLater()
                self._store.purge(conversation_id)
                self.changed.emit()
                return
