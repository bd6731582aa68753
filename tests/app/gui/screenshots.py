"""Takes the review screenshots into docs/screenshots/ (run under Xvfb, or offscreen):

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m tests.app.gui.screenshots [MODEL.gguf | --steering]

At 1600x1000 and 900x600 (half a laptop screen), light and dark: the empty window; the thinking pane
open while it streams; folded after the answer. Also a markdown answer from the demo model and the
download and connect dialogs; the context gauge after two turns; steering the reasoning (the meter
and Answer now while it streams, the loop warning, the offer when the thinking took all the room;
only these with --steering).
Uses the tiny Nemotron fixture unless a model is given (its text is noise; the layout is real).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from app.gui.bridge import EngineBridge
from app.gui.main_window import MainWindow
from app.store import ChatStore
from engine.api import LlamaLoadOptions, LoadSpec
from tests import REPO_ROOT

OUT = REPO_ROOT / "docs" / "screenshots"


def wait(app: QApplication, condition, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        app.processEvents()
        time.sleep(0.01)


def settle(app: QApplication) -> None:
    """Let pending layout and paint work finish before a grab."""
    import time

    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def dark_palette() -> QPalette:
    p = QPalette()
    for role, color in ((QPalette.ColorRole.Window, "#1e1f22"), (QPalette.ColorRole.WindowText, "#dfe1e5"),
                        (QPalette.ColorRole.Base, "#2b2d30"), (QPalette.ColorRole.AlternateBase, "#35373b"),
                        (QPalette.ColorRole.Text, "#dfe1e5"), (QPalette.ColorRole.Button, "#2b2d30"),
                        (QPalette.ColorRole.ButtonText, "#dfe1e5"), (QPalette.ColorRole.Highlight, "#3574f0"),
                        (QPalette.ColorRole.PlaceholderText, "#8c8f94"), (QPalette.ColorRole.Link, "#589df6")):
        p.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.ButtonText, QPalette.ColorRole.Text, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6f737a"))  # greyed controls read as greyed
    return p


def shoot(model: str, dark: bool, tag: str, app: QApplication, size: tuple[int, int] = (1600, 1000)) -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    store = ChatStore(Path(tempfile.mkdtemp()) / "shots.sqlite3")
    win = MainWindow(EngineBridge(), store, LoadSpec(model, LlamaLoadOptions(n_ctx=4096, n_threads=2)))
    win.resize(*size)
    win.max_tokens = 1500  # long enough to catch the thinking while it streams (the tiny model is fast)
    win.show()
    wait(app, lambda: win.bridge.model is not None and not win.bridge.busy)
    settle(app)
    win.grab().save(str(OUT / f"{tag}empty.png"))
    win.composer.set_budget(512)
    win.send("Why is the sky blue? Explain with a small table and a code sample.")
    wait(app, lambda: win.current is not None and win.current.thinking.tokens > 200)
    win.grab().save(str(OUT / f"{tag}thinking-streaming.png"))
    wait(app, lambda: win.current is None and not win.bridge.busy, 600)
    settle(app)
    win.grab().save(str(OUT / f"{tag}answer-folded.png"))
    win.close()


def shoot_gauge(model: str, app: QApplication) -> None:
    """The context gauge after two turns, with a question being typed and the old thinking kept (so
    the bar shows its three parts, and the toggle what dropping would free)."""
    store = ChatStore(Path(tempfile.mkdtemp()) / "gauge.sqlite3")
    win = MainWindow(EngineBridge(), store, LoadSpec(model, LlamaLoadOptions(n_ctx=2048, n_threads=2)))
    win.resize(1200, 800)
    win.max_tokens = 200
    win.show()
    wait(app, lambda: win.bridge.model is not None and not win.bridge.busy)
    win.composer.set_budget(128)
    for question in ("Why is the sky blue?", "And why are sunsets red?"):
        before = win.gauge.count
        win.send(question)
        wait(app, lambda: win.current is None and not win.bridge.busy, 120)
        wait(app, lambda b=before: win.gauge.count is not b and win.gauge.usage is None)  # type: ignore[misc]
    before = win.gauge.count
    win.gauge.drop.click()  # keep the old thinking
    wait(app, lambda: win.gauge.count is not before)
    before = win.gauge.count
    win.composer.input.setPlainText("Could you put the two answers side by side in a table?")
    wait(app, lambda: win.gauge.count is not before)
    settle(app)
    win.grab().save(str(OUT / "context-gauge.png"))
    win.close()


def shoot_steering(model: str, app: QApplication) -> None:
    """The budget meter with Answer now, the loop warning (its event fed in: the tiny model does not
    loop), and the offer under an answer whose thinking took all the room."""
    from engine.api import LoopSuspected

    store = ChatStore(Path(tempfile.mkdtemp()) / "steering.sqlite3")
    win = MainWindow(EngineBridge(), store, LoadSpec(model, LlamaLoadOptions(n_ctx=4096, n_threads=2)))
    win.resize(1600, 1000)
    win.show()
    wait(app, lambda: win.bridge.model is not None and not win.bridge.busy)
    win.max_tokens = 3000
    win.composer.set_budget(1024)
    win.send("Why is the sky blue?")
    wait(app, lambda: win.current is not None and win.current.thinking.tokens > 300)
    settle(app)
    win.grab().save(str(OUT / "reasoning-meter.png"))
    win.bridge.stop()
    wait(app, lambda: win.current is None and not win.bridge.busy)
    win.composer.set_budget(None)
    win.send("And why are sunsets red?")
    wait(app, lambda: win.current is not None and win.current.thinking.tokens > 100)
    win._on_events([LoopSuspected(400, "Let me check the scattering again: shorter wavelengths scatter more.",
                                  0.78, "warn")])
    settle(app)
    win.grab().save(str(OUT / "loop-warning.png"))
    win.bridge.stop()
    wait(app, lambda: win.current is None and not win.bridge.busy)
    win.composer.preset.setCurrentIndex(win.composer.preset.count() - 1)  # custom: greedy, the same every run
    win.composer.temperature.setValue(0.0)
    win.max_tokens = 40
    win.send("What makes the sky blue at noon?")
    wait(app, lambda: win.current is None and not win.bridge.busy)
    win.composer.preset.setCurrentIndex(0)  # the shot shows the usual composer
    win.resize(1600, 1000)
    settle(app)
    win.grab().save(str(OUT / "thinking-took-all-the-room.png"))
    win.close()


def shoot_demo(app: QApplication) -> None:
    """A real answer from the demo model (no reasoning: SmolLM2 does not think), for the markdown."""
    from engine.formats.demo import demo_model_path

    demo = demo_model_path()
    if demo is None:
        return
    store = ChatStore(Path(tempfile.mkdtemp()) / "demo.sqlite3")
    win = MainWindow(EngineBridge(), store, LoadSpec(str(demo), LlamaLoadOptions(n_ctx=4096, n_threads=2)))
    win.resize(1200, 800)
    win.max_tokens = 300
    win.show()
    wait(app, lambda: win.bridge.model is not None and not win.bridge.busy)
    win.send("Write a Python function that reverses a string, with a short explanation.")
    wait(app, lambda: win.current is None and not win.bridge.busy, 120)
    settle(app)
    win.grab().save(str(OUT / "demo-answer.png"))
    win.close()


def shoot_dialogs(app: QApplication) -> None:
    """The download wizard's file choice (the built-in catalog: no Hub from here) and Connect to a server."""
    import os

    from app.gui.connect_dialog import ConnectDialog

    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens: the offline catalog, at once
    store = ChatStore(Path(tempfile.mkdtemp()) / "dialogs.sqlite3")
    win = MainWindow(EngineBridge(), store)
    win.show()
    wizard = win.downloads.open_download_wizard()
    wizard.resize(900, 620)
    wait(app, lambda: wizard.currentPage().isComplete())
    wizard.next()
    wait(app, lambda: wizard.currentPage().isComplete())
    settle(app)
    wizard.grab().save(str(OUT / "download-wizard.png"))
    wizard.reject()
    dialog = ConnectDialog(win)
    dialog.show()
    settle(app)
    dialog.grab().save(str(OUT / "connect-to-a-server.png"))
    dialog.reject()
    win.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] != "--steering":
        model = sys.argv[1]
    else:
        from tests.fixtures.tiny_nemotron import build_tiny_nemotron

        model = str(build_tiny_nemotron(Path(tempfile.mkdtemp())).gguf_path)
    app = QApplication.instance() or QApplication([])
    OUT.mkdir(parents=True, exist_ok=True)
    if "--steering" in sys.argv:  # only these three
        shoot_steering(model, app)
        return
    for width, height in ((1600, 1000), (900, 600)):
        for dark in (False, True):
            shoot(model, dark, f"{'dark-' if dark else ''}{width}x{height}-", app, (width, height))
    app.setPalette(app.style().standardPalette())
    shoot_gauge(model, app)
    shoot_steering(model, app)
    shoot_demo(app)
    shoot_dialogs(app)
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
