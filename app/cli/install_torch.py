"""`nemotron-desk install-torch`: the torch backend from a terminal (a DGX Spark over SSH, a server).

The same installer as the app's Model menu (engine/services/runtime_install.py): it lists what it will
download and how large, asks, then downloads with progress, checks every file and unpacks them into
the user's data folder, where the app finds them at its next start.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.paths import runtime_site_packages

# engine.services.runtime_install (packaging, urllib) is imported when the command runs, not at every start.


def add_parser(sub: Any) -> None:
    p = sub.add_parser("install-torch", help="download and install the torch backend (CUDA PyTorch, transformers)")
    p.add_argument("--index-url", action="append", default=[], metavar="URL",
                   help="package index to read, in order (repeatable; default: PyTorch's CUDA 13 index, then PyPI)")
    p.add_argument("--package", action="append", default=[], metavar="REQUIREMENT",
                   help="what to install (repeatable; default: torch, transformers and accelerate)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask before downloading")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.services.runtime_install import (
        DEFAULT_INDEXES,
        TORCH_REQUIREMENTS,
        RuntimeInstallError,
        install,
        plan_install,
    )

    target = runtime_site_packages()
    indexes = args.index_url or list(DEFAULT_INDEXES)
    print(f"Checking what the torch backend needs from {', '.join(indexes)} …", file=sys.stderr)
    try:
        plan = plan_install(args.package or TORCH_REQUIREMENTS, target, indexes)
        if not plan.wheels:
            print("The torch backend is already installed.", file=sys.stderr)
            return 0
        print(f"To download, into {target}:\n{plan.describe()}", file=sys.stderr)
        if not args.yes and not _confirmed():
            print("Nothing was downloaded.", file=sys.stderr)
            return 1
        install(plan, target, _Progress())
    except RuntimeInstallError as exc:
        print(f"Error: {exc.message}\n{exc.action}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopped; what was downloaded completely is kept for the next try.", file=sys.stderr)
        return 130
    print("The torch backend is installed; the app uses it from its next start.", file=sys.stderr)
    return 0


def _confirmed() -> bool:
    if not sys.stdin.isatty():
        print("Not a terminal: add --yes to download without asking.", file=sys.stderr)
        return False
    return input("Download and install? [y/N] ").strip().lower() in ("y", "yes")


class _Progress:
    """One line per file and per tenth of it: readable in a terminal and in a log."""

    def __init__(self) -> None:
        self._last = ("", -1)

    def __call__(self, what: str, done: int, total: int) -> None:
        tenth = 10 * done // total if total else 0
        if (what, tenth) != self._last:
            self._last = (what, tenth)
            from engine.services.runtime_install import format_size

            sizes = f"  {format_size(done)} of {format_size(total)}" if what.startswith("Downloading") else ""
            print(f"{what}{sizes}", file=sys.stderr)
