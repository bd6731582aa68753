"""Starts the desktop app: QApplication, one instance per data folder, the main window, the model to load."""

from __future__ import annotations

import signal
import sys

from app.gui.bridge import EngineBridge
from app.gui.crash import install_crash_handler
from app.gui.main_window import MainWindow
from app.gui.qt import QApplication, QIcon, QTimer
from app.gui.single_instance import InstanceServer, ask_first_instance, server_name
from app.paths import app_icon_path, data_dir, database_path
from app.store import ChatStore, StoreInUse
from engine.formats.demo import demo_model_path

READ_ONLY_NOTE = ("Read-only: another Nemotron Desk is using this data folder ({folder}) and did not answer. "
                  "Chats can be read here, not changed. Close that one (or end it), then start again to chat.")


def run_gui(model: str | None = None, argv: list[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("Nemotron Desk")
    app.setOrganizationName("Nemotron Desk")
    QApplication.setDesktopFileName("io.github.nemotrondesk.NemotronDesk")  # Wayland: the menu entry's icon and name
    icon = app_icon_path()
    if icon is not None:
        QApplication.setWindowIcon(QIcon(str(icon)))
    crashes = install_crash_handler()  # from here on, an uncaught exception is logged and shown briefly
    window = open_window(model)
    crashes.window = window
    if window is None:
        print("Nemotron Desk is already open for this data folder: its window was brought forward.",
              file=sys.stderr)
        return 0
    _close_on_sigterm(window)
    return int(app.exec())


def open_window(model: str | None = None) -> MainWindow | None:
    """The window for this data folder, shown; None when another instance owns the folder and came forward.
    When that instance does not answer, the window opens read-only and says so (no model is loaded)."""
    store = open_store()
    if store is None:
        return None
    window = MainWindow(EngineBridge(), store)
    window.show()
    if store.read_only:
        window.show_read_only(READ_ONLY_NOTE.format(folder=data_dir()))
        return window
    listen_for_second_starts(window)
    if model is not None:
        window.load_model(model)
    else:
        start_without_model(window)
    return window


def open_store() -> ChatStore | None:
    """The data folder's chats: writable when no other instance has them; None when the instance that has
    them brought its window forward (this start has nothing to do); read-only when it did not answer."""
    try:
        return ChatStore(database_path())
    except StoreInUse:
        if ask_first_instance(server_name(data_dir())):
            return None
        return ChatStore(database_path(), read_only=True)


def listen_for_second_starts(window: MainWindow) -> InstanceServer:
    """Bring `window` forward when the app is started again for the same data folder."""
    server = InstanceServer(server_name(data_dir()), window)
    server.showRequested.connect(window.bring_forward)
    server.listen()
    return server


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
