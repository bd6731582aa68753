"""One app instance per data folder (app/gui/single_instance.py, app/store.py), with real second instances:

- a second `nemotron-desk gui` (a real process) brings the first window (here, under pytest-qt) forward
  through the local socket, and exits;
- a real first app streaming an answer is not touched by a second start: its answer stays 'streaming';
- a real process that holds the data folder without answering: the second start opens read-only, says so,
  writes nothing; after a kill -9 of the holder the lock is gone (never stale) and the answer is 'interrupted'.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.gui.app import listen_for_second_starts, open_store, open_window
from app.gui.bridge import EngineBridge
from app.gui.main_window import MainWindow
from app.gui.qt import Qt
from app.gui.sidebar import ConversationModel
from app.store import ChatStore, StoreInUse, StoreReadOnly
from tests import REPO_ROOT
from tests.app.gui.test_chat_window import last_answer

ROOT = REPO_ROOT


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("NEMOTRON_DESK_DATA_DIR", str(folder))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))  # nothing on this machine is scanned
    return folder


def app_env(data: Path) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT),
            "NEMOTRON_DESK_DATA_DIR": str(data), "HF_HUB_CACHE": str(data.parent / "cache"),
            "HF_ENDPOINT": "http://127.0.0.1:9"}  # a first-run wizard must not reach for the internet


def start_second(data: Path) -> subprocess.Popen[str]:
    """The real entry point, as a person's second double-click runs it."""
    return subprocess.Popen([sys.executable, "-m", "app.cli.main", "gui"], cwd=ROOT, env=app_env(data),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def row(db: Path, sql: str) -> tuple[object, ...] | None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as peek:
            result: tuple[object, ...] | None = peek.execute(sql).fetchone()
            return result
    except sqlite3.OperationalError:  # not created yet
        return None


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # offscreen has no window stack
def test_a_second_start_brings_the_first_window_forward(qtbot, data: Path) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    assert store is not None and not store.read_only
    first = MainWindow(EngineBridge(), store)
    qtbot.addWidget(first)
    listen_for_second_starts(first)
    first.showMinimized()
    second = start_second(data)
    try:
        qtbot.waitUntil(lambda: second.poll() is not None, timeout=300_000)  # Qt's loop runs: the first answers
    finally:
        second.kill()
    _, err = second.communicate()
    assert second.returncode == 0, err
    assert "already open" in err and "brought forward" in err
    assert not first.isMinimized() and first.isVisible()
    first.store.add(first.store.create("still mine"), "user", "and still writable")
    first.close()
    store.close()


STREAMING_APP = textwrap.dedent("""
    import sys
    from PySide6.QtWidgets import QApplication
    from app.gui.app import listen_for_second_starts, open_store
    from app.gui.bridge import EngineBridge
    from app.gui.main_window import MainWindow
    from engine.backends.llama_cpp import LlamaLoadOptions
    from engine.worker.session import LoadSpec

    app = QApplication([])
    store = open_store()
    win = MainWindow(EngineBridge(), store,
                     LoadSpec(sys.argv[1], LlamaLoadOptions(n_ctx=4096, n_threads=1, n_gpu_layers=0)))
    listen_for_second_starts(win)
    win.max_tokens = 100000
    win.composer.set_budget(None)
    def start(busy):
        if not busy and win.conversation_id is None:  # the load has finished
            win.send("Stream until I am killed")
    win.bridge.busyChanged.connect(start)
    win.show()
    app.exec()
""")


def test_a_second_start_leaves_the_first_ones_streaming_answer_alone(tiny_nemotron, data: Path) -> None:  # type: ignore[no-untyped-def]
    db = data / "conversations.sqlite3"
    first = subprocess.Popen([sys.executable, "-c", STREAMING_APP, str(tiny_nemotron.gguf_path)], cwd=ROOT,
                             env=app_env(data), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # a hang guard: a loaded machine starts apps slowly
        progress = "SELECT length(reasoning) + length(content), state FROM messages WHERE role='assistant'"
        while not ((r := row(db, progress)) and int(r[0]) > 50):  # type: ignore[call-overload]
            assert time.monotonic() < deadline and first.poll() is None, "the first app never streamed"
            time.sleep(0.1)
        second = start_second(data)
        try:
            _, err = second.communicate(timeout=300)
        finally:
            second.kill()
        assert second.returncode == 0 and "brought forward" in err, err
        streamed = row(db, progress)
        assert streamed is not None and first.poll() is None
        assert streamed[1] in ("streaming", "done"), streamed  # never 'interrupted' by the second start
        deadline = time.monotonic() + 300  # a hang guard: a loaded machine starts apps slowly
        while (r := row(db, progress)) is not None and r == streamed and r[1] == "streaming":
            assert time.monotonic() < deadline, "the first app stopped writing its answer"
            time.sleep(0.1)
        assert r is not None and r[1] in ("streaming", "done") and first.poll() is None  # and it goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)


HOLDER = textwrap.dedent("""
    import sys
    from app.store import ChatStore
    store = ChatStore(sys.argv[1])
    conv = store.create("Held elsewhere")
    store.add(conv, "user", "Are you there?")
    answer = store.add(conv, "assistant", state="streaming")
    store.update(answer, reasoning="Thinking, in another process", content="Half an ans")
    print("ready", flush=True)
    sys.stdin.readline()
""")


@pytest.fixture
def holder(data: Path) -> Iterator[subprocess.Popen[str]]:
    """A real process that owns the data folder's store (mid-answer) and has no window to answer with."""
    data.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(data / "conversations.sqlite3")], cwd=ROOT,
                            env=app_env(data), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_an_owner_that_does_not_answer_gets_a_read_only_second_window(  # type: ignore[no-untyped-def]
        qtbot, data: Path, holder: subprocess.Popen[str]) -> None:
    db = data / "conversations.sqlite3"
    window = open_window()
    assert window is not None
    qtbot.addWidget(window)
    assert window.store.read_only and "read-only" in window.windowTitle()
    assert "did not answer" in window.read_only_label.text() and str(data) in window.read_only_label.text()
    assert row(db, "SELECT state FROM messages WHERE role='assistant'") == ("streaming",)  # left alone
    assert not window.composer.isEnabled() and not window.sidebar.new.isEnabled()
    window.open_conversation(window.sidebar.model.index(0).data(ConversationModel.IdRole))
    assert last_answer(window).reasoning == "Thinking, in another process"  # readable
    window.send("typed anyway")
    window.sidebar.delete(window.conversation_id)  # type: ignore[arg-type]
    assert not window.sidebar.model.flags(window.sidebar.model.index(0)) & Qt.ItemFlag.ItemIsEditable  # no rename
    with pytest.raises(StoreReadOnly):
        window.store.create("nope")
    assert row(db, "SELECT count(*) FROM messages") == (2,) and row(db, "SELECT deleted FROM conversations") == (0,)
    window.close()
    window.store.close()
    holder.send_signal(signal.SIGKILL)  # the owner crashes: the kernel drops its lock with it
    holder.wait(10)
    after = ChatStore(db)  # writable at once: no stale lock
    assert row(db, "SELECT state FROM messages WHERE role='assistant'") == ("interrupted",)  # the kill -9 rule
    after.close()


def test_the_store_lock_is_per_database_and_released_on_close(tmp_path: Path) -> None:
    one = ChatStore(tmp_path / "a.sqlite3")
    with pytest.raises(StoreInUse):
        ChatStore(tmp_path / "a.sqlite3")
    other = ChatStore(tmp_path / "b.sqlite3")  # another data folder's store is another lock
    one.close()
    again = ChatStore(tmp_path / "a.sqlite3")
    again.close()
    other.close()
