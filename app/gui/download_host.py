"""The main window's side of downloads: Model menu entries, the first-run offer, the running
DownloadJob (it outlives the wizard) and its line in the status bar; a finished download is loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.gui.qt import QAction, QLabel, QSettings, Qt
from app.gui.recent_models import remember_model
from app.paths import data_dir
from engine.errors import EngineError
from engine.services.hub.hardware import gb

if TYPE_CHECKING:  # huggingface_hub and httpx load when a download or the library is opened, not at start
    from app.gui.download_wizard import DownloadWizard
    from app.gui.downloads import DownloadJob
    from app.gui.model_library import ModelLibraryDialog
    from engine.services.hub.catalog import Variant
    from engine.services.hub.download import Downloader, Progress
    from engine.services.hub.library import Library

FIRST_RUN_KEY = "downloads/offered"


class DownloadsMixin:
    """Mixed into MainWindow, which provides statusBar(), menus and load_model()."""

    download_job: DownloadJob | None = None
    wizard: DownloadWizard | None = None
    download_label: QLabel

    def _downloads_setup(self, menu: Any) -> None:
        self.download_label = QLabel("", self)  # type: ignore[call-overload]
        self.statusBar().addPermanentWidget(self.download_label)  # type: ignore[attr-defined]
        get = QAction("Download a model…", self)  # type: ignore[call-overload]
        get.triggered.connect(self.open_download_wizard)
        library = QAction("Model library…", self)  # type: ignore[call-overload]
        library.triggered.connect(self.open_library)
        menu.addAction(get)
        menu.addAction(library)
        self.bridge.loaded.connect(remember_model)  # type: ignore[attr-defined]  # the library lists it

    def library(self) -> Library:
        from engine.services.hub.cache import default_cache_dir
        from engine.services.hub.library import Library

        return Library(default_cache_dir(), data_dir())

    def open_download_wizard(self) -> DownloadWizard:
        from app.gui.download_wizard import DownloadWizard

        if self.wizard is not None:  # already open: bring it forward
            self.wizard.raise_()
            return self.wizard
        self.wizard = DownloadWizard(self, self)  # type: ignore[arg-type]
        self.wizard.finished.connect(self._wizard_closed)
        self.wizard.show()
        return self.wizard

    def _wizard_closed(self, _result: int) -> None:
        if self.wizard is not None:
            self.wizard.deleteLater()
            self.wizard = None

    def open_library(self) -> ModelLibraryDialog:
        from app.gui.model_library import ModelLibraryDialog

        dialog = ModelLibraryDialog(self.library(), self, self)  # type: ignore[arg-type]
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # and its connections with it
        self.bridge.loaded.connect(dialog.model_loaded)  # type: ignore[attr-defined]
        self.bridge.failed.connect(dialog.load_failed)  # type: ignore[attr-defined]
        dialog.show()
        return dialog

    def offer_first_run(self) -> bool:
        """No model on this machine yet and never offered: open the wizard (the demo model stays usable)."""
        settings = QSettings()
        if settings.value(FIRST_RUN_KEY, False, type=bool) or self.library().models():
            return False
        settings.setValue(FIRST_RUN_KEY, True)
        self.open_download_wizard()
        return True

    def start_download(self, downloader: Downloader, variant: Variant) -> DownloadJob:
        from app.gui.downloads import DownloadJob

        old = self.download_job
        if old is not None and old.running:
            old.pause()
            old.wait(5)
        job = DownloadJob(downloader, variant, self)  # type: ignore[arg-type]
        job.progress.connect(self._download_progress)
        job.finished.connect(self._download_finished)
        job.failed.connect(self._download_failed)
        job.stopped.connect(self._download_stopped)
        self.download_job = job
        job.start()
        return job

    def _download_progress(self, p: Progress) -> None:
        assert self.download_job is not None
        eta = f" · ETA {p.eta_s / 60:.0f} min" if p.eta_s is not None and p.eta_s >= 60 else ""
        self.download_label.setText(f"Downloading {self.download_job.variant.quant}: {p.fraction * 100:.0f}% · "
                                    f"{gb(p.done)}/{gb(p.total)} · {p.speed / 1e6:.1f} MB/s{eta}")

    def _download_finished(self, path: str) -> None:
        assert self.download_job is not None
        self.download_label.setText(f"Downloaded {self.download_job.variant.quant} (verified)")
        self.load_model(path)  # type: ignore[attr-defined]

    def _download_failed(self, error: EngineError) -> None:
        self.download_label.setText(f"Download stopped: {error.message}")
        self.download_label.setToolTip(error.action)

    def _download_stopped(self, cancelled: bool) -> None:
        self.download_label.setText("Download cancelled" if cancelled else "Download paused (Model → Download…)")

    def _downloads_close(self) -> None:
        """On quit: stop at the next chunk; the partial file stays for the next start."""
        if self.download_job is not None and self.download_job.running:
            self.download_job.pause()
            self.download_job.wait(5)
