"""Benchmark: does the chat view stay smooth at 500 tokens/s? Prints figures, asserts nothing.

Streams 20,000 tokens (half reasoning, half markdown answer) at 500 tokens/s from a synthetic event
source, batched per frame as the engine bridge delivers them, through the real ThinkingPane and
AnswerView, while a 1 ms timer measures how late the event loop gets to it (the stall). Also times
a fresh process from start to a visible main window.

    QT_QPA_PLATFORM=offscreen python -m tests.app.gui.bench_stream
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
from app.gui.messages import AssistantMessage
from app.store import ChatStore
from engine.api import ContentDelta, EngineEvent, ReasoningDelta, ReasoningEnded

TOKENS, RATE = 20_000, 500
WORDS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", ".", "\n"]
ANSWER = ["**Short", " answer", ":**", " light", " scatters", ".\n\n", "| a | b |\n|---|---|\n| 1 | 2 |\n\n",
          "```python\n", "x", " =", " 1\n", "```\n\n", "More", " text", " with", " `code`", ".\n\n"]


def synthetic(n: int) -> list[EngineEvent]:
    half = n // 2
    events: list[EngineEvent] = [ReasoningDelta(WORDS[i % len(WORDS)]) for i in range(half)]
    events.append(ReasoningEnded(by_budget=False, reasoning_tokens=half))
    events += [ContentDelta(ANSWER[i % len(ANSWER)]) for i in range(n - half)]
    return events


def stream(app: QApplication) -> tuple[list[float], float]:
    win = MainWindow(EngineBridge(), ChatStore(Path(tempfile.mkdtemp()) / "b.sqlite3"))
    win.resize(1200, 800)
    win.show()
    app.processEvents()  # the window's idle-time warm-up runs, as it would before a person types
    message = AssistantMessage(win.renderer)
    win.chat.add(message)
    events = synthetic(TOKENS)
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
            message.apply(batch)
            position += len(batch)
        app.processEvents()
        time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    probe.stop()
    win.close()
    return gaps, elapsed


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
    gaps, elapsed = stream(app)  # type: ignore[arg-type]
    stalls = sorted(g - 1.0 for g in gaps)
    p99 = stalls[int(len(stalls) * 0.99)]
    print(f"streamed {TOKENS} tokens in {elapsed:.1f} s ({TOKENS / elapsed:.0f} tokens/s, target {RATE})")
    print(f"event-loop stall: p50 {statistics.median(stalls):.2f} ms, p99 {p99:.2f} ms, max {stalls[-1]:.2f} ms "
          f"(targets: p99 < 16 ms, max < 50 ms)")
    print(f"start to visible window (imports included, no model): {start_to_window():.2f} s")


if __name__ == "__main__":
    main()
