"""GUI test fixtures: offscreen Qt, settings in a temporary folder, a window on a real engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from PySide6.QtCore import QSettings  # noqa: E402

from app.gui.bridge import EngineBridge  # noqa: E402
from app.gui.main_window import MainWindow  # noqa: E402
from engine.backends.llama_cpp import LlamaLoadOptions  # noqa: E402
from engine.session import LoadSpec  # noqa: E402


@pytest.fixture(autouse=True)
def qt_settings_in_tmp(tmp_path: Path) -> None:
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))


@pytest.fixture
def window(qtbot, tiny_nemotron) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    win = MainWindow(EngineBridge(), LoadSpec(str(tiny_nemotron.gguf_path),
                                              LlamaLoadOptions(n_ctx=4096, n_threads=2, n_gpu_layers=0)))
    win.max_tokens = 300
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.bridge.model is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not win.bridge.busy, timeout=10_000)
    yield win
    win.close()
