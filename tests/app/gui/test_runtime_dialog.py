"""The torch-backend dialog against a local package index (tests/fixtures/wheel_index.py): it says what
it will download and how large before anything is fetched, installs with progress, and shows an error
a person can act on when the index cannot be reached."""

from __future__ import annotations

from pathlib import Path

from app.gui.runtime_dialog import TorchRuntimeDialog
from tests.fixtures.wheel_index import fill, served

__all__ = ["served"]  # the fixture


def test_says_what_and_how_much_then_installs_with_progress(qtbot, served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    indexes, urls = served
    fill(indexes)
    target = tmp_path / "runtime" / "site-packages"
    dialog = TorchRuntimeDialog(None, urls, target, ["fake-torch==1.0"])
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.install_button.isEnabled(), timeout=10_000)
    text = dialog.text.text()
    assert "fake-torch 1.0" in text and "fake-helper 1.1" in text and "KB to download" in text
    assert "127.0.0.1" in text and str(target) in text
    assert not target.exists()  # nothing fetched before the person agrees
    seen: list[int] = []
    dialog.progressed.connect(lambda what, done, total: seen.append(done))
    dialog.install_button.click()
    qtbot.waitUntil(lambda: "Restart Nemotron Desk" in dialog.text.text(), timeout=10_000)
    assert seen and (target / "fake_torch" / "__init__.py").is_file()
    assert dialog.close_button.text() == "Close"


def test_an_unreachable_index_is_explained(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dialog = TorchRuntimeDialog(None, ["http://127.0.0.1:9/simple"], tmp_path / "sp", ["fake-torch"])
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "Cannot reach" in dialog.text.text(), timeout=10_000)
    assert "internet connection" in dialog.text.text()
    assert not dialog.install_button.isEnabled()
