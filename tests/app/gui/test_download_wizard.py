"""The download wizard and the model library, end to end against the fake Hub on 127.0.0.1:
fresh install → wizard → verified download → model loaded; gated repo → token page; pause, resume,
cancel, and a download that continues after the wizard is closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.gui.bridge import EngineBridge
from app.gui.download_wizard import DONE, DOWNLOAD, TOKEN, VARIANT, DownloadWizard, TokenPage, VariantPage
from app.gui.main_window import MainWindow
from app.gui.model_library import ModelLibraryDialog
from app.store import ChatStore
from engine.services.hub.catalog import resolve
from engine.services.hub.download import Downloader
from engine.services.hub.library import Library
from engine.services.secrets import secrets
from tests.fixtures.fake_hub import GGUF_REPO, TORCH_REPO, FakeHub
from tests.fixtures.hub_fixtures import hub_files_fixture, hub_fixture  # noqa: F401  (fixtures)


@pytest.fixture
def fresh(qtbot, hub: FakeHub, tmp_path: Path, store: ChatStore,  # type: ignore[no-untyped-def]
          monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    """A first start: no model on the machine, the Hub at the fake server."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NEMOTRON_DESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    secrets.delete("hf-token")
    win = MainWindow(EngineBridge(), store, None)
    qtbot.addWidget(win)
    win.show()
    yield win
    secrets.delete("hf-token")
    if win.downloads.wizard is not None:
        win.downloads.wizard.reject()
    win.close()


def to_variants(qtbot, win: MainWindow) -> DownloadWizard:  # type: ignore[no-untyped-def]
    wizard = win.downloads.wizard or win.downloads.open_download_wizard()
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=20_000)  # hardware read, catalog loaded
    assert "RAM:" in wizard.currentPage().summary.text()  # type: ignore[attr-defined]
    wizard.next()
    assert wizard.currentId() == VARIANT
    return wizard


def choose(qtbot, wizard: DownloadWizard, variant_id: str) -> None:  # type: ignore[no-untyped-def]
    page = wizard.currentPage()
    assert isinstance(page, VariantPage)
    page.select(variant_id)
    row = page.current_row()
    assert row is not None and page.table.item(row, 3).text()  # the fit verdict is shown
    assert "KV cache" in page.details.text()  # with its numbers
    next_page(qtbot, wizard)


def next_page(qtbot, wizard: DownloadWizard) -> None:  # type: ignore[no-untyped-def]
    """Next on a page that asks the Hub: the question runs off the UI thread, the page waits for it."""
    page = wizard.currentPage()
    wizard.next()
    assert page.checking and wizard.currentPage() is page  # type: ignore[attr-defined]  # not asked on the UI thread
    qtbot.waitUntil(lambda: not page.checking, timeout=20_000)  # type: ignore[attr-defined]


def test_fresh_install_to_a_loaded_verified_model(qtbot, fresh: MainWindow) -> None:  # type: ignore[no-untyped-def]
    assert fresh.downloads.offer_first_run()  # no model yet: the wizard opens by itself
    wizard = to_variants(qtbot, fresh)
    page = wizard.currentPage()
    assert isinstance(page, VariantPage) and wizard.catalog is not None
    row = page.current_row()
    assert row is not None and wizard.catalog.variants[row].id == "unsloth:Q4_K_M"  # suggested: it runs here
    choose(qtbot, wizard, "unsloth:Q4_K_M")
    assert wizard.currentId() == DOWNLOAD  # not gated: no token page
    job = fresh.downloads.download_job
    assert job is not None
    qtbot.waitUntil(lambda: job.state == "done", timeout=30_000)
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=5_000)
    assert "Verified" in wizard.currentPage().note.text()  # type: ignore[attr-defined]
    wizard.next()
    assert wizard.currentId() == DONE
    qtbot.waitUntil(lambda: fresh.bridge.model is not None, timeout=60_000)
    assert fresh.bridge.model is not None and fresh.bridge.model.path == job.path
    assert [m.id for m in fresh.downloads.library().models()] == [f"{GGUF_REPO}:Q4_K_M"]
    wizard.accept()
    assert not fresh.downloads.offer_first_run()  # offered once; and there is a model now


def test_gated_repo_asks_for_a_token(qtbot, fresh: MainWindow, hub: FakeHub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wizard = to_variants(qtbot, fresh)
    choose(qtbot, wizard, "nvidia:BF16")
    assert wizard.currentId() == TOKEN
    page = wizard.currentPage()
    assert isinstance(page, TokenPage)
    assert "gated" in page.explain.text() and ("session" in page.where.text() or "keyring" in page.where.text())
    page.token.setText("hf_not_allowed")
    next_page(qtbot, wizard)
    assert wizard.currentId() == TOKEN and "no access" in page.problem.text()
    page.token.setText(hub.token)
    next_page(qtbot, wizard)
    assert wizard.currentId() == DOWNLOAD
    job = fresh.downloads.download_job
    assert job is not None
    qtbot.waitUntil(lambda: job.state == "done", timeout=30_000)
    assert (Path(job.path) / "model.safetensors").is_file()
    assert any(m.repo == TORCH_REPO for m in fresh.downloads.library().models())
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert written and not [p for p in written if hub.token.encode() in p.read_bytes()]  # never in a file


def test_pause_resume_and_the_download_continues_after_the_wizard_closes(  # type: ignore[no-untyped-def]
        qtbot, fresh: MainWindow, hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.rate = 2e6  # 8 MB: about four seconds
    wizard = to_variants(qtbot, fresh)
    choose(qtbot, wizard, "unsloth:Q8_0")
    page = wizard.currentPage()
    job = fresh.downloads.download_job
    assert job is not None
    qtbot.waitUntil(lambda: job.last is not None and job.last.done > 1 << 19, timeout=20_000)
    page.pause_button.click()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: job.state == "paused", timeout=10_000)
    assert "Paused" in page.note.text() and "paused" in fresh.download_label.text()  # type: ignore[attr-defined]
    assert Library(tmp_path / "cache", tmp_path / "data").models() == []  # a partial file is not a model
    page.resume_button.click()  # type: ignore[attr-defined]
    wizard.reject()  # closing the wizard does not stop the download
    qtbot.waitUntil(lambda: "Downloading Q8_0" in fresh.download_label.text(), timeout=10_000)
    qtbot.waitUntil(lambda: job.state == "done", timeout=30_000)
    assert "verified" in fresh.download_label.text()
    assert any(r.startswith("bytes=") and r != "bytes=0-" for r in hub.gets("Nemotron-3-Nano-30B-A3B-Q8_0.gguf"))


def test_cancel_deletes_the_partial_file(qtbot, fresh: MainWindow, hub: FakeHub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hub.faults.rate = 1e6
    wizard = to_variants(qtbot, fresh)
    choose(qtbot, wizard, "unsloth:Q8_0")
    job = fresh.downloads.download_job
    assert job is not None
    qtbot.waitUntil(lambda: job.last is not None and job.last.done > 0, timeout=20_000)
    wizard.currentPage().cancel_button.click()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: job.state == "cancelled", timeout=10_000)
    assert not list((tmp_path / "cache").rglob("*.incomplete"))
    assert "Cancelled" in wizard.currentPage().note.text()  # type: ignore[attr-defined]


def test_library_lists_imports_and_removes(qtbot, hub: FakeHub, tmp_path: Path, tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    downloader = Downloader(tmp_path / "cache", hub.url)
    downloader.download(resolve(downloader.api, "Q4_K_M"))
    library = Library(tmp_path / "cache", tmp_path / "data")
    loaded: list[str | None] = []

    class Loader:
        def load_model(self, path: str | None) -> None:
            loaded.append(path)

    dialog = ModelLibraryDialog(library, Loader())
    qtbot.addWidget(dialog)
    dialog.import_path(Path(tiny_nemotron.hf_dir))
    assert dialog.table.rowCount() == 2
    assert {dialog.table.item(r, 1).text() for r in range(2)} == {"llama.cpp", "torch"}
    broken = tmp_path / "half.gguf"
    broken.write_bytes(Path(tiny_nemotron.gguf_path).read_bytes()[:4000])
    dialog.import_path(broken)
    assert "incomplete" in dialog.message.text() and dialog.table.rowCount() == 2
    dialog.select(f"{GGUF_REPO}:Q4_K_M")
    dialog.load_selected()
    assert loaded and loaded[0] is not None and loaded[0].endswith("Q4_K_M.gguf")
    dialog.remove_selected(confirm=False)
    assert dialog.table.rowCount() == 1 and library.downloaded() == []


def test_first_start_loads_the_demo_and_opens_the_wizard_over_it(qtbot, fresh: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from app.gui.app import start_without_model

    start_without_model(fresh)
    assert fresh.downloads.wizard is not None and fresh.downloads.wizard.isVisible()
    qtbot.waitUntil(lambda: fresh.bridge.model is not None, timeout=60_000)
    assert fresh.bridge.model is not None and fresh.bridge.model.is_demo  # usable while choosing


def test_a_hostile_hub_is_refused_in_the_wizard_and_nothing_is_written_outside_the_cache(  # type: ignore[no-untyped-def]
        qtbot, tmp_path: Path, store: ChatStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures.fake_hub import HostileRepo, lying_entry
    from tests.fixtures.hostile_root import HostileRoot

    root = HostileRoot(tmp_path / "root")
    payload = b"the attacker's bytes " * 150
    evil = FakeHub({}, hostile={GGUF_REPO: HostileRepo(GGUF_REPO, [lying_entry(
        "../../../../victim/existing-Q4_K_M.gguf", payload)], payload, "ab" * 20)}).start()
    monkeypatch.setenv("HF_ENDPOINT", evil.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(root.cache))
    monkeypatch.setenv("NEMOTRON_DESK_DATA_DIR", str(root.data))
    win = MainWindow(EngineBridge(), store, None)
    qtbot.addWidget(win)
    before = root.walk()
    try:
        wizard = to_variants(qtbot, win)
        assert "Refused" in wizard.page(0).summary.text()  # type: ignore[attr-defined]
        page = wizard.currentPage()
        assert isinstance(page, VariantPage)
        page.select("unsloth:Q4_K_M")  # the built-in entry stands in for the refused listing
        next_page(qtbot, wizard)  # Next reads the listing again: refused again, with the reason
        assert wizard.currentId() == VARIANT and win.downloads.download_job is None
        assert "climbs out of its folder" in page.problem.text() and "not trustworthy" in page.problem.text()
        wizard.reject()
    finally:
        evil.stop()
        win.close()
    assert root.changes(before) == []


def test_the_hub_gone_on_next_is_a_connection_problem(qtbot, fresh: MainWindow) -> None:  # type: ignore[no-untyped-def]
    import socket

    wizard = to_variants(qtbot, fresh)
    with socket.socket() as closed:  # the connection drops after the list was read: refused at once
        closed.bind(("127.0.0.1", 0))
        wizard.endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    page = wizard.currentPage()
    assert isinstance(page, VariantPage)
    choose(qtbot, wizard, "unsloth:Q4_K_M")  # Next asks the Hub off the UI thread; the page waits for it
    assert wizard.currentId() == VARIANT
    assert "Check the connection" in page.problem.text() and "inside Nemotron Desk" not in page.problem.text()
