"""Issue 16, item 12: failures are told apart by type (the network, an engine error, a bug of ours),
a bug's traceback goes to the log and never into a dialog or under an answer, GPU detection that
fails says so, and one crash handler catches what nothing else did, in Qt slots and threads too."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import httpx
import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QPushButton

from app.failures import BUG_MESSAGE, describe
from app.gui.crash import CrashHandler
from app.paths import log_path
from engine.errors import ModelLoadError
from engine.services.hub import hardware


@pytest.fixture(autouse=True)
def logs_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEMOTRON_DESK_DATA_DIR", str(tmp_path / "data"))


def test_failures_are_told_apart_by_type() -> None:
    offline = describe(httpx.ConnectError("Name or service not known"), "read the file list from the Hub")
    assert "Check the connection" in offline.action and "ConnectError" in offline.message and not offline.bug
    assert "Check the connection" in describe(TimeoutError("timed out"), "download").action
    engine = describe(ModelLoadError("The file is cut short.", "Download it again."), "load")
    assert (engine.message, engine.action, engine.bug) == ("The file is cut short.", "Download it again.", False)
    try:
        {}["missing"]
    except KeyError as exc:
        bug = describe(exc, "read the file list from the Hub")
    assert bug.bug and bug.message.startswith(BUG_MESSAGE) and "connection" not in str(bug).lower()
    assert str(log_path()) in bug.action
    logged = log_path().read_text()
    assert "Traceback" in logged and "KeyError: 'missing'" in logged and "Traceback" not in str(bug)


def test_the_download_job_reports_a_bug_as_a_bug(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.gui.downloads import DownloadJob
    from engine.services.hub.catalog import Variant

    class Broken:  # a downloader with a bug of ours in it (not a network failure)
        def download(self, variant, progress, control):  # type: ignore[no-untyped-def]
            return variant.no_such_field

    variant = Variant("org", "org/x", "Q4_K_M", "llama.cpp", 1)
    job = DownloadJob(Broken(), variant)  # type: ignore[arg-type]
    with qtbot.waitSignal(job.failed, timeout=10_000) as failed:
        job.start()
    error = failed.args[0]
    assert error.message.startswith(BUG_MESSAGE) and "connection" not in error.action.lower()
    assert "AttributeError" in log_path().read_text()


def test_a_failing_gpu_probe_is_unknown_not_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class NVMLError_NoPermission(Exception):
        pass

    class NVMLError_DriverNotLoaded(Exception):
        pass

    def refuse() -> None:
        raise NVMLError_NoPermission("Insufficient Permissions")

    fake = types.SimpleNamespace(nvmlInit=refuse, NVMLError_DriverNotLoaded=NVMLError_DriverNotLoaded,
                                 nvmlShutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "pynvml", fake)  # the machine has no GPU to fail: NVML is faked
    hw = hardware.detect(tmp_path)
    assert hw.gpus == () and "NoPermission" in hw.gpu_problem
    assert "GPU: unknown" in hw.summary() and "no NVIDIA GPU found" not in hw.summary()

    def no_driver() -> None:
        raise NVMLError_DriverNotLoaded("Driver Not Loaded")

    fake.nvmlInit = no_driver
    assert hardware.probe_gpus() == ((), "")  # no driver: simply no GPU
    assert "no NVIDIA GPU found" in hardware.detect(tmp_path).summary()


@pytest.mark.qt_no_exception_capture
def test_a_slot_that_raises_is_logged_shown_and_copyable(qtbot) -> None:  # type: ignore[no-untyped-def]
    button = QPushButton("Go")
    qtbot.addWidget(button)

    def broken_slot() -> None:
        raise ZeroDivisionError("a bug in a slot")

    button.clicked.connect(broken_slot)
    handler = CrashHandler(button).install()
    try:
        with qtbot.waitSignal(handler.crashed, timeout=5_000) as crashed:
            button.click()  # PySide6 hands the slot's exception to sys.excepthook
        assert "ZeroDivisionError" in crashed.args[0] and crashed.args[1] == str(log_path())
        assert "a bug in a slot" in log_path().read_text() and "broken_slot" in log_path().read_text()
        box = handler.box
        assert box is not None and box.isVisible() and BUG_MESSAGE in box.text()
        assert "Traceback" not in box.text() + box.informativeText()  # short; the log has the rest
        copy = next(b for b in box.buttons() if b.text() == "Copy the log")
        copy.click()
        assert "broken_slot" in QGuiApplication.clipboard().text()
        assert box.isVisible()  # copying does not close it
        worker = threading.Thread(target=lambda: 1 / 0, name="worker")
        with qtbot.waitSignal(handler.crashed, timeout=5_000) as crashed:
            worker.start()
            worker.join()
        assert "ZeroDivisionError" in crashed.args[0] and "'worker'" in log_path().read_text()
    finally:
        handler.uninstall()
        if handler.box is not None:
            handler.box.close()
