"""What to tell a person about an exception, by its type: a network problem (check the connection),
an EngineError (its own message and action), or a bug of ours (logged with its traceback; the
person gets a short message and where the log is). Qt-free: the CLI and the GUI share it.
"""

from __future__ import annotations

import datetime
import errno
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from app.paths import log_path
from engine.errors import EngineError

BUG_MESSAGE = "Something went wrong inside Nemotron Desk"
_write_lock = threading.Lock()


@dataclass(frozen=True)
class Failure:
    message: str
    action: str = ""
    bug: bool = False  # a bug of ours: its traceback is in the log

    def __str__(self) -> str:
        return f"{self.message} {self.action}".strip()


def describe(exc: BaseException, doing: str, retry: str = "try again") -> Failure:
    """`doing` completes "Could not ...", e.g. "read the file list from the Hub"; `retry` what to do
    once the connection is back."""
    if isinstance(exc, EngineError):
        return Failure(exc.message, exc.action)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return Failure(f"Could not {doing}: the disk is full ({exc.filename or exc}).",
                       f"Free some disk space and {retry}.")
    if is_network_error(exc):
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        return Failure(f"Could not {doing}: {type(exc).__name__}{': ' + detail if detail else ''}.",
                       f"Check the connection (or HF_ENDPOINT) and {retry}.")
    path = log_exception(type(exc), exc, exc.__traceback__, f"while trying to {doing}")
    return Failure(f"{BUG_MESSAGE} ({type(exc).__name__}).",
                   f"The details are in {path}; please report them with that file.", bug=True)


def is_network_error(exc: BaseException) -> bool:
    """A failure of the network or of a server's answer: httpx (or httpx2, which huggingface_hub may
    use instead), httpcore, huggingface_hub, requests, or the OS (sockets, DNS, TLS and timeouts are
    OSErrors). The libraries are looked up only if already loaded."""
    if isinstance(exc, OSError):
        return True
    kinds: list[type[BaseException]] = []
    for module, names in (("httpx", ("HTTPError", "InvalidURL", "StreamError")),
                          ("httpx2", ("HTTPError", "InvalidURL", "StreamError")),
                          ("httpcore", ("NetworkError", "TimeoutException", "ProtocolError")),
                          ("huggingface_hub.errors", ("HfHubHTTPError", "OfflineModeIsEnabled")),
                          ("requests", ("RequestException",))):
        loaded = sys.modules.get(module)
        kinds += [kind for name in names if isinstance(kind := getattr(loaded, name, None), type)]
    return isinstance(exc, tuple(kinds))


def log_exception(kind: type[BaseException], value: BaseException, tb: TracebackType | None,
                  where: str = "") -> Path:
    """Append the traceback, with the time and `where`, to the app's log; return the log's path."""
    path = log_path()
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    text = "".join(traceback.format_exception(kind, value, tb))
    entry = f"--- {stamp} {BUG_MESSAGE}{' ' + where if where else ''}\n{text}\n"
    try:
        with _write_lock, path.open("a", encoding="utf-8") as log:
            log.write(entry)
    except OSError:
        print(entry, file=sys.stderr)  # the log cannot be written: the terminal, if any, gets it
    return path
