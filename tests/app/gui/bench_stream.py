"""Benchmark: does the chat view stay smooth at 500 tokens/s, saving included? Prints figures, asserts nothing.

Streams a reasoning trace and then a markdown answer until it is 256 kB, at 500 tokens/s, from a
synthetic engine, batched per frame as the engine bridge delivers them, through the window's real
path: the ConversationController (saving on: a real ChatStore on disk, its writer thread appending
what is new) and the real ThinkingPane and AnswerView, while a 1 ms timer measures how late the event
loop gets to it (the stall). Also times a fresh process from start to a visible main window.

    QT_QPA_PLATFORM=offscreen python -m tests.app.gui.bench_stream [--no-save]

The UI thread's share of saving (handing each frame's new text to the writer thread, and the flush
and final update at the end) is timed on its own; --no-save drops the streamed saves, to compare.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication

from app.gui.bridge import FRAME_MS, EngineBridge
from app.gui.main_window import MainWindow
from app.store import ChatStore, StreamWriter
from engine.api import (
    ContentDelta,
    EngineEvent,
    Finished,
    FinishReason,
    GenerationRequest,
    ReasoningDelta,
    ReasoningEnded,
)

REASONING_TOKENS, ANSWER_BYTES, RATE = 4_000, 256 * 1024, 500
WORDS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", ".", "\n"]
ANSWER = ["**Short", " answer", ":**", " light", " scatters", ".\n\n", "| a | b |\n|---|---|\n| 1 | 2 |\n\n",
          "```python\n", "x", " =", " 1\n", "```\n\n", "More", " text", " with", " `code`", ".\n\n"]


def synthetic() -> list[EngineEvent]:
    events: list[EngineEvent] = [ReasoningDelta(WORDS[i % len(WORDS)]) for i in range(REASONING_TOKENS)]
    events.append(ReasoningEnded(by_budget=False, reasoning_tokens=REASONING_TOKENS))
    size = 0
    while size < ANSWER_BYTES:
        piece = ANSWER[len(events) % len(ANSWER)]
        events.append(ContentDelta(piece))
        size += len(piece.encode())
    events.append(Finished(FinishReason.STOP))
    return events


class TimedWriter:
    """The controller's StreamWriter, timed where the UI thread calls it (or nothing, for --no-save)."""

    def __init__(self, inner: StreamWriter | None) -> None:
        self.inner = inner
        self.append_ms: list[float] = []
        self.flush_ms = 0.0

    def append(self, message_id: int, *, content: str = "", reasoning: str = "") -> None:
        t = time.perf_counter()
        if self.inner is not None:
            self.inner.append(message_id, content=content, reasoning=reasoning)
        self.append_ms.append((time.perf_counter() - t) * 1000)

    def flush(self) -> None:
        t = time.perf_counter()
        if self.inner is not None:
            self.inner.flush()
        self.flush_ms = (time.perf_counter() - t) * 1000

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class SyntheticEngine:
    """Stands in for the engine: the benchmark feeds its events itself, at the set rate."""

    busy = False

    def generate(self, request: GenerationRequest) -> bool:
        return True

    def stop(self) -> None:
        pass


def stream(app: QApplication, save: bool = True) -> tuple[list[float], float, int, int, TimedWriter]:
    db = Path(tempfile.mkdtemp()) / "b.sqlite3"
    store = ChatStore(db)
    win = MainWindow(EngineBridge(), store)
    win.resize(1200, 800)
    win.show()
    app.processEvents()  # the window's idle-time warm-up runs, as it would before a person types
    win.controller.engine = SyntheticEngine()
    win.send("Why is the sky blue?")  # the question is saved, the answer row starts 'streaming'
    writer = TimedWriter(win.controller._writer if save else None)
    win.controller._writer = writer  # type: ignore[assignment]
    events = synthetic()
    per_frame = RATE * FRAME_MS // 1000
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    probe = QTimer()
    probe.setInterval(1)
    probe.timeout.connect(tick)
    probe.start()
    start = time.perf_counter()
    position = 0
    while position < len(events):
        due = int((time.perf_counter() - start) * RATE)
        if due > position:
            batch = events[position:min(due, position + per_frame * 4)]
            win._on_events(batch)  # what EngineBridge.events delivers: shown, then appended to the store
            position += len(batch)
        app.processEvents()
        time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    probe.stop()
    assert win.current is None and win.conversation_id is not None  # the answer ended and was saved
    saved = store.path(win.conversation_id)[-1]
    win.close()
    return gaps, elapsed, len(events), len(saved.content.encode()), writer


def start_to_window() -> float:
    code = ("import time; t=time.perf_counter(); from PySide6.QtWidgets import QApplication; "
            "from app.gui.bridge import EngineBridge; from app.gui.main_window import MainWindow; "
            "from app.store import ChatStore; import tempfile, pathlib; a=QApplication([]); "
            "w=MainWindow(EngineBridge(), ChatStore(pathlib.Path(tempfile.mkdtemp())/'s.db')); w.show(); "
            "a.processEvents(); print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    app = QApplication.instance() or QApplication([])
    save = "--no-save" not in sys.argv
    gaps, elapsed, tokens, saved, writer = stream(app, save)  # type: ignore[arg-type]
    stalls = sorted(g - 1.0 for g in gaps)
    p99 = stalls[int(len(stalls) * 0.99)]
    print(f"streamed {tokens} tokens in {elapsed:.1f} s ({tokens / elapsed:.0f} tokens/s, target {RATE}), "
          f"saving {'on' if save else 'off'}: {saved / 1024:.0f} kB answer in the store")
    appends = sorted(writer.append_ms)
    print(f"saving on the UI thread: per frame p99 {appends[int(len(appends) * 0.99)]:.3f} ms, "
          f"max {appends[-1]:.3f} ms; flush at the end {writer.flush_ms:.1f} ms")
    print(f"event-loop stall: p50 {statistics.median(stalls):.2f} ms, p99 {p99:.2f} ms, max {stalls[-1]:.2f} ms "
          f"(targets: p99 < 16 ms, max < 50 ms)")
    print(f"start to visible window (imports included, no model): {start_to_window():.2f} s")


if __name__ == "__main__":
    main()
