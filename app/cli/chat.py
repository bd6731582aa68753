"""`nemotron-desk chat`: one prompt (-p) or an interactive multi-turn chat in the terminal.

Ctrl-C during an answer cancels the answer (a second Ctrl-C kills the engine process); Ctrl-C or
Ctrl-D at the prompt leaves. Ctrl-\\ while the model is thinking is "answer now": the reasoning ends at
the next token and the model answers (the terminal sends SIGQUIT for it, so it needs no raw mode and
works while the answer streams). Outside an answer Ctrl-\\ does nothing: it is ignored from the start,
before the engine's helper processes exist, so that they inherit the ignoring and survive the key.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from app.cli.options import add_model_options, add_remote_options, load_spec
from app.cli.render import TerminalPrinter
from engine.api import (
    MAX_BUDGET,
    EngineEvent,
    Error,
    GenerationRequest,
    Message,
    SamplingParams,
)
from engine.client import EngineClient
from engine.errors import InvalidRequest

HELP = "Commands: /think on|off · /budget N|off · /reset · /exit · Ctrl-\\ while thinking: answer now"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("chat", help="chat with a model in the terminal")
    add_model_options(p)
    add_remote_options(p)
    p.add_argument("-p", "--prompt", help="answer this one prompt and exit")
    p.add_argument("-s", "--system", default="", help="system prompt")
    p.add_argument("--no-think", action="store_true", help="turn reasoning off")
    p.add_argument("--budget", type=int, default=None, metavar="TOKENS",
                   help="reasoning budget: end the thinking at the next newline after this many tokens")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=8192,
                   help="answer length limit, reasoning included (default 8192; the context also limits it)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    p.add_argument("--loop-detection", choices=("off", "warn", "end"), default="warn",
                   help="when the thinking seems to repeat itself: do nothing, warn (default), or answer now")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.set_defaults(run=run)


class _ChatState:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.thinking = not args.no_think
        self.budget: int | None = args.budget
        self.messages: list[Message] = [Message("system", args.system)] if args.system else []
        # Built now so that bad flag values are reported before a model is loaded.
        self.sampling = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                       min_p=args.min_p, seed=args.seed, max_tokens=args.max_tokens,
                                       stop=tuple(args.stop))
        GenerationRequest((Message("user", ""),), reasoning_budget=self.budget)

    def request(self) -> GenerationRequest:
        return GenerationRequest(tuple(self.messages), thinking=self.thinking, reasoning_budget=self.budget,
                                 sampling=self.sampling, loop_detection=self.args.loop_detection)


#: Ctrl-\\ in a terminal (absent on Windows, where only Ctrl-C works).
ANSWER_NOW_SIGNAL = getattr(signal, "SIGQUIT", None)


def _with_ctrl_c_cancels(client: EngineClient, events: Iterator[EngineEvent]) -> Iterator[EngineEvent]:
    """Iterate `events` with Ctrl-C mapped to client.cancel() and Ctrl-\\ to client.answer_now()."""
    def on_sigint(signum: int, frame: FrameType | None) -> None:
        client.cancel()

    def on_sigquit(signum: int, frame: FrameType | None) -> None:
        client.answer_now()

    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_quit = signal.signal(ANSWER_NOW_SIGNAL, on_sigquit) if ANSWER_NOW_SIGNAL is not None else None
    try:
        yield from events
    finally:
        signal.signal(signal.SIGINT, previous)
        if ANSWER_NOW_SIGNAL is not None:
            signal.signal(ANSWER_NOW_SIGNAL, previous_quit)


def _answer(client: EngineClient, state: _ChatState, printer: TerminalPrinter) -> None:
    try:
        request = state.request()
    except InvalidRequest as exc:  # e.g. text that is not Unicode (bytes the terminal could not decode)
        printer.handle(Error(exc.message, exc.action, exc.kind))
        state.messages.pop()  # the message that cannot be sent is not kept: the chat goes on without it
        return
    for event in _with_ctrl_c_cancels(client, client.generate(request)):
        printer.handle(event)
    state.messages.append(Message("assistant", "".join(printer.answer).strip(), "".join(printer.reasoning)))


def run(args: argparse.Namespace) -> int:
    try:
        state = _ChatState(args)
        spec = load_spec(args)
    except InvalidRequest as exc:
        print(f"Error: {exc.message}\n{exc.action}", file=sys.stderr)
        return 2
    if ANSWER_NOW_SIGNAL is not None:
        signal.signal(ANSWER_NOW_SIGNAL, signal.SIG_IGN)  # inherited by the worker and multiprocessing's tracker
    with EngineClient() as client:
        loader = TerminalPrinter(as_json=args.json)
        for event in client.load(spec):
            loader.handle(event)
        if loader.failed:
            return 1
        if args.prompt is not None:
            state.messages.append(Message("user", args.prompt))
            printer = TerminalPrinter(as_json=args.json)
            _answer(client, state, printer)
            return 1 if printer.failed else 0
        return _interactive(client, state)


def _interactive(client: EngineClient, state: _ChatState) -> int:
    print(HELP, file=sys.stderr)
    while True:
        try:
            line = input("\n> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not line.strip():
            continue
        if line.startswith("/"):
            if _command(line.strip(), state):
                return 0
            continue
        state.messages.append(Message("user", line))
        _answer(client, state, TerminalPrinter(as_json=state.args.json))


def _command(line: str, state: _ChatState) -> bool:
    """Handle a /command; True means leave."""
    name, _, value = line.partition(" ")
    if name in ("/exit", "/quit"):
        return True
    if name == "/reset":
        state.messages = [m for m in state.messages if m.role == "system"]
    elif name == "/think" and value in ("on", "off"):
        state.thinking = value == "on"
    elif name == "/budget" and (value == "off" or (value.isdigit() and int(value) <= MAX_BUDGET)):
        state.budget = None if value == "off" else int(value)
    else:
        print(HELP, file=sys.stderr)
        return False
    print(f"[thinking {'on' if state.thinking else 'off'}, budget {state.budget or 'no limit'}]", file=sys.stderr)
    return False

