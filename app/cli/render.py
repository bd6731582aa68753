"""Prints engine events to a terminal: reasoning dimmed and apart from the answer, or JSON lines.

The answer goes to stdout; the thinking, progress and figures go to stderr, so `nemotron-desk chat
-p ... > answer.txt` keeps only the answer. On a terminal the thinking is dimmed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from enum import Enum
from typing import Any, TextIO

from engine.api import (
    ContentDelta,
    EngineEvent,
    Error,
    Finished,
    LoadProgress,
    LoopSuspected,
    ModelInfo,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
    Usage,
)

DIM, RESET, RED = "\x1b[2m", "\x1b[0m", "\x1b[31m"
_END_WHY = {ReasoningEndCause.BUDGET: " (budget reached)",
            ReasoningEndCause.ANSWER_ROOM: " (ended to leave room for the answer)",
            ReasoningEndCause.USER: ", ended by you", ReasoningEndCause.LOOP: ", ended: it was repeating itself"}


def event_to_json(event: EngineEvent) -> str:
    def plain(value: Any) -> Any:
        return value.value if isinstance(value, Enum) else value

    body = {k: plain(v) for k, v in dataclasses.asdict(event).items()}
    return json.dumps({"event": type(event).__name__, **body}, ensure_ascii=False)


class TerminalPrinter:
    """Turns one answer's events into terminal output. Collects the answer and reasoning text."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr, *, as_json: bool = False) -> None:
        self.out, self.err, self.as_json = out, err, as_json
        self.color = err.isatty() and not as_json
        self.reasoning: list[str] = []
        self.answer: list[str] = []
        self.failed = False
        self._progress_line = False

    def _progress(self, event: LoadProgress) -> None:
        """Stages on their own line; a percentage (torch weights) rewrites one line on a terminal."""
        if event.stage == "Ready":
            if self._progress_line:
                self.err.write("\n")
                self._progress_line = False
            return
        if "%" in event.stage:
            if self.err.isatty():
                self.err.write("\r" + self._dim(f"{event.stage}…"))
                self._progress_line = True
            return
        self.err.write(self._dim(f"{event.stage}…\n"))

    def _dim(self, text: str) -> str:
        return f"{DIM}{text}{RESET}" if self.color else text

    def handle(self, event: EngineEvent) -> None:
        if isinstance(event, Error):
            self.failed = True
        if isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, ContentDelta):
            self.answer.append(event.text)
        if self.as_json:
            print(event_to_json(event), file=self.out, flush=True)
            return
        self._print(event)

    def _print(self, event: EngineEvent) -> None:
        if isinstance(event, ReasoningDelta):
            if len(self.reasoning) == 1:
                hint = " (Ctrl-\\ to answer now)" if self.err.isatty() else ""
                self.err.write(self._dim(f"Thinking…{hint}\n"))
            self.err.write(self._dim(event.text))
            self.err.flush()
        elif isinstance(event, ReasoningEnded):
            why = _END_WHY.get(event.cause, "")
            self.err.write(self._dim(f"\n[thought for {event.reasoning_tokens} tokens{why}]\n\n"))
            self.err.flush()
        elif isinstance(event, LoopSuspected):
            then = "ending the thinking" if event.action == "end" else "Ctrl-\\ to answer now, Ctrl-C to stop"
            self.err.write(self._dim(f"\n[the model seems to be repeating itself: {event.repeated!r}; {then}]\n"))
        elif isinstance(event, ContentDelta):
            self.out.write(event.text)
            self.out.flush()
        elif isinstance(event, Usage):
            self.out.write("\n")
            self.out.flush()
            self.err.write(self._dim(
                f"[{event.prompt_tokens} prompt tokens ({event.cached_prompt_tokens} cached) · "
                f"{event.reasoning_tokens} reasoning + {event.answer_tokens} answer tokens · "
                f"first token {event.time_to_first_token_s:.2f} s · {event.decode_tokens_per_s:.1f} tok/s]\n"))
        elif isinstance(event, Finished) and event.reason.value != "stop":
            self.err.write(self._dim(f"[stopped: {event.reason.value}]\n"))
        elif isinstance(event, Error):
            text = f"Error: {event.message}" + (f"\n{event.action}" if event.action else "")
            self.err.write((f"{RED}{text}{RESET}" if self.color else text) + "\n")
        elif isinstance(event, LoadProgress):
            self._progress(event)
        elif isinstance(event, ModelInfo) and event.backend == "remote":
            context = f", context {event.n_ctx}" if event.n_ctx else ""
            self.err.write(self._dim(f"Connected to {event.name} on {event.path} [{event.architecture}{context}]\n"))
        elif isinstance(event, ModelInfo):
            gpu = f", {event.n_gpu_layers} GPU layers" if event.n_gpu_layers else ""
            where = f", {event.device}" if event.device else ""
            self.err.write(self._dim(
                f"Loaded {event.name} [{event.architecture}, {event.quantization}, {event.backend}{where}, "
                f"context {event.n_ctx}{gpu}]\n"))
            if event.kernels:
                self.err.write(self._dim(f"Compute path: {event.kernels}\n"))
            for note in event.notes:
                self.err.write(f"Note: {note}\n")
        self.err.flush()
