"""GUI test fixtures: offscreen Qt, settings in a temporary folder, a window on a real engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from PySide6.QtCore import QSettings

from app.gui.bridge import EngineBridge
from app.gui.main_window import MainWindow
from app.store import ChatStore
from engine.api import LlamaLoadOptions, LoadSpec


@pytest.fixture(autouse=True)
def qt_settings_in_tmp(tmp_path: Path) -> None:
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))


def tiny_spec(tiny_nemotron) -> LoadSpec:  # type: ignore[no-untyped-def]
    return LoadSpec(str(tiny_nemotron.gguf_path), LlamaLoadOptions(n_ctx=4096, n_threads=2, n_gpu_layers=0))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    s = ChatStore(tmp_path / "chats.sqlite3")
    yield s
    s.close()


@pytest.fixture
def window(qtbot, tiny_nemotron, store: ChatStore) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    win = MainWindow(EngineBridge(), store, tiny_spec(tiny_nemotron))
    win.max_tokens = 300
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.bridge.model is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not win.bridge.busy, timeout=10_000)
    yield win
    win.close()
