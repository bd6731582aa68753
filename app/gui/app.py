"""Starts the desktop app: QApplication, the main window, and the model to load."""

from __future__ import annotations

import sys

from app.gui.bridge import EngineBridge
from app.gui.load_dialog import saved_spec
from app.gui.main_window import MainWindow
from app.gui.qt import QApplication
from app.paths import database_path
from app.store import ChatStore


def run_gui(model: str | None = None, argv: list[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("Nemotron Desk")
    app.setOrganizationName("Nemotron Desk")
    window = MainWindow(EngineBridge(), ChatStore(database_path()), saved_spec(model))
    window.show()
    return int(app.exec())
