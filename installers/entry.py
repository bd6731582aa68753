"""Entry point of the packaged (PyInstaller) app: the same `nemotron-desk` command as the pip install.

Two things only a frozen app needs, in this order:
1. A windowed build (Windows) starts with `sys.stdout` and `sys.stderr` set to None; anything that
   prints would raise. They go to the app's log file (app/paths.py) instead.
2. `multiprocessing.freeze_support()`: the engine's worker process is this same executable started
   again (spawn); in that child this call runs the worker and never returns.
The optional runtimes installed on demand go on `sys.path` in `app.cli.main`, for both kinds of install.
"""

from __future__ import annotations

import multiprocessing
import sys


def _give_streams_a_home() -> None:
    if sys.stdout is not None and sys.stderr is not None:
        return
    from app.paths import log_path

    log = open(log_path(), "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - open for the process's life
    if sys.stdout is None:
        sys.stdout = log
    if sys.stderr is None:
        sys.stderr = log


def main() -> int:
    _give_streams_a_home()
    multiprocessing.freeze_support()
    from app.cli.main import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
