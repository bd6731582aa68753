"""The GUI on a remote server: the Connect dialog against our real server on 127.0.0.1 (with an API
key), then a window whose engine worker talks to that server: thinking pane, budget, status line.

The tests wait for the window's own signals (loaded, the end of an answer); their timeouts are only
guards against a hang, so a slow or busy machine takes longer but does not fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PySide6.QtCore import QSettings

from app.gui.bridge import EngineBridge
from app.gui.connect_dialog import ConnectDialog
from app.gui.main_window import MainWindow
from app.store import ChatStore
from engine.api import EngineEvent, Finished, RemoteSpec, secret_name
from engine.services.secrets import SecretStore
from tests.app.gui.test_chat_window import last_answer, send
from tests.app.server.live_server import LiveServer, free_port

TINY = "tiny-nemotron"
KEY = "s3cret"
HANG_GUARD_MS = 300_000  # never a measure of speed: only how long to wait before calling it a hang


@pytest.fixture(scope="module")
def server(tiny_nemotron) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    live = LiveServer(tiny_nemotron.gguf_path, TINY, api_key=KEY)
    yield live
    live.close()


@pytest.fixture
def store(server: LiveServer) -> Iterator[SecretStore]:
    s = SecretStore(service="nemotron-desk-tests")  # not the app's own entries
    yield s
    s.delete(secret_name(server.base_url))


def test_connect_dialog_tests_lists_and_remembers(qtbot, server: LiveServer, store: SecretStore) -> None:  # type: ignore[no-untyped-def]
    dialog = ConnectDialog(None, store)
    qtbot.addWidget(dialog)
    dialog.url.setText(server.base_url)
    dialog.key.setText("wrong")
    dialog.test.click()
    qtbot.waitUntil(lambda: "401" in dialog.message.text(), timeout=20_000)
    assert "API key" in dialog.message.text() and not dialog._ok.isEnabled()
    dialog.key.setText(KEY)
    dialog.test.click()
    qtbot.waitUntil(lambda: dialog.models.count() == 1, timeout=20_000)
    assert dialog.models.currentText() == TINY and dialog._ok.isEnabled()
    dialog.remember.setChecked(True)
    dialog.accept()
    spec = dialog.spec()
    assert spec.base_url == server.base_url and spec.model == TINY and spec.api_key == KEY
    assert QSettings().value("remote/url") == server.base_url
    assert store.get(secret_name(server.base_url)) == KEY  # in the keyring, or this session's memory
    again = ConnectDialog(None, store)
    qtbot.addWidget(again)
    assert again.url.text() == server.base_url and again.key.text() == KEY


def test_connect_dialog_explains_a_bad_address(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = ConnectDialog(None, SecretStore(service="nemotron-desk-tests"))
    qtbot.addWidget(dialog)
    dialog.url.setText("ftp://nowhere")
    dialog.test.click()
    assert "not a server address" in dialog.message.text()


def ask(qtbot: Any, win: MainWindow, question: str) -> list[EngineEvent]:
    """Send `question` and return the answer's events once the bridge says the answer is over."""
    seen: list[EngineEvent] = []
    win.bridge.events.connect(seen.extend)
    try:
        with qtbot.waitSignal(win.bridge.busyChanged, check_params_cb=lambda busy: not busy,
                              timeout=HANG_GUARD_MS):
            send(qtbot, win, question)
    finally:
        win.bridge.events.disconnect(seen.extend)
    assert any(isinstance(e, Finished) for e in seen), seen
    return seen


def test_window_chats_through_the_server(qtbot, server: LiveServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.api import LoadSpec

    chats = ChatStore(tmp_path / "chats.sqlite3")
    win = MainWindow(EngineBridge(), chats, LoadSpec(remote=RemoteSpec(server.base_url, api_key=KEY)))
    # Enough for the budget (64) to end the thinking: the answer's reserve (a quarter) closes it by
    # ~120 tokens at the latest, whatever the random weights write.
    win.max_tokens = 160
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.bridge.model is not None, timeout=HANG_GUARD_MS)
        assert server.base_url in win.status.text() and "Nemotron Desk" in win.status.text()
        assert win.composer.think.isEnabled()
        win.composer.set_budget(64)
        for question in ("Why is the sky blue?", "And the sunset?", "And the sea?"):
            ask(qtbot, win, question)
            assert win.current is None
            pane = last_answer(win).thinking
            if pane.tokens >= 64:
                break  # random weights sometimes close the thinking early: then ask again
        assert pane.done and pane.by_budget and 64 <= pane.tokens <= 160, pane.tokens
        assert "ended by the budget" in pane.header.text()
        # No tokenizer here for a server's model: the gauge says the count is unknown, and nothing the
        # server's template might not read is sent for Drop old thinking.
        qtbot.waitUntil(lambda: win.gauge.label.text() == "Context: unknown", timeout=HANG_GUARD_MS)
        assert not win.gauge.drop.isVisible() and "tokenizer" in win.gauge.label.toolTip()
        assert win.last_request is not None and win.last_request.chat_template_kwargs == {}
        assert server.base_url in win.status.text() and "tok/s" in win.status.text()
        # The app's own API switch serves the remote model too, with no special case.
        QSettings().setValue("server/port", free_port())
        win.set_serving(True)
        qtbot.waitUntil(lambda: win.api is not None or "starting" not in win.api_label.text(), timeout=20_000)
        assert win.api is not None, win.status.text()
        reply = httpx.post(win.api.url + "/chat/completions", timeout=HANG_GUARD_MS / 1000, json={
            "model": TINY, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 12})
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["reasoning_content"]
        win.set_serving(False)
    finally:
        win.close()
        chats.close()
