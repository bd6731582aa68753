"""`nemotron-desk serve`: the local OpenAI-compatible server on the same engine.

Listens on 127.0.0.1 unless told otherwise; any other interface is exposed to the network, so the
command warns, and an API key should be set (`--api-key` or NEMOTRON_DESK_API_KEY).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from app.cli.options import add_model_options, load_spec
from app.cli.render import TerminalPrinter
from engine.client import EngineClient

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the model through an OpenAI-compatible HTTP API")
    add_model_options(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("NEMOTRON_DESK_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $NEMOTRON_DESK_API_KEY, else none)")
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
    if args.host not in LOCAL_HOSTS:
        print(f"Warning: listening on {args.host} makes the model reachable from other machines"
              + ("." if args.api_key else ", and no --api-key is set: anyone who can reach it can use it."),
              file=sys.stderr)
    client = EngineClient()
    printer = TerminalPrinter()
    for event in client.load(load_spec(args)):
        printer.handle(event)
    if printer.failed or client.model is None:
        client.close()
        return 1
    names = args.served_model_name or [Path(client.model.path).stem]
    app = create_app(EngineRunner(client), names, client.model.n_ctx, api_key=args.api_key,
                     reasoning_format=args.reasoning_format)
    print(f"Serving {', '.join(names)} at http://{args.host}:{args.port}/v1", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        client.close()
    return 0
