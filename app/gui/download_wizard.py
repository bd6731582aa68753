"""The model download wizard: hardware → variant (size, fit, backend) → token (gated repos only) →
download (progress, speed, ETA, pause, resume, cancel) → done.

The download itself is a DownloadJob owned by the main window (`host`), so it keeps going when the
wizard is closed, and the status line shows it. Nothing waits on the network on the UI thread: the
catalog is read in a thread, and the Hub questions on "Next" (file list, access) run in a thread too;
"Next" then stays on the page (`checking`), says what it asks, and moves on when the answer is good.
Every answer comes back through a Handoff (app/gui/handoff.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import engine.services.secrets as engine_secrets
from app.failures import describe
from app.gui.downloads import DownloadJob
from app.gui.handoff import Handoff
from app.gui.qt import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    Qt,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)
from app.gui.tables import row_table
from engine.errors import EngineError
from engine.services.hub import fit, hardware
from engine.services.hub.cache import default_cache_dir
from engine.services.hub.catalog import Catalog, Variant, load_catalog
from engine.services.hub.download import AuthRequired, Downloader, Progress
from engine.services.hub.hardware import Hardware, gb
from engine.services.secrets import SecretStore

TOKEN_NAME = "hf-token"
HARDWARE, VARIANT, TOKEN, DOWNLOAD, DONE = range(5)


class DownloadHost(Protocol):
    download_job: DownloadJob | None

    def start_download(self, downloader: Downloader, variant: Variant) -> DownloadJob: ...


class DownloadWizard(QWizard):
    def __init__(self, host: DownloadHost, parent: QWidget | None = None, store: SecretStore | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Get a Nemotron model")
        self.host = host
        self.secrets = store or engine_secrets.secrets
        self.endpoint = os.environ.get("HF_ENDPOINT") or None
        self.cache_dir = default_cache_dir()
        self.hardware: Hardware | None = None
        self.catalog: Catalog | None = None
        self.variant: Variant | None = None
        self.auth_error: AuthRequired | None = None
        self.setPage(HARDWARE, HardwarePage(self))
        self.setPage(VARIANT, VariantPage(self))
        self.setPage(TOKEN, TokenPage(self))
        self.setPage(DOWNLOAD, DownloadPage(self))
        self.setPage(DONE, DonePage(self))
        self.setStartId(HARDWARE)
        self.resize(760, 520)
        self.handoff = Handoff(self)

    def downloader(self) -> Downloader:
        token = self.secrets.get(TOKEN_NAME) or os.environ.get("HF_TOKEN") or None
        return Downloader(self.cache_dir, self.endpoint, token)


def _wrapped(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class HardwarePage(QWizardPage):
    """What this machine has; the catalog is read from the Hub meanwhile (built-in list when offline)."""

    def __init__(self, wizard: DownloadWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Your machine")
        self.setSubTitle("Which Nemotron file fits depends on GPU memory and RAM. "
                         "Close this wizard to keep using the demo model for now.")
        self.summary = _wrapped("Looking at the hardware and reading the model list…")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addStretch(1)

    def initializePage(self) -> None:
        if self.w.catalog is not None:
            return
        downloader = self.w.downloader()
        cache_dir = self.w.cache_dir
        self.w.handoff.run(lambda: (hardware.detect(cache_dir), load_catalog(downloader.api, token=downloader.token)),
                           self._read, "catalog")

    def _read(self, result: tuple[Hardware, Catalog] | Exception) -> None:
        if isinstance(result, Exception):
            raise result  # load_catalog falls back to the built-in list itself: anything else is a bug
        self.w.hardware, self.w.catalog = result
        why = "The Hub's listings were refused" if self.w.catalog.refused else "The Hub did not answer"
        note = "" if self.w.catalog.online else f"\n\n{why}: the list shows sizes known from public listings."
        note += "".join(f"\n\nRefused: {refusal}" for refusal in self.w.catalog.refused)
        self.summary.setText(self.w.hardware.summary() + note)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.w.catalog is not None


class VariantPage(QWizardPage):
    COLUMNS = ("Variant", "Size", "Backend", "Fit on this machine")

    def __init__(self, wizard: DownloadWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Choose a file")
        self.setSubTitle("GGUF files run in llama.cpp (GPU offload, any size of GPU); the BF16 safetensors "
                         "folder runs in PyTorch and needs a large GPU.")
        self.table = row_table(self.COLUMNS, stretch_column=3)
        self.table.itemSelectionChanged.connect(self._selected)
        self.details = _wrapped()
        self.problem = _wrapped()
        self.problem.setStyleSheet("color: #c0392b")
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.problem)
        self.estimates: list[fit.FitEstimate] = []
        self.checking = False  # the Hub is being asked about the chosen file
        self._checked: int | None = None  # the row whose file list and access came back good

    def initializePage(self) -> None:
        assert self.w.catalog is not None and self.w.hardware is not None
        hw = self.w.hardware
        variants = self.w.catalog.variants
        self.table.setRowCount(len(variants))
        self.estimates = []
        for row, v in enumerate(variants):
            est = fit.estimate(v.size_bytes, v.backend, hw.gpu_free_bytes, hw.ram_available_bytes)
            self.estimates.append(est)
            cells = (v.label, gb(v.size_bytes), v.backend, est.headline())
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(est.numbers())
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.table.selectRow(self._suggested(variants))

    def _suggested(self, variants: tuple[Variant, ...]) -> int:
        """Q4_K_M where it runs (the usual choice), else the first file that runs here, else the first."""
        runs = [row for row, est in enumerate(self.estimates) if est.fits]
        q4 = [row for row in runs if variants[row].quant == "Q4_K_M"]
        return (q4 or runs or [0])[0]

    def _selected(self) -> None:
        row = self.current_row()
        if row is not None:
            self.details.setText(f"Estimate: {self.estimates[row].numbers()}.")
        self.problem.setText("")
        self._checked = None
        self.completeChanged.emit()

    def current_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def select(self, variant_id: str) -> None:
        assert self.w.catalog is not None
        ids = [v.id for v in self.w.catalog.variants]
        self.table.selectRow(ids.index(variant_id))

    def isComplete(self) -> bool:
        return self.current_row() is not None and not self.checking

    def validatePage(self) -> bool:
        """Good once the Hub has answered for this row; until then ask it (in a thread) and stay."""
        assert self.w.catalog is not None
        row = self.current_row()
        if row is None or self.checking:
            return False
        if self._checked == row:
            self._checked = None  # coming back to this page asks again
            return True
        downloader = self.w.downloader()
        chosen = self.w.catalog.variants[row]

        def ask() -> tuple[Variant, AuthRequired | None]:
            variant = downloader.resolve(chosen)
            try:
                downloader.check_access(variant)
            except AuthRequired as exc:
                return variant, exc  # the next page asks for a token
            return variant, None

        self.checking = True
        self.problem.setText("")
        self.details.setText(f"Asking the Hub for the files of {chosen.label}…")
        self.completeChanged.emit()
        self.w.handoff.run(ask, lambda result: self._answered(row, result), "hub-files")
        return False

    def _answered(self, row: int, result: tuple[Variant, AuthRequired | None] | Exception) -> None:
        self.checking = False
        self.details.setText(f"Estimate: {self.estimates[row].numbers()}.")
        self.completeChanged.emit()
        if isinstance(result, EngineError):
            self.problem.setText(f"{result.message} {result.action}")
        elif isinstance(result, Exception):  # offline, a proxy page, DNS; or a bug of ours, which is logged
            self.problem.setText(str(describe(result, "read the file list from the Hub", "press Next again")))
        else:
            self.w.variant, self.w.auth_error = result
            if self.current_row() == row and self.w.currentPage() is self:
                self._checked = row
                self.w.next()

    def nextId(self) -> int:
        return TOKEN if self.w.auth_error is not None else DOWNLOAD


class TokenPage(QWizardPage):
    """Only for gated repos: a token with access, kept in the keyring (or for this session only)."""

    def __init__(self, wizard: DownloadWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("A Hugging Face token is needed")
        self.explain = _wrapped()
        self.explain.setOpenExternalLinks(True)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("hf_…")
        self.token.textChanged.connect(lambda _: self.completeChanged.emit())
        self.where = _wrapped()
        self.problem = _wrapped()
        self.problem.setStyleSheet("color: #c0392b")
        layout = QVBoxLayout(self)
        for widget in (self.explain, self.token, self.where, self.problem):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.checking = False  # the Hub is being asked whether the token has access
        self._checked = False

    def initializePage(self) -> None:
        err = self.w.auth_error
        assert err is not None and self.w.variant is not None
        page = f"{self.w.downloader().endpoint}/{err.repo}"
        self.explain.setText(f"{err.message} Accept the model's terms at <a href='{page}'>{page}</a>, then paste a "
                             "token with read access (huggingface.co → Settings → Access Tokens).")
        self.where.setText(f"The token will be kept in {self.w.secrets.where}; it is never written to a file.")
        self.problem.setText("")

    def isComplete(self) -> bool:
        return bool(self.token.text().strip()) and not self.checking

    def validatePage(self) -> bool:
        """Good once the Hub has said the token has access; until then ask it (in a thread) and stay."""
        assert self.w.variant is not None
        if self.checking:
            return False
        if self._checked:
            self._checked = False
            self.w.auth_error = None
            return True
        self.w.secrets.set(TOKEN_NAME, self.token.text().strip())
        downloader, variant = self.w.downloader(), self.w.variant
        self.checking = True
        self.problem.setText("Checking the token with the Hub…")
        self.completeChanged.emit()
        self.w.handoff.run(lambda: downloader.check_access(variant), self._answered, "hub-token")
        return False

    def _answered(self, result: object) -> None:
        self.checking = False
        self.completeChanged.emit()
        if isinstance(result, AuthRequired):
            self.problem.setText(f"{result.message} {result.action}")
        elif isinstance(result, Exception):  # by type: the network, or a bug of ours (logged)
            self.problem.setText(str(describe(result, "check the token with the Hub", "press Next again")))
        else:
            self.problem.setText("")
            if self.w.currentPage() is self:
                self._checked = True
                self.w.next()


class DownloadPage(QWizardPage):
    def __init__(self, wizard: DownloadWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Downloading")
        self.setSubTitle("Closing this window does not stop the download: the status line shows it, and a "
                         "paused or interrupted download resumes where it stopped, even after a restart.")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.detail = _wrapped("Starting…")
        self.note = _wrapped()
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.cancel_button = QPushButton("Cancel download")
        self.pause_button.clicked.connect(self._pause)
        self.resume_button.clicked.connect(self._resume)
        self.cancel_button.clicked.connect(self._cancel)
        buttons = QHBoxLayout()
        for b in (self.pause_button, self.resume_button, self.cancel_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.job: DownloadJob | None = None

    def initializePage(self) -> None:
        assert self.w.variant is not None
        self.setTitle(f"Downloading {self.w.variant.label}")
        job = self.w.host.download_job
        if job is None or job.variant.id != self.w.variant.id or job.state in ("cancelled", "done"):
            job = self.w.host.start_download(self.w.downloader(), self.w.variant)
        self.job = job
        job.progress.connect(self._progress)
        job.finished.connect(self._finished)
        job.failed.connect(self._failed)
        job.stopped.connect(self._stopped)
        self._buttons()

    def cleanupPage(self) -> None:
        self._disconnect()

    def _disconnect(self) -> None:
        if self.job is not None:
            for signal, slot in ((self.job.progress, self._progress), (self.job.finished, self._finished),
                                 (self.job.failed, self._failed), (self.job.stopped, self._stopped)):
                signal.disconnect(slot)
            self.job = None

    def _buttons(self) -> None:
        state = self.job.state if self.job else "idle"
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(state in ("paused", "failed"))
        self.cancel_button.setEnabled(state in ("running", "paused", "failed"))
        self.completeChanged.emit()

    def _progress(self, p: Progress) -> None:
        self.bar.setValue(int(p.fraction * 1000))
        eta = f" · about {_minutes(p.eta_s)} left" if p.eta_s is not None else ""
        self.detail.setText(f"{gb(p.done)} of {gb(p.total)} · {p.speed / 1e6:.1f} MB/s{eta} · "
                            f"file {p.file_index} of {p.file_count}")
        self.note.setText(p.note)

    def _finished(self, path: str) -> None:
        self.bar.setValue(1000)
        self.note.setText(f"Verified (sha256) and placed in {Path(path).parent}.")
        self._buttons()

    def _failed(self, error: EngineError) -> None:
        self.note.setText(f"{error.message} {error.action}")
        self._buttons()

    def _stopped(self, cancelled: bool) -> None:
        self.note.setText("Cancelled; the partial file was deleted." if cancelled
                          else "Paused; the part already fetched is kept.")
        self._buttons()

    def _pause(self) -> None:
        if self.job:
            self.job.pause()

    def _resume(self) -> None:
        if self.job:
            self.job.resume()
            self.note.setText("Resuming…")
            self._buttons()

    def _cancel(self) -> None:
        if self.job:
            self.job.cancel()

    def isComplete(self) -> bool:
        return self.job is not None and self.job.state == "done"


class DonePage(QWizardPage):
    def __init__(self, wizard: DownloadWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Ready")
        self.text = _wrapped()
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addStretch(1)

    def initializePage(self) -> None:
        job = self.w.host.download_job
        path = job.path if job else ""
        self.text.setText(f"The model was verified and is loading now; the status line shows when it is ready.\n\n"
                          f"{path}\n\nThe model library (Model menu) lists it with your other models.")


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
