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
