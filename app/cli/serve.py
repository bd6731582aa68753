"""`nemotron-desk serve`: the local OpenAI-compatible server on the same engine.

Listens on 127.0.0.1 unless told otherwise; any other interface is exposed to the network, so the
command warns, and an API key should be set: from a file (`--api-key-file`) or the environment
(NEMOTRON_DESK_API_KEY), which other users cannot read; `--api-key KEY` works but is hidden from the
process title only once the program runs. It answers only to its own host names (docs/security.md).
SIGTERM or Ctrl-C stop it within SHUTDOWN_GRACE_S, even while an answer is being generated.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

from app.cli.options import API_KEY_ENV, add_model_options, load_spec
from app.cli.render import TerminalPrinter
from app.server.runner import SHUTDOWN_GRACE_S
from engine.client import EngineClient

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the model through an OpenAI-compatible HTTP API")
    add_model_options(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000)
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key-file", metavar="PATH", type=Path,
                     help="require 'Authorization: Bearer KEY', KEY being this file's content (safe: other "
                          f"users cannot see it); or set ${API_KEY_ENV}")
    key.add_argument("--api-key", metavar="KEY",
                     help="the key itself; other users can read a command line, and it stays in the shell's "
                          f"history: prefer --api-key-file or ${API_KEY_ENV} (default: that variable, else no key)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="another host name clients may use for this server (repeatable); it always answers to "
                        "localhost, 127.0.0.1, [::1], IP addresses and the --host name; '*' turns the check "
                        "off (only behind a proxy that checks the name)")
    p.add_argument("--served-model-name", action="append", default=[], metavar="NAME",
                   help="model name(s) clients use (repeatable; default: the model file's name)")
    p.add_argument("--reasoning-format", choices=("split", "none"), default="split",
                   help="split: reasoning in reasoning_content, as vLLM with the nano_v3 reasoning parser "
                        "(default); none: reasoning left in content with its <think> markers, as a server "
                        "without a reasoning parser (a request may set its own reasoning_format)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn  # deferred: only this subcommand needs the HTTP stack

    from app.server.http import create_app
    from app.server.runner import EngineRunner

    if not 0 < args.port < 65536:
        print(f"Error: --port must be 1..65535, not {args.port}.", file=sys.stderr)
        return 2
    try:
        api_key = read_api_key(args)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    if args.api_key is not None:
        print(f"Warning: a key given with --api-key was readable by other users while the server started, and "
              f"stays in your shell's history. Use --api-key-file or ${API_KEY_ENV}.", file=sys.stderr)
    if args.host not in LOCAL_HOSTS:
        print(f"Warning: listening on {args.host} makes the model reachable from other machines"
              + ("." if api_key else ", and no API key is set: anyone who can reach it can use it."),
              file=sys.stderr)
    client = EngineClient()
    printer = TerminalPrinter()
    for event in client.load(load_spec(args)):
        printer.handle(event)
    if printer.failed or client.model is None:
        client.close()
        return 1
    names = args.served_model_name or [Path(client.model.path).stem]
    # At shutdown the engine ends at once: an answer still running must not hold the exit up.
    app = create_app(EngineRunner(client), names, client.model.n_ctx, api_key=api_key, bound_host=args.host,
                     allowed_hosts=args.allowed_host, on_shutdown=client.terminate,
                     reasoning_format=args.reasoning_format)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    try:
        sock = listening_socket(args.host, args.port, config.backlog)
    except OSError as exc:
        client.close()
        print(f"Error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}). "
              "Another program may be using the port: choose another with --port.", file=sys.stderr)
        return 1
    print(f"Serving {', '.join(names)} at http://{args.host}:{args.port}/v1", file=sys.stderr)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        client.close()
    return 0


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A socket already listening, so that whoever reads the "Serving ... at" line can connect at once
    (uvicorn would bind only once its loop runs; connections made meanwhile wait in the backlog)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def read_api_key(args: argparse.Namespace) -> str | None:
    """The key from --api-key-file, --api-key or the environment; ValueError says what is wrong."""
    key: str | None
    if args.api_key_file is not None:
        try:
            key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the API key file {args.api_key_file}: {exc}.") from exc
        if not key:
            raise ValueError(f"the API key file {args.api_key_file} is empty; write the key into it.")
    else:
        key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    if key is not None and (not key or not key.isprintable() or any(c.isspace() for c in key)):
        raise ValueError("the API key must be one line of visible characters, without spaces.")
    return key
