"""Keeping secrets given on the command line out of the process title (`ps`, /proc/PID/cmdline).

Any user of the machine can read every process's command line. A key passed as `--api-key KEY` is
replaced by `***` in the title as the first thing the program does; it was still readable for the
moment before that, and it stays in the shell's history, which is why `--api-key-file` and the
environment are the safe ways to give it.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Options whose value is a secret.
SECRET_OPTIONS = ("--api-key",)
HIDDEN = "***"


def _is_secret(option: str) -> bool:
    # argparse takes unambiguous prefixes too: `--api KEY` is `--api-key KEY` where nothing else fits.
    return option.startswith("--") and len(option) > 2 and any(s.startswith(option) for s in SECRET_OPTIONS)


def redacted(argv: Sequence[str]) -> list[str]:
    """`argv` with the value of every secret option replaced (`--api-key K` and `--api-key=K`)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        option, equals, _ = arg.partition("=")
        if hide_next:
            out.append(HIDDEN)
            hide_next = False
        elif arg == "--":
            out.extend(argv[len(out):])
            break
        elif equals and _is_secret(option):
            out.append(f"{option}={HIDDEN}")
        else:
            out.append(arg)
            hide_next = _is_secret(arg)
    return out


def hide_secrets(argv: Sequence[str]) -> bool:
    """Rewrite this process's title without the secrets in `argv`; True when there were any."""
    clean = redacted(argv)
    if clean == list(argv):
        return False
    import setproctitle  # only when there is something to hide

    setproctitle.setproctitle(" ".join(clean))
    return True
