"""The conversation controller without a window: a real EngineClient on the demo GGUF (in its worker
process) and a real ChatStore in a temporary folder. Send, stream and save, regenerate into versions,
edit into a branch, stop, a failed send rolled back, and everything back after a reopen."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.controller import ConversationController, Shown, TurnSettings
from app.engine_jobs import EngineJobs
from app.store import ChatStore
from engine.api import ContentDelta, EngineEvent, Error, LlamaLoadOptions, LoadSpec, ModelInfo
from engine.client import EngineClient

SHORT = TurnSettings(thinking=False, temperature=0.0, max_tokens=12)


class RecordingView:
    """A front end that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.branch: list[Shown] = []
        self.returned: list[str] = []
        self.editing: str | None = None

    def show_branch(self, messages: list[Shown]) -> None:
        self.branch = list(messages)
        self.calls.append(("show_branch", len(messages)))

    def question_added(self, question: Shown) -> None:
        self.branch.append(question)
        self.calls.append(("question_added", question.message.content))

    def answer_started(self) -> None:
        self.calls.append(("answer_started", None))

    def answer_resumed(self) -> None:
        self.calls.append(("answer_resumed", None))

    def answer_events(self, events: list[EngineEvent]) -> None:
        self.calls.append(("answer_events", len(events)))

    def answer_ended(self, answer: Shown | None) -> None:
        if answer is not None:
            self.branch.append(answer)
        self.calls.append(("answer_ended", answer))

    def question_returned(self, text: str) -> None:
        self.returned.append(text)

    def conversations_changed(self, current: int | None) -> None:
        self.calls.append(("conversations_changed", current))

    def editing_changed(self, text: str | None) -> None:
        self.editing = text


class Harness:
    """EngineJobs over a real EngineClient, pumped on the test's thread as the GUI's frame timer would."""

    def __init__(self, client: EngineClient, store: ChatStore) -> None:
        self.woke = threading.Event()
        self.jobs = EngineJobs(client, self.woke.set)
        self.view = RecordingView()
        self.controller = ConversationController(store, self.jobs, self.view)

    def pump(self, until_events: int | None = None, timeout: float = 120) -> list[EngineEvent]:
        """Hand the engine's events to the controller until the job ends (or `until_events` arrived)."""
        seen: list[EngineEvent] = []
        deadline = time.monotonic() + timeout
        while True:
            self.woke.clear()
            events, ended = self.jobs.take()
            seen += events
            if events:
                self.controller.on_events(events)
            if ended or (until_events is not None and len(seen) >= until_events):
                return seen
            assert time.monotonic() < deadline, "the engine never finished"
            self.woke.wait(1)


@pytest.fixture(scope="module")
def client(demo_gguf: Path) -> Iterator[EngineClient]:
    c = EngineClient()
    events = list(c.load(LoadSpec(str(demo_gguf), LlamaLoadOptions(n_ctx=2048, n_threads=2, n_gpu_layers=0))))
    assert isinstance(events[-1], ModelInfo), events
    yield c
    c.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chats.sqlite3"


@pytest.fixture
def harness(client: EngineClient, db: Path) -> Iterator[Harness]:
    store = ChatStore(db)
    h = Harness(client, store)
    yield h
    h.controller.close()
    store.close()


def on_disk(db: Path, message_id: int) -> tuple[str, str, str]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as peek:
        row = peek.execute("SELECT content, reasoning, state FROM messages WHERE id=?", (message_id,)).fetchone()
    return row[0], row[1], row[2]


def test_send_streams_into_the_store_and_shows_each_step(harness: Harness, db: Path) -> None:
    c = harness.controller
    assert c.send("Name a colour.", SHORT)
    assert c.busy and c.answer is not None
    streaming = c.answer.message_id
    assert on_disk(db, streaming)[2] == "streaming"
    harness.pump()
    assert not c.busy
    names = [name for name, _ in harness.view.calls]
    assert names[:3] == ["conversations_changed", "question_added", "answer_started"]
    assert "answer_events" in names and names[-2:] == ["answer_ended", "conversations_changed"]
    ended = harness.view.calls[-2][1]
    assert isinstance(ended, Shown) and ended.message.state == "done" and ended.versions == [streaming]
    content, _, state = on_disk(db, streaming)
    assert state == "done" and content and content == ended.message.content
    assert [m.role for m in c.history()] == ["user", "assistant"]
    assert c.last_request is not None and c.last_request.sampling.max_tokens == 12


def test_saving_appends_as_it_streams(harness: Harness, db: Path) -> None:
    c = harness.controller
    c.send("Tell me a long story about a dragon.", TurnSettings(thinking=False, temperature=0.0, max_tokens=200))
    assert c.answer is not None
    answer = c.answer
    harness.pump(until_events=20)
    assert c._writer is not None
    c._writer.flush()
    assert on_disk(db, answer.message_id)[:1] == (answer.content,)  # what streamed so far is on disk
    assert on_disk(db, answer.message_id)[2] == "streaming"
    c.stop()
    harness.pump()
    content, _, state = on_disk(db, answer.message_id)
    assert state == "cancelled" and content == answer.content.strip()


def test_regenerate_keeps_versions_and_switches(harness: Harness) -> None:
    c = harness.controller
    c.send("Say something", SHORT)
    harness.pump()
    first = c.history()[1].content
    assert c.regenerate(TurnSettings(thinking=False, temperature=1.5, max_tokens=12))
    harness.pump()
    branch = c.branch()
    assert len(branch) == 2 and len(branch[1].versions) == 2
    c.switch_branch(branch[1].versions[0])
    assert [m.content for m in c.history()] == ["Say something", first]
    assert harness.view.branch[1].message.content == first  # the view was shown the old version


def test_edit_makes_a_branch(harness: Harness) -> None:
    c = harness.controller
    c.send("First question", SHORT)
    harness.pump()
    c.send("Second question", SHORT)
    harness.pump()
    first_q = c.branch()[0].message.id
    c.edit(first_q)
    assert harness.view.editing == "First question" and c.edit_parent == 0
    c.send("First question, edited", SHORT)
    harness.pump()
    assert harness.view.editing is None and c.edit_parent is None
    branch = c.branch()
    assert branch[0].message.content == "First question, edited" and len(branch) == 2
    assert len(branch[0].versions) == 2
    c.switch_branch(branch[0].versions[0])
    assert [m.content for m in c.history()][::2] == ["First question", "Second question"]


def test_a_failed_send_leaves_nothing_behind(db: Path) -> None:
    store = ChatStore(db)
    with EngineClient() as unloaded:  # no model: the engine says so
        h = Harness(unloaded, store)
        c = h.controller
        c.send("Hello", SHORT)
        events = h.pump()
        assert any(isinstance(e, Error) and e.kind == "no_model" for e in events)
        assert h.view.calls[-2] == ("answer_ended", None)
        assert c.history() == [] and h.view.returned == ["Hello"]
        c.send("Hello", SHORT)  # the resend fails the same way ...
        h.pump()
        assert c.branch() == []  # ... and leaves no question, and no second version of it
        c.send("Hello", SHORT)
        # the failed turn still on screen is cleared first
        assert h.view.calls[-3:] == [("show_branch", 0), ("question_added", "Hello"), ("answer_started", None)]
        question = h.view.branch[-1]
        assert question.versions == [question.message.id]  # no false ‹ 2/2 ›
        h.pump()
        c.close()
    store.close()


def test_reopen_shows_the_same_branch(client: EngineClient, db: Path) -> None:
    store = ChatStore(db)
    h = Harness(client, store)
    h.controller.send("Name a fruit.", SHORT)
    h.pump()
    conversation, branch = h.controller.conversation_id, h.controller.branch()
    h.controller.close()
    store.close()
    again = ChatStore(db)
    view = RecordingView()
    reopened = ConversationController(again, EngineJobs(client), view)
    assert conversation is not None and reopened.open(conversation)
    assert [s.message for s in view.branch] == [s.message for s in branch]
    out = db.parent / "chat.md"
    reopened.export(out, "md")
    assert "Name a fruit." in out.read_text(encoding="utf-8")
    reopened.close()
    again.close()


def test_events_after_the_answer_are_ignored(harness: Harness) -> None:
    harness.controller.on_events([ContentDelta("late")])  # nothing streams: nothing to show or save
    assert harness.view.calls == []
