"""`nemotron-desk gui` (and a bare `nemotron-desk` where a screen is available): the desktop app."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gui", help="open the desktop app (the default when a screen is available)")
    p.add_argument("-m", "--model", metavar="PATH", help="GGUF model to load (default: the demo model)")
    p.set_defaults(run=run)


def can_show_gui() -> bool:
    """PySide6 is installed and there is a screen (or an explicit Qt platform, e.g. offscreen)."""
    if importlib.util.find_spec("PySide6") is None:
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                    or os.environ.get("QT_QPA_PLATFORM"))
    return True


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("PySide6") is None:
        print("Error: the desktop app needs PySide6.\nInstall it with: pip install PySide6-Essentials",
              file=sys.stderr)
        return 1
    from app.gui.app import run_gui

    return run_gui(args.model)
