"""Starts the desktop app: QApplication, the main window, and the model to load."""

from __future__ import annotations

import signal
import sys

from app.gui.bridge import EngineBridge
from app.gui.main_window import MainWindow
from app.gui.qt import QApplication, QIcon, QTimer
from app.paths import app_icon_path, database_path
from app.store import ChatStore
from engine.models import demo_model_path


def run_gui(model: str | None = None, argv: list[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("Nemotron Desk")
    app.setOrganizationName("Nemotron Desk")
    QApplication.setDesktopFileName("io.github.nemotrondesk.NemotronDesk")  # Wayland: the menu entry's icon and name
    icon = app_icon_path()
    if icon is not None:
        QApplication.setWindowIcon(QIcon(str(icon)))
    window = MainWindow(EngineBridge(), ChatStore(database_path()))
    window.show()
    if model is not None:
        window.load_model(model)
    else:
        start_without_model(window)
    _close_on_sigterm(window)
    return int(app.exec())


def start_without_model(window: MainWindow) -> None:
    """The first thing a person sees when no model was named.

    The demo model loads for a try right now (a second; the window stays usable), and on the first
    run with no model on this machine the download wizard opens over it.
    """
    if demo_model_path() is None:
        window.status.setText("No model yet: Model ▸ Download a model… or Open GGUF file…")
    else:
        window.load_model(None)
    window.offer_first_run()


def _close_on_sigterm(window: MainWindow) -> None:
    """A logout or `kill` sends SIGTERM: close the window as its close button would (the settings
    are saved and the engine process ends) instead of dying mid-write.

    Python runs signal handlers only between bytecodes; a timer lets it look while Qt's loop waits.
    """
    signal.signal(signal.SIGTERM, lambda *_: QTimer.singleShot(0, window.close))
    tick = QTimer(window)
    tick.timeout.connect(lambda: None)
    tick.start(250)
