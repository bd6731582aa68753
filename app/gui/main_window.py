"""The main window: the conversation, the composer, the status line and the Model menu.

It opens at once; the model loads in the engine process while the window is already usable, with
progress in the status line.
"""

from __future__ import annotations

from pathlib import Path

from app.gui.bridge import EngineBridge
from app.gui.composer import Composer
from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AssistantMessage, UserMessage
from app.gui.qt import (
    QAction,
    QFileDialog,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSettings,
    QVBoxLayout,
    QWidget,
)
from engine.api import EngineEvent, Error, GenerationRequest, Message, ModelInfo, SamplingParams, Usage
from engine.backends.llama_cpp import LlamaLoadOptions
from engine.session import LoadSpec


class ChatView(QScrollArea):
    """The messages of one conversation in a column; follows the newest text while at the bottom."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._column = QWidget(self)
        self._layout = QVBoxLayout(self._column)
        self._layout.addStretch(1)
        self.setWidget(self._column)
        self._follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(lambda v: setattr(self, "_follow", v >= bar.maximum() - 24))
        bar.rangeChanged.connect(lambda lo, hi: bar.setValue(hi) if self._follow else None)

    def add(self, widget: QWidget) -> None:
        self._layout.insertWidget(self._layout.count() - 1, widget)


class MainWindow(QMainWindow):
    def __init__(self, bridge: EngineBridge, load: LoadSpec | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Nemotron Desk")
        self.bridge = bridge
        self.renderer = MarkdownRenderer(dark=self.palette().window().color().lightness() < 128)
        self.history: list[Message] = []
        self.max_tokens = 8192
        self.last_request: GenerationRequest | None = None
        self.current: AssistantMessage | None = None
        self.chat = ChatView(self)
        self.composer = Composer(self)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.addWidget(self.chat, 1)
        layout.addWidget(self.composer)
        self.setCentralWidget(central)
        self.status = QLabel("No model loaded", self)
        self.statusBar().addPermanentWidget(self.status, 1)
        self._menus()
        self.composer.sendRequested.connect(self.send)
        self.composer.stopRequested.connect(self.bridge.stop)
        self.bridge.events.connect(self._on_events)
        self.bridge.loadProgress.connect(lambda stage, f: self.status.setText(f"{stage}…"))
        self.bridge.loaded.connect(self._on_loaded)
        self.bridge.failed.connect(self._on_failed)
        self.bridge.busyChanged.connect(self.composer.set_busy)
        self._restore_geometry()
        if load is not None:
            self.bridge.load(load)

    # -- conversation ----------------------------------------------------------------------------

    def request(self) -> GenerationRequest:
        return GenerationRequest(tuple(self.history), thinking=self.composer.think.isChecked(),
                                 reasoning_budget=self.composer.budget_tokens if self.composer.think.isChecked()
                                 else None, sampling=SamplingParams(max_tokens=self.max_tokens))

    def send(self, text: str) -> None:
        if self.bridge.busy:
            return
        self.history.append(Message("user", text))
        self.chat.add(UserMessage(text))
        self.current = AssistantMessage(self.renderer)
        self.chat.add(self.current)
        self.last_request = self.request()
        self.bridge.generate(self.last_request)

    def _on_events(self, events: list[EngineEvent]) -> None:
        current = self.current
        if current is None:
            return
        current.apply(events)
        for event in events:
            if isinstance(event, Usage):
                self._show_status(event)
        if current.finish is not None or current.error is not None:
            if current.error is None:
                self.history.append(Message("assistant", current.answer.text.strip(), current.reasoning))
            else:
                # The failed question leaves the history and goes back into the box, to send again.
                question = self.history.pop()
                if not self.composer.input.toPlainText():
                    self.composer.input.setPlainText(question.content)
            self.current = None

    # -- model -----------------------------------------------------------------------------------

    def _menus(self) -> None:
        menu = self.menuBar().addMenu("&Model")
        open_action = QAction("Open GGUF file…", self)
        open_action.triggered.connect(self._choose_model)
        demo = QAction("Use the demo model", self)
        demo.triggered.connect(lambda: self.load_model(None))
        stop = QAction("Stop answer", self)
        stop.setShortcut("Ctrl+.")
        stop.triggered.connect(self.bridge.stop)
        for action in (open_action, demo, stop):
            menu.addAction(action)

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.load_model(path)

    def load_model(self, path: str | None) -> None:
        self.bridge.load(LoadSpec(path, LlamaLoadOptions()))

    def _on_loaded(self, info: ModelInfo) -> None:
        self._model_text = (f"{info.name} · {info.backend} · {info.quantization} · GPU layers {info.n_gpu_layers} · "
                            f"context {info.n_ctx}")
        self.status.setText(self._model_text)
        self.composer.think.setEnabled(info.has_thinking)

    def _on_failed(self, error: Error) -> None:
        if self.current is None:  # a load error; answer errors show in the answer
            self.status.setText(f"{error.message} {error.action}".strip())

    def _show_status(self, usage: Usage) -> None:
        used = usage.prompt_tokens + usage.completion_tokens
        ctx = self.bridge.model.n_ctx if self.bridge.model else 0
        self.status.setText(f"{getattr(self, '_model_text', '')} · used {used}/{ctx} · "
                            f"{usage.decode_tokens_per_s:.1f} tok/s · first token {usage.time_to_first_token_s:.2f} s")

    # -- window ----------------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        geometry = QSettings().value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(980, 760)

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        QSettings().setValue("window/geometry", self.saveGeometry())
        self.bridge.shutdown()
        super().closeEvent(event)

