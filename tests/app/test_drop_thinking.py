"""Drop old thinking in the store and the controller, without a window: saved per conversation (an
older database gains the column with the template's default), and sent as truncate_history_thinking
only where the loaded template reads it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.controller import TRUNCATE_THINKING, ConversationController, TurnSettings
from app.store import ChatStore
from engine.api import GenerationRequest


class NoEngine:
    """The controller's engine for tests that never start an answer."""

    busy = False

    def generate(self, request: GenerationRequest) -> bool:
        return False

    def stop(self) -> None:
        pass


def test_an_older_database_gains_the_column_with_the_default(tmp_path: Path) -> None:
    file = tmp_path / "old.sqlite3"
    db = sqlite3.connect(file)
    db.executescript("""
        CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL,
            updated REAL NOT NULL, system_prompt TEXT NOT NULL DEFAULT '', thinking INTEGER NOT NULL DEFAULT 1,
            budget INTEGER, head_id INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
        INSERT INTO conversations(title, created, updated) VALUES ('before', 0, 0);""")
    db.commit()
    db.close()
    reader = ChatStore(file, read_only=True)  # an older database read as it is: the default
    assert reader.get(1).drop_thinking
    reader.close()
    store = ChatStore(file)
    assert store.get(1).drop_thinking
    store.set_drop_thinking(1, False)
    assert not store.get(1).drop_thinking and not store.conversations()[0].drop_thinking
    store.close()


def test_the_setting_is_per_conversation_and_reaches_the_request(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats.sqlite3")
    controller = ConversationController(store, NoEngine(), view=None)  # type: ignore[arg-type]
    assert controller.drop_thinking  # nothing open: the template's default
    controller.conversation_id = store.create("one")
    other = store.create("two")
    controller.set_drop_thinking(False)
    assert not controller.drop_thinking and store.get(other).drop_thinking
    keep = controller.request(TurnSettings(drop_thinking=False), draft="next?")
    assert keep.chat_template_kwargs == {TRUNCATE_THINKING: False}
    assert keep.messages[-1].content == "next?" and keep.messages[-1].role == "user"
    drop = controller.request(TurnSettings(drop_thinking=True), draft="")
    assert drop.chat_template_kwargs == {TRUNCATE_THINKING: True}
    # a template without the switch (drop_thinking None) gets nothing it would refuse
    assert controller.request(TurnSettings(), draft="x").chat_template_kwargs == {}
    store.close()


class EditingView:
    def editing_changed(self, text: str | None) -> None:
        self.text = text


def test_the_count_of_an_edited_question_replaces_it(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats.sqlite3")
    controller = ConversationController(store, NoEngine(), view=EditingView())  # type: ignore[arg-type]
    controller.conversation_id = store.create("one")
    first = store.add(controller.conversation_id, "user", "first")
    store.add(controller.conversation_id, "assistant", "answer one", reasoning="thought one")
    second = store.add(controller.conversation_id, "user", "second")
    store.add(controller.conversation_id, "assistant", "answer two")
    controller.edit(second)
    assert [m.content for m in controller.request(TurnSettings(), draft="second, edited").messages] == [
        "first", "answer one", "second, edited"]
    controller.edit(first)
    assert [m.content for m in controller.request(TurnSettings(), draft="new first").messages] == ["new first"]
    controller.cancel_edit()
    assert len(controller.request(TurnSettings(), draft="third").messages) == 5
    store.close()
