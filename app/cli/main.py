"""`nemotron-desk` command line: the entry point and its subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import bench, chat, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemotron-desk",
        description="Run NVIDIA Nemotron reasoning models on your own machine.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chat.add_parser(sub)
    bench.add_parser(sub)
    serve.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # No GUI yet: a bare `nemotron-desk` starts an interactive chat with the default model.
        args = parser.parse_args(["chat", *(argv or sys.argv[1:])])
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
