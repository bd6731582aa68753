"""The API switch in the app: the window's engine served over HTTP, both front ends taking turns."""

from __future__ import annotations

import threading

import httpx
import openai
from PySide6.QtCore import QSettings

from app.gui.main_window import MainWindow
from tests.app.gui.test_chat_window import last_answer, send, wait_answer
from tests.app.server.live_server import free_port


def test_switch_serves_the_loaded_model_and_shares_the_engine(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    QSettings().setValue("server/port", port)
    window.serve_action.setChecked(True)
    assert "starting" in window.api_label.text()  # it binds in a thread: the window does not wait
    qtbot.waitUntil(lambda: window.api is not None, timeout=20_000)
    assert window.api is not None and f"127.0.0.1:{port}" in window.api_label.text()
    client = openai.OpenAI(base_url=window.api.url, api_key="none", max_retries=0, timeout=120)
    names = [m.id for m in client.models.list().data]
    assert "nemotron-desk" in names
    replies: list[str | None] = []
    api_call = threading.Thread(target=lambda: replies.append(client.chat.completions.create(
        model="nemotron-desk", max_tokens=200, messages=[{"role": "user", "content": "From the API"}],
        extra_body={"thinking_token_budget": 16}).choices[0].finish_reason))
    window.composer.set_budget(64)
    send(qtbot, window, "From the window")  # both at once: they take turns on one engine
    api_call.start()
    wait_answer(qtbot, window)
    api_call.join(120)
    assert replies and replies[0] in ("stop", "length")
    assert last_answer(window).thinking.done and last_answer(window).error is None
    window.serve_action.setChecked(False)
    assert window.api is None
    try:
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
        raise AssertionError("still serving")
    except httpx.ConnectError:
        pass


def test_busy_port_is_explained(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        QSettings().setValue("server/port", taken.getsockname()[1])
        window.serve_action.setChecked(True)
        qtbot.waitUntil(lambda: not window.serve_action.isChecked(), timeout=20_000)
        assert window.api is None
        assert "another program may be using the port" in window.status.text()
