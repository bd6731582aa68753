"""The one place Qt is imported from; the rest of app/gui imports Qt names from here."""

from __future__ import annotations

from PySide6.QtCore import (
    Property,
    QObject,
    QSettings,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QDesktopServices, QFont, QGuiApplication, QKeySequence, QPalette, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "Property", "QAction", "QApplication", "QCheckBox", "QComboBox", "QDesktopServices", "QFileDialog", "QFont",
    "QFrame", "QGuiApplication", "QHBoxLayout", "QKeySequence", "QLabel", "QMainWindow", "QMessageBox",
    "QObject", "QPalette", "QPlainTextEdit", "QPushButton", "QScrollArea", "QSettings", "QSize", "QSizePolicy",
    "QSlider", "QTextBrowser", "QTextCursor", "QTimer", "QToolButton", "QUrl", "QVBoxLayout", "QWidget", "Qt",
    "Signal", "Slot",
]
