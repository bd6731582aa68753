"""Downloads: the window's side of model downloads, composed by the main window.

It adds the Model menu entries, makes the first-run offer, owns the running DownloadJob (it outlives
the wizard) and its line in the status bar, and hands a finished download to `load_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.gui.qt import QAction, QLabel, QMenu, QObject, QSettings, Qt, QWidget
from app.gui.recent_models import remember_model
from app.paths import data_dir
from engine.errors import EngineError
from engine.services.hub.hardware import gb

if TYPE_CHECKING:  # huggingface_hub and httpx load when a download or the library is opened, not at start
    from app.gui.bridge import EngineBridge
    from app.gui.download_wizard import DownloadWizard
    from app.gui.downloads import DownloadJob
    from app.gui.model_library import ModelLibraryDialog
    from engine.services.hub.catalog import Variant
    from engine.services.hub.download import Downloader, Progress
    from engine.services.hub.library import Library

FIRST_RUN_KEY = "downloads/offered"


class Downloads(QObject):
    def __init__(self, window: QWidget, label: QLabel, load_model: Callable[[str | None], None],
                 bridge: EngineBridge) -> None:
        super().__init__(window)
        self.window = window
        self.bridge = bridge
        bridge.loaded.connect(remember_model)  # the library lists what was used
        self.label = label
        self.load_model = load_model
        self.download_job: DownloadJob | None = None
        self.wizard: DownloadWizard | None = None

    def add_actions(self, menu: QMenu) -> None:
        get = QAction("&Download a model…", menu)
        get.triggered.connect(self.open_download_wizard)
        library = QAction("Model &library…", menu)
        library.triggered.connect(self.open_library)
        menu.addAction(get)
        menu.addAction(library)

    def library(self) -> Library:
        from engine.services.hub.cache import default_cache_dir
        from engine.services.hub.library import Library

        return Library(default_cache_dir(), data_dir())

    def open_download_wizard(self) -> DownloadWizard:
        from app.gui.download_wizard import DownloadWizard

        if self.wizard is not None:  # already open: bring it forward
            self.wizard.raise_()
            return self.wizard
        self.wizard = DownloadWizard(self, self.window)
        self.wizard.finished.connect(self._wizard_closed)
        self.wizard.show()
        return self.wizard

    def _wizard_closed(self, _result: int) -> None:
        if self.wizard is not None:
            self.wizard.deleteLater()
            self.wizard = None

    def open_library(self) -> ModelLibraryDialog:
        from app.gui.model_library import ModelLibraryDialog

        dialog = ModelLibraryDialog(self.library(), self, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # and its connections with it
        self.bridge.loaded.connect(dialog.model_loaded)
        self.bridge.failed.connect(dialog.load_failed)
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
        job = DownloadJob(downloader, variant, self)
        job.progress.connect(self._progress)
        job.finished.connect(self._finished)
        job.failed.connect(self._failed)
        job.stopped.connect(self._stopped)
        self.download_job = job
        job.start()
        return job

    def _progress(self, p: Progress) -> None:
        assert self.download_job is not None
        eta = f" · ETA {p.eta_s / 60:.0f} min" if p.eta_s is not None and p.eta_s >= 60 else ""
        self.label.setText(f"Downloading {self.download_job.variant.quant}: {p.fraction * 100:.0f}% · "
                           f"{gb(p.done)}/{gb(p.total)} · {p.speed / 1e6:.1f} MB/s{eta}")

    def _finished(self, path: str) -> None:
        assert self.download_job is not None
        self.label.setText(f"Downloaded {self.download_job.variant.quant} (verified)")
        self.load_model(path)

    def _failed(self, error: EngineError) -> None:
        self.label.setText(f"Download stopped: {error.message}")
        self.label.setToolTip(error.action)

    def _stopped(self, cancelled: bool) -> None:
        self.label.setText("Download cancelled" if cancelled else "Download paused (Model → Download…)")

    def close(self) -> None:
        """On quit: stop at the next chunk; the partial file stays for the next start."""
        if self.download_job is not None and self.download_job.running:
            self.download_job.pause()
            self.download_job.wait(5)
