"""Issue 16, item 14: the model library lists the models that were used (by name, the path in a
tooltip), follows the load it started, and the API switch follows the loaded model."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import QSettings

from app.gui.main_window import MainWindow
from app.gui.model_library import ModelLibraryDialog
from tests.app.server.live_server import free_port


@pytest.fixture(autouse=True)
def library_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NEMOTRON_DESK_DATA_DIR", str(tmp_path / "data"))


def second_model(tiny_nemotron, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """Another model file (the tiny one, copied), loaded with a smaller context."""
    copy = tmp_path / "second-model.gguf"
    shutil.copyfile(tiny_nemotron.gguf_path, copy)
    QSettings().setValue("load/n_ctx", 2048)
    QSettings().setValue("load/n_threads", 2)
    QSettings().setValue("load/n_gpu_layers", 0)
    return str(copy)


def load(qtbot, window: MainWindow, path: str) -> None:  # type: ignore[no-untyped-def]
    window.load_model(path)
    qtbot.waitUntil(lambda: not window.bridge.busy and window.bridge.model is not None
                    and window.bridge.model.path == path, timeout=60_000)


def rows(dialog: ModelLibraryDialog) -> list[tuple[str, str]]:
    return [(dialog.table.item(r, 0).text(), dialog.table.item(r, 0).toolTip()) for r in range(dialog.table.rowCount())]


def test_the_library_lists_used_models_by_name_and_follows_its_load(  # type: ignore[no-untyped-def]
        qtbot, window: MainWindow, tiny_nemotron, tmp_path: Path) -> None:
    gguf = str(tiny_nemotron.gguf_path)
    assert window.bridge.model is not None
    tiny_name = window.bridge.model.name
    dialog = window.downloads.open_library()
    listed = rows(dialog)
    assert [name for name, _ in listed] == [tiny_name]  # opened from a file, never imported: listed
    assert gguf not in listed[0][0] and gguf in listed[0][1]  # the name shows; the path is in the tooltip
    second = second_model(tiny_nemotron, tmp_path)
    load(qtbot, window, second)
    assert [tip.splitlines()[-1] for _, tip in rows(dialog)] == [second, gguf]  # newest first
    dialog.select(gguf)
    dialog.load_selected()
    assert "Loading" in dialog.message.text()
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=60_000)
    assert dialog.message.text() == f"Loaded {tiny_name}."
    dialog.close()
    again = window.downloads.open_library()  # a new start reads the same settings
    assert rows(again)[0][0] == tiny_name and len(rows(again)) == 2
    again.select(second)
    again.remove_selected(confirm=False)
    assert Path(second).exists() and len(rows(again)) == 1  # forgotten, the file stays
    again.close()


def test_the_api_switch_follows_the_loaded_model(  # type: ignore[no-untyped-def]
        qtbot, window: MainWindow, tiny_nemotron, tmp_path: Path) -> None:
    QSettings().setValue("server/port", free_port())
    window.serve_action.setChecked(True)
    qtbot.waitUntil(lambda: window.api is not None, timeout=30_000)  # the server starts off the UI thread
    first = httpx.get(f"{window.api.url}/models", timeout=10).json()["data"]
    assert first[0]["id"] == Path(window.bridge.model.path).stem  # type: ignore[union-attr]
    second = second_model(tiny_nemotron, tmp_path)
    load(qtbot, window, second)
    assert window.bridge.model is not None and window.bridge.model.n_ctx == 2048 != first[0]["max_model_len"]
    now = httpx.get(f"{window.api.url}/models", timeout=10).json()["data"]
    assert now[0]["id"] == "second-model" and now[0]["max_model_len"] == 2048
    assert first[0]["id"] not in [m["id"] for m in now]
    window.serve_action.setChecked(False)
