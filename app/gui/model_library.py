"""The model library: downloaded (Hugging Face cache), imported and recently used models, by name,
with backend, size and location; load, remove, import a GGUF file or a Hugging Face folder.

Its message follows a load it started ("Loading…", then "Loaded" or what went wrong) through
`model_loaded` and `load_failed`, which the window connects to its engine's signals."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from app.gui.qt import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from app.gui.recent_models import forget_model, recent_models
from app.gui.tables import row_table
from engine.api import Error, ModelInfo
from engine.errors import EngineError
from engine.services.hub.hardware import gb
from engine.services.hub.library import Library, LocalModel


class ModelLoader(Protocol):
    def load_model(self, path: str | None) -> None: ...


class ModelLibraryDialog(QDialog):
    COLUMNS = ("Model", "Backend", "Size", "Location")

    def __init__(self, library: Library, loader: ModelLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model library")
        self.library = library
        self.loader = loader
        self.models: list[LocalModel] = []
        self._loading = False  # a load started here is under way
        self.table = row_table(self.COLUMNS, stretch_column=3)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        for text, slot in (("Load", self.load_selected), ("Remove…", self.remove_selected),
                           ("Import GGUF file…", self._import_file), ("Import folder…", self._import_folder),
                           ("Close", self.accept)):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, s=slot: s())
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.resize(900, 400)
        self.refresh()

    def refresh(self) -> None:
        self.models = self.library.models()
        self.models += self._recent(self.models)
        self.table.setRowCount(len(self.models))
        for row, m in enumerate(self.models):
            size = "missing" if m.missing else gb(m.size_bytes)
            for col, text in enumerate((m.name, m.backend, size, str(m.path))):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{m.name} ({m.origin})\n{m.path}")
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        if not self.models:
            self.message.setText("No models yet: download one (Model → Download a model…) or import a file.")

    @staticmethod
    def _recent(listed: list[LocalModel]) -> list[LocalModel]:
        """Models loaded lately that the library does not list otherwise (opened from a file)."""
        known = {str(m.path) for m in listed}
        out = []
        for r in recent_models():
            if r.path in known:
                continue
            path = Path(r.path)
            size = path.stat().st_size if path.is_file() else 0
            out.append(LocalModel(r.path, r.name or path.name, path, r.backend, size, "recently used",
                                  missing=not path.exists()))
        return out

    def model_loaded(self, info: ModelInfo) -> None:
        self._loading = False
        self.refresh()
        self.message.setText(f"Loaded {info.name}.")

    def load_failed(self, error: Error) -> None:
        if self._loading:  # not an answer's error
            self._loading = False
            self.message.setText(f"Loading failed: {error}")

    def selected(self) -> LocalModel | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows else None

    def select(self, model_id: str) -> None:
        self.table.selectRow([m.id for m in self.models].index(model_id))

    def load_selected(self) -> None:
        model = self.selected()
        if model is not None:
            self.loader.load_model(str(model.path))
            self._loading = True
            self.message.setText(f"Loading {model.name}…")

    def remove_selected(self, confirm: bool = True) -> None:
        model = self.selected()
        if model is None:
            return
        what = ("forget it (the file itself stays)" if model.origin in ("imported", "recently used")
                else f"delete {gb(model.size_bytes)} from the Hugging Face cache")
        if confirm and QMessageBox.question(self, "Remove model", f"Remove {model.name}: {what}?") \
                != QMessageBox.StandardButton.Yes:
            return
        forget_model(str(model.path))
        if model.origin != "recently used":
            self.library.remove(model)
        self.refresh()
        self.message.setText(f"Removed {model.name}.")

    def import_path(self, path: Path) -> None:
        try:
            model = self.library.import_path(path)
        except EngineError as exc:
            self.message.setText(f"{exc.message} {exc.action}")
            return
        self.refresh()
        self.message.setText(f"Imported {model.name} ({model.backend}).")

    def _import_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.import_path(Path(path))

    def _import_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Import a Hugging Face model folder", str(Path.home()))
        if path:
            self.import_path(Path(path))
