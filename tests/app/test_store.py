"""ChatStore: SQLite in WAL mode, streamed saves, interrupted answers, search, delete and undo."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.store import ChatStore


def test_conversation_round_trip_and_streaming_saves(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    store = ChatStore(db)
    conv = store.create("Sky", thinking=False, budget=512)
    store.add(conv, "user", "Why is the sky blue?")
    answer = store.add(conv, "assistant", state="streaming")
    store.update(answer, content="Rayleigh", reasoning="Think about light.")
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # the next start (after a crash: the lock went with the process, close() adds nothing) sees every write
    store.close()
    other = ChatStore(db)
    path = other.path(conv)
    assert [(m.role, m.content, m.state) for m in path] == [
        ("user", "Why is the sky blue?", "done"), ("assistant", "Rayleigh", "interrupted")]
    assert path[1].reasoning == "Think about light."
    c = other.get(conv)
    assert (c.title, c.thinking, c.budget) == ("Sky", False, 512)


def test_branches_follow_the_head(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    conv = store.create()
    q1 = store.add(conv, "user", "one")
    a1 = store.add(conv, "assistant", "first answer")
    store.add(conv, "user", "two (edited away)", parent_id=a1)
    edited = store.add(conv, "user", "two, edited", parent_id=a1)
    assert [m.content for m in store.path(conv)] == ["one", "first answer", "two, edited"]
    store.set_head(conv, q1)
    assert [m.content for m in store.path(conv)] == ["one"]
    store.set_head(conv, edited)


def test_search_rename_delete_undo(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    a, b = store.create("Bread"), store.create("Rockets")
    store.add(a, "user", "How long does sourdough rise?")
    assert [c.id for c in store.conversations()] == [a, b]  # a was used last
    assert [c.id for c in store.conversations("SOURDOUGH")] == [a]
    assert [c.id for c in store.conversations("rock")] == [b]
    store.rename(b, "  ")
    assert store.get(b).title == "Untitled"
    store.set_delete(a)
    assert [c.id for c in store.conversations()] == [b]
    store.set_delete(a, False)
    assert {c.id for c in store.conversations()} == {a, b}


def test_purge_removes_only_what_is_deleted(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    a, b = store.create("Bread"), store.create("Rockets")
    store.add(a, "user", "How long does sourdough rise?")
    store.add(b, "user", "How high?")
    store.purge(b)  # not deleted: left alone
    store.set_delete(a)
    assert store.deleted() == [a]
    store.purge(a)
    assert store.deleted() == [] and [c.id for c in store.conversations()] == [b]
    assert store.path(a) == [] and store.path(b)[0].content == "How high?"
    with pytest.raises(KeyError):
        store.get(a)


def test_siblings_and_leaves_for_branch_switching(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    conv = store.create()
    q = store.add(conv, "user", "q")
    a1 = store.add(conv, "assistant", "a1")
    follow = store.add(conv, "user", "follow-up")
    a2 = store.add(conv, "assistant", "a2 (regenerated)", parent_id=q)
    assert store.siblings(a1) == [a1, a2] and store.siblings(a2) == [a1, a2]
    assert store.leaf(a1) == follow and store.leaf(a2) == a2 and store.parent(a2) == q
    store.set_head(conv, store.leaf(a1))
    assert [m.content for m in store.path(conv)] == ["q", "a1", "follow-up"]


def test_export_markdown_and_json(tmp_path: Path) -> None:
    import json

    from app.export import to_json, to_markdown

    store = ChatStore(tmp_path / "c.sqlite3")
    conv = store.create("Sky")
    store.add(conv, "user", "Why blue?")
    store.add(conv, "assistant", "Rayleigh scattering.", reasoning="Light scatters.\nShort waves more.")
    md = to_markdown(store, conv)
    assert md.startswith("# Sky") and "## You\n\nWhy blue?" in md and "> Short waves more." in md
    data = json.loads(to_json(store, conv))
    assert data["title"] == "Sky" and data["messages"][1]["reasoning"].startswith("Light")


def test_streamed_text_is_appended_by_the_writer_thread_in_order(tmp_path: Path) -> None:
    import threading

    db = tmp_path / "w.sqlite3"
    store = ChatStore(db)
    conv = store.create("Stream")
    answer = store.add(conv, "assistant", state="streaming")
    store.append(answer, content="A", reasoning="r")  # appended on this connection, not rewritten
    writer = store.stream_writer()
    pieces = [f"{i}," for i in range(500)]
    for piece in pieces:
        writer.append(answer, content=piece, reasoning=piece[:1])
    writer.flush()  # everything queued is on disk, read back through another connection
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as peek:
        content, reasoning = peek.execute("SELECT content, reasoning FROM messages WHERE id=?", (answer,)).fetchone()
    assert content == "A" + "".join(pieces) and reasoning == "r" + "".join(p[:1] for p in pieces)
    assert any(t.name == "chat-writer" for t in threading.enumerate())
    writer.close()
    assert not any(t.name == "chat-writer" for t in threading.enumerate())
    store.close()
    again = ChatStore(db)
    assert again.path(conv)[0].state == "interrupted"  # the next start: nothing lost, marked cut off
    again.close()


def test_a_failed_write_on_the_writer_thread_is_raised_where_it_is_flushed(tmp_path: Path) -> None:

    store = ChatStore(tmp_path / "f.sqlite3")
    writer = store.stream_writer()
    store._db.execute("DROP TABLE messages")  # the table is gone under the writer
    writer.append(1, content="lost")
    with pytest.raises(sqlite3.Error):
        writer.flush()
    store.close()
