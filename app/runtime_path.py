"""Puts the runtimes installed on demand (the torch backend, see engine/services/runtime_install.py) on sys.path.

They live in the user's data folder, not in the app's own folder, so a packaged app (whose folder
is read-only and replaced on upgrade) can gain them. They are appended: the app's own modules win.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.paths import runtime_site_packages


def add_installed_runtimes() -> Path | None:
    """Add the on-demand runtime folder to sys.path when it exists; returns it (None when absent)."""
    folder = runtime_site_packages()
    if not folder.is_dir():
        return None
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    return folder
