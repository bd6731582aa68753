"""ChatStore: conversations and messages in SQLite (WAL), saved while answers stream.

Messages form a tree (each has a parent) so that an edited question can keep the old continuation
as a branch; a conversation's `head_id` is the leaf of the branch on screen. An answer is written
as it streams with state 'streaming'; at the next start any row still 'streaming' was cut off by a
crash or a kill and becomes 'interrupted', with everything that reached the disk.

One writer per database: a writable store holds an OS lock on `<database>.lock` (flock / LockFileEx,
through filelock) for as long as it is open. The kernel drops it when the process ends, however it
ends, so a crash leaves nothing stale; while another live store holds it, opening writable raises
StoreInUse, and a read-only store (read_only=True) reads and never writes, so it never marks the
other one's streaming answer as interrupted.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    thinking INTEGER NOT NULL DEFAULT 1,
    budget INTEGER,
    head_id INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    parent_id INTEGER REFERENCES messages(id),
    role TEXT NOT NULL,
    content TEXT NOT NULL DEFAULT '',
    reasoning TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'done',
    figures TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id);
"""


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    updated: float
    thinking: bool
    budget: int | None
    system_prompt: str


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    content: str
    reasoning: str
    state: str  # done, streaming, interrupted, cancelled, error
    figures: dict[str, Any]


class StoreInUse(Exception):
    """Another live process holds this database for writing."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is open in another Nemotron Desk.")
        self.path = path


class StoreReadOnly(Exception):
    """A write to a store opened read-only (another instance owns the database)."""


class ChatStore:
    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.file = Path(path)
        self.read_only = read_only
        self._lock: FileLock | None = None
        if not read_only:
            self._lock = FileLock(f"{self.file}.lock", timeout=0)
            try:
                self._lock.acquire()
            except Timeout:
                raise StoreInUse(self.file) from None
        self._db = sqlite3.connect(str(self.file), isolation_level=None)  # autocommit: every write lands
        if read_only:
            self._db.execute("PRAGMA query_only=ON")  # sqlite itself refuses any write on this connection
            return
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # we hold the lock, so no live instance is streaming: a 'streaming' row was cut off by a crash
        self._db.execute("UPDATE messages SET state='interrupted' WHERE state='streaming'")

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _write(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        if self.read_only:
            raise StoreReadOnly(f"{self.file} is open read-only here: another Nemotron Desk owns it.")
        return self._db.execute(sql, args)

    # -- conversations -----------------------------------------------------------------------------

    def create(self, title: str = "New chat", thinking: bool = True, budget: int | None = None) -> int:
        now = time.time()
        cur = self._write("INSERT INTO conversations(title, created, updated, thinking, budget) "
                               "VALUES (?, ?, ?, ?, ?)", (title, now, now, int(thinking), budget))
        return int(cur.lastrowid or 0)

    def conversations(self, search: str = "") -> list[Conversation]:
        """Newest first; `search` matches titles and message text, case-insensitively."""
        sql = ("SELECT id, title, updated, thinking, budget, system_prompt FROM conversations c WHERE deleted=0")
        args: list[Any] = []
        if search:
            like = f"%{search}%"
            sql += (" AND (title LIKE ? OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id=c.id "
                    "AND m.content LIKE ?))")
            args = [like, like]
        rows = self._db.execute(sql + " ORDER BY updated DESC", args).fetchall()
        return [Conversation(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    def get(self, conversation_id: int) -> Conversation:
        """One conversation, deleted or not (KeyError when there is none)."""
        r = self._db.execute("SELECT id, title, updated, thinking, budget, system_prompt FROM conversations "
                             "WHERE id=?", (conversation_id,)).fetchone()
        if r is None:
            raise KeyError(conversation_id)
        return Conversation(r[0], r[1], r[2], bool(r[3]), r[4], r[5])

    def rename(self, conversation_id: int, title: str) -> None:
        self._write("UPDATE conversations SET title=? WHERE id=?", (title.strip() or "Untitled", conversation_id))

    def set_delete(self, conversation_id: int, deleted: bool = True) -> None:
        """Delete (hidden at once, kept for undo) or bring back."""
        self._write("UPDATE conversations SET deleted=? WHERE id=?", (int(deleted), conversation_id))

    def purge(self, conversation_id: int) -> None:
        """Remove a deleted conversation for good, with its messages (its undo has expired). A
        conversation not deleted is left alone."""
        if self._db.execute("SELECT 1 FROM conversations WHERE id=? AND deleted=1", (conversation_id,)).fetchone():
            self._write("DELETE FROM messages WHERE conversation_id=?", (conversation_id,))
            self._write("DELETE FROM conversations WHERE id=?", (conversation_id,))

    def deleted(self) -> list[int]:
        """Conversations deleted but not yet purged (e.g. the app was killed while Undo was offered)."""
        return [r[0] for r in self._db.execute("SELECT id FROM conversations WHERE deleted=1 ORDER BY id")]

    def set_settings(self, conversation_id: int, *, thinking: bool, budget: int | None, system_prompt: str) -> None:
        self._write("UPDATE conversations SET thinking=?, budget=?, system_prompt=? WHERE id=?",
                         (int(thinking), budget, system_prompt, conversation_id))

    # -- messages --------------------------------------------------------------------------------

    def add(self, conversation_id: int, role: str, content: str = "", reasoning: str = "",
            state: str = "done", parent_id: int | None = -1) -> int:
        """Append a message under the current head (or under `parent_id`), and make it the head."""
        if parent_id == -1:
            row = self._db.execute("SELECT head_id FROM conversations WHERE id=?", (conversation_id,)).fetchone()
            parent_id = row[0] if row else None
        now = time.time()
        cur = self._write(
            "INSERT INTO messages(conversation_id, parent_id, role, content, reasoning, state, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (conversation_id, parent_id, role, content, reasoning, state, now))
        message_id = int(cur.lastrowid or 0)
        self._write("UPDATE conversations SET head_id=?, updated=? WHERE id=?", (message_id, now, conversation_id))
        return message_id

    def update(self, message_id: int, *, content: str | None = None, reasoning: str | None = None,
               state: str | None = None, figures: dict[str, Any] | None = None) -> None:
        sets, args = [], []
        for column, value in (("content", content), ("reasoning", reasoning), ("state", state)):
            if value is not None:
                sets.append(f"{column}=?")
                args.append(value)
        if figures is not None:
            sets.append("figures=?")
            args.append(json.dumps(figures))
        if sets:
            self._write(f"UPDATE messages SET {', '.join(sets)} WHERE id=?", (*args, message_id))

    def append(self, message_id: int, *, content: str = "", reasoning: str = "") -> None:
        """Add streamed text at the end of a message (what is new only, not the whole answer again)."""
        if content or reasoning:
            self._write("UPDATE messages SET content=content || ?, reasoning=reasoning || ? WHERE id=?",
                        (content, reasoning, message_id))

    def stream_writer(self) -> StreamWriter:
        """A writer thread for a streaming answer (its own connection), so the UI thread never waits on disk."""
        if self.read_only:
            raise StoreReadOnly(f"{self.file} is open read-only here: another Nemotron Desk owns it.")
        return StreamWriter(self.file)

    def set_head(self, conversation_id: int, message_id: int | None) -> None:
        self._write("UPDATE conversations SET head_id=? WHERE id=?", (message_id, conversation_id))

    def siblings(self, message_id: int) -> list[int]:
        """The message and its alternatives (same parent): regenerated answers, edited questions."""
        rows = self._db.execute(
            "SELECT s.id FROM messages s JOIN messages m ON m.id=? AND s.conversation_id=m.conversation_id "
            "AND s.parent_id IS m.parent_id AND s.state != 'error' ORDER BY s.id", (message_id,)).fetchall()
        return [r[0] for r in rows]

    def leaf(self, message_id: int) -> int:
        """The newest leaf under a message: where its branch currently ends."""
        while True:
            row = self._db.execute("SELECT max(id) FROM messages WHERE parent_id=? AND state != 'error'",
                                   (message_id,)).fetchone()
            if row is None or row[0] is None:
                return message_id
            message_id = row[0]

    def parent(self, message_id: int) -> int | None:
        row = self._db.execute("SELECT parent_id FROM messages WHERE id=?", (message_id,)).fetchone()
        return None if row is None else row[0]

    def path(self, conversation_id: int) -> list[StoredMessage]:
        """The messages on screen: from the first to the head, following parents."""
        rows = self._db.execute(
            "WITH RECURSIVE branch(id) AS (SELECT head_id FROM conversations WHERE id=? "
            "UNION ALL SELECT m.parent_id FROM messages m JOIN branch b ON m.id=b.id WHERE m.parent_id IS NOT NULL) "
            "SELECT m.id, m.role, m.content, m.reasoning, m.state, m.figures FROM messages m "
            "JOIN branch b ON m.id=b.id ORDER BY m.id", (conversation_id,)).fetchall()
        return [StoredMessage(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


class StreamWriter:
    """Appends streamed text to a message from its own thread and connection.

    `append()` only queues (a SimpleQueue: no lock for the caller, the UI thread, to wait on); the
    thread writes what is queued at once, in order, in autocommit, so what was handed over before a
    kill -9 is on disk. `flush()` waits until everything queued before it is written (before the
    answer's final update); `close()` flushes and ends the thread.
    """

    def __init__(self, file: Path) -> None:
        self._queue: queue.SimpleQueue[tuple[int, str, str] | threading.Event | None] = queue.SimpleQueue()
        self._error: sqlite3.Error | None = None
        self._thread = threading.Thread(target=self._run, args=(file,), name="chat-writer", daemon=True)
        self._thread.start()

    def append(self, message_id: int, *, content: str = "", reasoning: str = "") -> None:
        if content or reasoning:
            self._queue.put((message_id, content, reasoning))

    def flush(self) -> None:
        """Wait until everything queued is on disk; raises the writer's sqlite3 error, if it had one."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self, file: Path) -> None:
        db = sqlite3.connect(str(file), isolation_level=None, timeout=30)
        try:
            while True:
                pieces: list[tuple[int, str, str]] = []
                item = self._queue.get()
                while isinstance(item, tuple):  # several frames may be waiting: one statement for them
                    pieces.append(item)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        item = False  # type: ignore[assignment]
                        break
                if pieces and self._error is None:
                    self._write(db, pieces)
                if isinstance(item, threading.Event):
                    item.set()
                elif item is None:
                    return
        finally:
            db.close()

    def _write(self, db: sqlite3.Connection, pieces: list[tuple[int, str, str]]) -> None:
        merged: dict[int, tuple[list[str], list[str]]] = {}
        for message_id, content, reasoning in pieces:
            c, r = merged.setdefault(message_id, ([], []))
            c.append(content)
            r.append(reasoning)
        try:
            for message_id, (contents, reasonings) in merged.items():
                db.execute("UPDATE messages SET content=content || ?, reasoning=reasoning || ? WHERE id=?",
                           ("".join(contents), "".join(reasonings), message_id))
        except sqlite3.Error as exc:  # disk full, database gone: kept for flush() to raise on the UI thread
            self._error = exc
