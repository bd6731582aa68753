"""CrashHandler: the one place an uncaught exception ends up, whichever thread raised it and also
in a Qt slot (PySide6 hands those to sys.excepthook). It writes the traceback to the log, shows a
short message with where the log is, and offers to copy it; the app keeps running.

Signals:
    crashed(str summary, str path)   an uncaught exception was logged (emitted on the UI thread)
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

from app.failures import BUG_MESSAGE, log_exception
from app.gui.qt import QGuiApplication, QMessageBox, QObject, Qt, QWidget, Signal, Slot


class CrashHandler(QObject):
    crashed = Signal(str, str)
    _reported = Signal(str, str, str)  # summary, log path, traceback text: from any thread to this one

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = parent
        self.box: QMessageBox | None = None
        self.last_report = ""
        self._previous: tuple[Any, Any] | None = None
        self._reported.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> CrashHandler:
        self._previous = (sys.excepthook, threading.excepthook)
        sys.excepthook = self.handle
        threading.excepthook = self._handle_thread
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous
            self._previous = None

    def handle(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None,
               thread: str = "") -> None:
        if issubclass(kind, KeyboardInterrupt | SystemExit):  # Ctrl-C and exit() are no crash
            sys.__excepthook__(kind, value, tb)
            return
        try:
            where = f"in the thread {thread!r}" if thread else "in the app"
            path = log_exception(kind, value, tb, where)
            import traceback

            text = "".join(traceback.format_exception(kind, value, tb))
            self._reported.emit(f"{kind.__name__}: {str(value).splitlines()[0][:200] if str(value) else ''}",
                                str(path), text)
        except Exception:  # the handler itself failed: Python's own report, at least
            sys.__excepthook__(kind, value, tb)

    def _handle_thread(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        self.handle(args.exc_type, args.exc_value, args.exc_traceback, args.thread.name if args.thread else "")

    @Slot(str, str, str)
    def _show(self, summary: str, path: str, text: str) -> None:
        self.last_report = f"Nemotron Desk {BUG_MESSAGE.lower()}\n{text}"
        self.crashed.emit(summary, path)
        if self.box is not None and self.box.isVisible():  # one box at a time: it says the newest
            self.box.setInformativeText(self._details(summary, path))
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "Nemotron Desk", f"{BUG_MESSAGE}.",
                          QMessageBox.StandardButton.Close, self.window)
        box.setInformativeText(self._details(summary, path))
        copy = box.addButton("Copy the log", QMessageBox.ButtonRole.ActionRole)
        copy.clicked.disconnect()  # an action button closes the box by default: copying should not
        copy.clicked.connect(self.copy_report)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.open()
        self.box = box

    @staticmethod
    def _details(summary: str, path: str) -> str:
        return (f"{summary}\n\nThe app goes on; what you were doing may not have finished. The details are "
                f"in {path}: please report them with that file.")

    def copy_report(self) -> None:
        QGuiApplication.clipboard().setText(self.last_report)


def install_crash_handler(window: QWidget | None = None) -> CrashHandler:
    """At the GUI's start: every uncaught exception from now on is logged and shown briefly."""
    return CrashHandler(window).install()
