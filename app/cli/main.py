"""`nemotron-desk` command line: the entry point and its subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import bench, chat, gui, install_torch, models, serve
from app.cli.proctitle import hide_secrets
from app.runtime_path import add_installed_runtimes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemotron-desk",
        description="Run NVIDIA Nemotron reasoning models on your own machine.",
    )
    parser.add_argument("--self-test", action="store_true",
                        help="check the installation end to end (demo model, engine process) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui.add_parser(sub)
    chat.add_parser(sub)
    bench.add_parser(sub)
    serve.add_parser(sub)
    models.add_parser(sub)
    install_torch.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        hide_secrets(sys.argv)  # first of all: `ps` must not show a key given as --api-key
    parser = build_parser()
    args = parser.parse_args(argv)
    add_installed_runtimes()
    if args.self_test:
        from app.cli import self_test

        return self_test.run()
    if args.command is None:
        # A bare `nemotron-desk` opens the desktop app; without a screen, the terminal chat.
        if gui.can_show_gui():
            args = parser.parse_args(["gui"])
        else:
            print("No screen found (DISPLAY is not set): starting the terminal chat.", file=sys.stderr)
            args = parser.parse_args(["chat"])
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
