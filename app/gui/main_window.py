"""The main window: conversations, the chat, the composer, the status line and the menus.

It opens at once; the model loads in the engine process while the window is already usable, with
progress in the status line. Every question and every streamed answer is written to the ChatStore
as it arrives, so a crash or a kill loses at most the last frame.
"""

from __future__ import annotations

from pathlib import Path

from app.gui.api_switch import ApiServer
from app.gui.bridge import EngineBridge
from app.gui.chat_view import ChatView
from app.gui.composer import Composer
from app.gui.conversation import ConversationMixin
from app.gui.download_host import DownloadsMixin
from app.gui.load_dialog import LoadSettingsDialog, saved_spec
from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AssistantMessage
from app.gui.qt import (
    QAction,
    QFileDialog,
    QGuiApplication,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QPushButton,
    QSettings,
    QTimer,
    QVBoxLayout,
    QWidget,
)
from app.gui.sidebar import Sidebar
from app.store import ChatStore
from engine.api import Error, GenerationRequest, LoadSpec, ModelInfo, Usage


class MainWindow(ConversationMixin, DownloadsMixin, QMainWindow):
    def __init__(self, bridge: EngineBridge, store: ChatStore, load: LoadSpec | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Nemotron Desk")
        self.bridge = bridge
        self.store = store
        self.renderer = MarkdownRenderer(dark=self.palette().window().color().lightness() < 128)
        self.conversation_id: int | None = None
        self.max_tokens = 8192
        self.last_request: GenerationRequest | None = None
        self.current: AssistantMessage | None = None
        self._current_id = 0
        self._deleted_id: int | None = None
        self._edit_parent: int | None = None  # editing: the parent of the question being replaced (0: none)
        self.sidebar = Sidebar(store, self)
        self.chat = ChatView(self)
        self.composer = Composer(self)
        central = QWidget(self)
        right = QVBoxLayout()
        right.addWidget(self.chat, 1)
        right.addWidget(self.composer)
        layout = QHBoxLayout(central)
        layout.addWidget(self.sidebar)
        layout.addLayout(right, 1)
        self.setCentralWidget(central)
        self.status = QLabel("No model loaded", self)
        self.undo = QPushButton("Undo delete", self)
        self.undo.hide()
        self.api: ApiServer | None = None
        self.api_label = QLabel("", self)
        self.statusBar().addWidget(self.status, 1)  # not permanent: a passing message ("Copied ...") shows in its place
        self.statusBar().addPermanentWidget(self.api_label)
        self.statusBar().addPermanentWidget(self.undo)
        self._menus()
        self._connect()
        self._restore_geometry()
        QTimer.singleShot(0, self.renderer.warm_up)  # once the window is up, not before
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._follow_color_scheme)
        if load is not None:
            self.bridge.load(load)

    def _connect(self) -> None:
        self.composer.sendRequested.connect(self.send)
        self.composer.stopRequested.connect(self.bridge.stop)
        self.composer.regenerateRequested.connect(self.regenerate)
        self.composer.cancelEditRequested.connect(self.cancel_edit)
        self.composer.think.toggled.connect(self._save_settings)
        self.composer.budget.valueChanged.connect(self._save_settings)
        self.sidebar.conversationChosen.connect(self.open_conversation)
        self.sidebar.newRequested.connect(self.new_chat)
        self.sidebar.deleted.connect(self._offer_undo)
        self.undo.clicked.connect(self._undo_delete)
        self.bridge.events.connect(self._on_events)
        self.bridge.loadProgress.connect(lambda stage, f: self.status.setText(f"{stage}…"))
        self.bridge.loaded.connect(self._on_loaded)
        self.bridge.failed.connect(self._on_failed)
        self.bridge.busyChanged.connect(self.composer.set_busy)

    # -- model -----------------------------------------------------------------------------------

    def _menus(self) -> None:
        menu = self.menuBar().addMenu("&Model")
        open_action = QAction("Open GGUF file…", self)
        open_action.triggered.connect(self._choose_model)
        open_folder = QAction("Open Hugging Face folder…", self)
        open_folder.triggered.connect(self._choose_folder)
        demo = QAction("Use the demo model", self)
        demo.triggered.connect(lambda: self.load_model(None))
        remote = QAction("Connect to a server…", self)
        remote.triggered.connect(self._connect_server)
        stop = QAction("Stop answer", self)
        stop.setShortcut("Ctrl+.")
        stop.triggered.connect(self.bridge.stop)
        search = QAction("Search chats", self)
        search.setShortcut("Ctrl+F")
        search.triggered.connect(self.sidebar.search.setFocus)
        settings = QAction("Load settings…", self)
        settings.triggered.connect(self._load_settings)
        unload = QAction("Unload", self)
        unload.triggered.connect(self.unload_model)
        for action in (open_action, open_folder, demo, remote, settings, unload, stop, search):
            menu.addAction(action)
        menu.addSeparator()
        self._downloads_setup(menu)
        menu.addAction("Install the torch backend (CUDA PyTorch)…", self._install_torch)
        server = self.menuBar().addMenu("&Server")
        self.serve_action = QAction("Serve the model on 127.0.0.1 (OpenAI API)", self)
        self.serve_action.setCheckable(True)
        self.serve_action.toggled.connect(self.set_serving)
        server.addAction(self.serve_action)
        server.addAction("Port…", self._choose_port)
        chat = self.menuBar().addMenu("&Conversation")
        chat.addAction("System prompt…", self._edit_system_prompt)
        chat.addAction("Export as Markdown…", lambda: self._export("md"))
        chat.addAction("Export as JSON…", lambda: self._export("json"))

    def set_serving(self, on: bool) -> None:
        """Switch the local API on or off; it shares this window's engine."""
        if on and self.api is None:
            if self.bridge.model is None:
                self.status.setText("Load a model first, then switch the API on.")
                self.serve_action.setChecked(False)
                return
            port = int(str(QSettings().value("server/port", 8000)))
            api = ApiServer(self.bridge.client, self.bridge.model, port)
            problem = api.start()
            if problem is not None:
                self.status.setText(problem)
                self.serve_action.setChecked(False)
                return
            self.api = api
            self.api_label.setText(f"API: {api.url}")
        elif not on and self.api is not None:
            self.api.stop()
            self.api = None
            self.api_label.setText("")

    def _choose_port(self) -> None:
        port, ok = QInputDialog.getInt(self, "API port", "Port on 127.0.0.1:",
                                       int(str(QSettings().value("server/port", 8000))), 1024, 65535)
        if ok:
            QSettings().setValue("server/port", port)
            if self.api is not None:  # move the running server
                self.set_serving(False)
                self.set_serving(True)

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.load_model(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a Hugging Face model folder (config.json, *.safetensors)",
                                                str(Path.home()))
        if path:
            self.load_model(path)

    def load_model(self, path: str | None) -> None:
        """Load a GGUF or a Hugging Face folder (None: the demo model) with the saved load settings;
        the window stays usable."""
        if self.bridge.busy:
            self.status.setText("Wait for the current answer or load to finish, or stop it first.")
            return
        self._model_path = path
        self.bridge.load(saved_spec(path))

    def _connect_server(self) -> None:
        if self.bridge.busy:
            self.status.setText("Wait for the current answer or load to finish, or stop it first.")
            return
        from app.gui.connect_dialog import ConnectDialog  # httpx loads when a server is connected

        dialog = ConnectDialog(self)
        if dialog.exec():
            self.bridge.load(LoadSpec(remote=dialog.spec()))

    def unload_model(self) -> None:
        """End the engine process: its memory, GPU memory included, is given back at once."""
        if self.bridge.busy:
            return
        self.serve_action.setChecked(False)
        self.bridge.client.unload()
        self.bridge.model = None
        self.status.setText("No model loaded")

    def _install_torch(self) -> None:
        from app.gui.runtime_dialog import TorchRuntimeDialog  # its engine module loads packaging only when asked

        TorchRuntimeDialog(self).exec()

    def _load_settings(self) -> None:
        model = self.bridge.model
        if LoadSettingsDialog(self).exec() and model is not None and model.backend != "remote":
            self.load_model(getattr(self, "_model_path", model.path))

    def _on_loaded(self, info: ModelInfo) -> None:
        if info.backend == "remote":
            self._model_text = f"{info.name} · {info.architecture} at {info.path}"
        else:
            where = info.device or f"GPU layers {info.n_gpu_layers}"
            self._model_text = f"{info.name} · {info.backend} · {info.quantization} · {where} · context {info.n_ctx}"
        self.status.setText(self._model_text)
        tip = [f"{info.path}", info.kernels, *info.notes]
        self.status.setToolTip("\n".join(t for t in tip if t))
        if info.notes:  # e.g. weights spilled to CPU memory: say it where it is seen
            self.status.setText(f"{self._model_text} · {info.notes[0]}")
        self.composer.think.setEnabled(info.has_thinking)

    def _on_failed(self, error: Error) -> None:
        if self.current is None:  # a load error; answer errors show in the answer
            self.status.setText(f"{error.message} {error.action}".strip())

    def _show_status(self, usage: Usage) -> None:
        used = usage.prompt_tokens + usage.completion_tokens
        ctx = self.bridge.model.n_ctx if self.bridge.model else 0
        of = f"/{ctx}" if ctx else ""
        self.status.setText(f"{getattr(self, '_model_text', '')} · used {used}{of} · "
                            f"{usage.decode_tokens_per_s:.1f} tok/s · first token {usage.time_to_first_token_s:.2f} s")

    # -- window ----------------------------------------------------------------------------------

    def bring_forward(self) -> None:
        """A second start of the app asked for this window (app/gui/single_instance.py)."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def show_read_only(self, note: str) -> None:
        """Another instance owns the data folder: show the chats, change nothing, and say why."""
        self.setWindowTitle("Nemotron Desk (read-only)")
        self.composer.setEnabled(False)
        self.sidebar.new.setEnabled(False)
        self.read_only_label = QLabel(note, self)
        self.read_only_label.setWordWrap(True)
        self.read_only_label.setStyleSheet("color: #c0392b")
        self.statusBar().insertPermanentWidget(0, self.read_only_label, 2)
        self.status.setText("Read-only")

    def _restore_geometry(self) -> None:
        geometry = QSettings().value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 760)

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        QSettings().setValue("window/geometry", self.saveGeometry())
        self.set_serving(False)
        self._downloads_close()
        self.bridge.shutdown()
        super().closeEvent(event)
