"""The torch backend on demand: says what it will download and how large, then installs it with progress.

Signals: progressed(str what, int done, int total), on the UI thread, while installing.

Planning and downloading block, so each runs in a plain thread; its results and progress cross to the
UI thread through a Handoff (app/gui/handoff.py). Cancel sets a flag the download checks between chunks.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from app.gui.handoff import Handoff
from app.gui.qt import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.paths import runtime_site_packages
from engine.services.runtime_install import (
    DEFAULT_INDEXES,
    TORCH_REQUIREMENTS,
    InstallPlan,
    RuntimeInstallError,
    format_size,
    install,
    plan_install,
)


class TorchRuntimeDialog(QDialog):
    progressed = Signal(str, int, int)

    def __init__(self, parent: QWidget | None = None, indexes: Sequence[str] = DEFAULT_INDEXES,
                 target: Path | None = None, requirements: Sequence[str] = TORCH_REQUIREMENTS) -> None:
        super().__init__(parent)
        self.setWindowTitle("Install the torch backend")
        self.indexes, self.requirements = tuple(indexes), tuple(requirements)
        self.target = target or runtime_site_packages()
        self.plan: InstallPlan | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.text = QLabel("Checking what the torch backend needs for this machine…", self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 0)
        self.buttons = QDialogButtonBox(self)
        self.install_button = QPushButton("Download and install", self)
        self.install_button.setEnabled(False)
        self.buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.install_button.clicked.connect(self._install)
        self.close_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.bar)
        layout.addWidget(self.buttons)
        self.resize(560, 320)
        self.progressed.connect(self._show_progress)
        self.handoff = Handoff(self)
        self._thread = self.handoff.run(lambda: plan_install(self.requirements, self.target, self.indexes),
                                        self._show_plan, "torch-plan")

    def _show_plan(self, plan: InstallPlan | Exception) -> None:
        if isinstance(plan, RuntimeInstallError):
            self._show_result(plan)
            return
        if isinstance(plan, Exception):
            raise plan  # a bug, not a network problem: the crash handler reports it
        self.plan = plan
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        if not plan.wheels:
            self.text.setText("The torch backend is already installed.")
            self.close_button.setText("Close")
            return
        sources = ", ".join(sorted({w.url.split("/")[2] for w in plan.wheels}))
        self.text.setText(
            f"The torch backend (CUDA PyTorch and transformers) is not part of the app: it is "
            f"{format_size(plan.download_bytes)} to download from {sources}, installed into\n{self.target}\n\n"
            + plan.describe())
        self.install_button.setEnabled(True)

    def _install(self) -> None:
        assert self.plan is not None
        plan = self.plan
        self.install_button.setEnabled(False)

        def progress(what: str, done: int, total: int) -> None:  # the install thread
            self.handoff.post(lambda: self.progressed.emit(what, done, total))

        def job() -> None:
            try:
                install(plan, self.target, progress, self._cancel.is_set)
            except OSError as exc:
                raise RuntimeInstallError(f"Installing into {self.target} failed: {exc}.",
                                          "Check the free disk space and try again.") from exc

        self._thread = self.handoff.run(job, self._installed, "torch-install")

    def _installed(self, result: object) -> None:
        if isinstance(result, RuntimeInstallError):
            self._show_result(result)
        elif isinstance(result, Exception):
            raise result
        else:
            self._show_result(None)

    def _show_progress(self, what: str, done: int, total: int) -> None:
        if what.startswith("Downloading"):
            self.text.setText(f"{what}\n{format_size(done)} of {format_size(total)}")
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * done / total) if total else 0)
        else:
            self.text.setText(what)

    def _show_result(self, error: RuntimeInstallError | None) -> None:
        self.bar.setRange(0, 1)
        self.close_button.setText("Close")
        if error is None:
            self.bar.setValue(1)
            self.text.setText("The torch backend is installed. Restart Nemotron Desk to use it.")
        else:
            self.text.setText(f"{error.message}\n{error.action}")

    def reject(self) -> None:
        """Cancel stops a download between chunks; what was fully downloaded is kept for a retry."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(10)
        super().reject()
