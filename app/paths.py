"""Where the app keeps its files, defined once. NEMOTRON_DESK_DATA_DIR overrides (tests, portable use)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "nemotron-desk"


def data_dir() -> Path:
    override = os.environ.get("NEMOTRON_DESK_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path() -> Path:
    return data_dir() / "conversations.sqlite3"


def log_dir() -> Path:
    """The platform's log folder (in the data folder when NEMOTRON_DESK_DATA_DIR is set)."""
    override = os.environ.get("NEMOTRON_DESK_DATA_DIR")
    path = Path(override) / "logs" if override else Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path() -> Path:
    """The app's log: the tracebacks of its own bugs, and what a windowed packaged app would have
    printed (it has no terminal)."""
    return log_dir() / "nemotron-desk.log"


def runtime_site_packages() -> Path:
    """Where optional runtimes installed on demand (the torch backend) are unpacked. Not created here."""
    return data_dir() / "runtime" / "site-packages"


def app_icon_path() -> Path | None:
    """The window icon: resources/icons next to app/, as in a checkout and in the packaged app
    (which carries that folder); a wheel install has none and Qt's default icon is used."""
    icon = Path(__file__).resolve().parent.parent / "resources" / "icons" / "nemotron-desk-256.png"
    return icon if icon.is_file() else None
