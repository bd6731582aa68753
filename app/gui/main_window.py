"""The main window: conversations, the chat, the composer, the status line and the Model menu.

It opens at once; the model loads in the engine process while the window is already usable, with
progress in the status line. Every question and every streamed answer is written to the ChatStore
as it arrives, so a crash or a kill loses at most the last frame.
"""

from __future__ import annotations

from pathlib import Path

from app.gui.api_switch import ApiServer
from app.gui.branches import MessageTools
from app.gui.bridge import EngineBridge
from app.gui.composer import Composer
from app.gui.load_dialog import LoadSettingsDialog, saved_options
from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AssistantMessage, UserMessage
from app.gui.qt import (
    QAction,
    QFileDialog,
    QGuiApplication,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSettings,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
)
from app.gui.sidebar import Sidebar
from app.store import ChatStore
from engine.api import EngineEvent, Error, FinishReason, GenerationRequest, Message, ModelInfo, SamplingParams, Usage
from engine.session import LoadSpec


class ChatView(QScrollArea):
    """The messages of one conversation in a column; follows the newest text while at the bottom."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(lambda v: setattr(self, "_follow", v >= bar.maximum() - 24))
        bar.rangeChanged.connect(lambda lo, hi: bar.setValue(hi) if self._follow else None)
        self.clear()

    def clear(self) -> None:
        column = QWidget(self)
        self._layout = QVBoxLayout(column)
        self._layout.addStretch(1)
        self.setWidget(column)  # the old column and its messages are deleted with it
        self._follow = True

    def add(self, widget: QWidget) -> None:
        self._layout.insertWidget(self._layout.count() - 1, widget)


class MainWindow(QMainWindow):
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
        self.statusBar().addPermanentWidget(self.status, 1)
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

    # -- conversation ----------------------------------------------------------------------------

    @property
    def history(self) -> list[Message]:
        if self.conversation_id is None:
            return []
        return [Message(m.role, m.content, m.reasoning) for m in self.store.path(self.conversation_id)  # type: ignore[arg-type]
                if m.state != "streaming"]

    def request(self) -> GenerationRequest:
        thinking = self.composer.think.isChecked()
        system = self.store.get(self.conversation_id).system_prompt if self.conversation_id else ""
        messages = ([Message("system", system)] if system else []) + self.history
        temperature, top_p = self.composer.sampling()
        return GenerationRequest(tuple(messages), thinking=thinking,
                                 reasoning_budget=self.composer.budget_tokens if thinking else None,
                                 sampling=SamplingParams(temperature=temperature, top_p=top_p,
                                                         max_tokens=self.max_tokens))

    def send(self, text: str) -> None:
        if self.bridge.busy:
            return
        if self.conversation_id is None:
            self.conversation_id = self.store.create(text[:60], self.composer.think.isChecked(),
                                                     self.composer.budget_tokens)
            self.sidebar.model.refresh()
            self.sidebar.select(self.conversation_id)
        if self._edit_parent is not None:  # an edited question: a new branch beside the old one
            parent = self._edit_parent
            self.store.add(self.conversation_id, "user", text, parent_id=parent if parent > 0 else None)
            self.cancel_edit()
            self._render()
        else:
            user_id = self.store.add(self.conversation_id, "user", text)
            self.chat.add(UserMessage(text))
            self._add_tools(user_id, "user")
        self._answer()

    def regenerate(self) -> None:
        """A new answer to the last question, kept beside the old one (switch with ‹ ›)."""
        if self.bridge.busy or self.conversation_id is None:
            return
        path = self.store.path(self.conversation_id)
        if len(path) < 2 or path[-1].role != "assistant":
            return
        self.store.set_head(self.conversation_id, path[-2].id)
        self._render()
        self._answer()

    def _answer(self) -> None:
        assert self.conversation_id is not None
        self.last_request = self.request()
        self._current_id = self.store.add(self.conversation_id, "assistant", state="streaming")
        self.current = AssistantMessage(self.renderer)
        self.chat.add(self.current)
        self.bridge.generate(self.last_request)

    def edit(self, message_id: int) -> None:
        """Put an earlier question back in the box; sending it starts a new branch there."""
        if self.bridge.busy:
            return
        parent = self.store.parent(message_id)
        self._edit_parent = parent if parent is not None else 0
        text = next(m.content for m in self.store.path(self.conversation_id or 0) if m.id == message_id)
        self.composer.input.setPlainText(text)
        self.composer.show_editing(True)
        self.composer.input.setFocus()

    def cancel_edit(self) -> None:
        self._edit_parent = None
        self.composer.show_editing(False)

    def switch_branch(self, message_id: int) -> None:
        if self.bridge.busy or self.conversation_id is None:
            return
        self.store.set_head(self.conversation_id, self.store.leaf(message_id))
        self._render()

    def _on_events(self, events: list[EngineEvent]) -> None:
        current = self.current
        if current is None:
            return
        current.apply(events)
        for event in events:
            if isinstance(event, Usage):
                self._show_status(event)
        self.store.update(self._current_id, content=current.answer.text, reasoning=current.reasoning)
        if current.finish is not None or current.error is not None:
            self._answer_ended(current)

    def _answer_ended(self, current: AssistantMessage) -> None:
        assert self.conversation_id is not None
        if current.error is None:
            state = "cancelled" if current.finish is FinishReason.CANCELLED else "done"
            self.store.update(self._current_id, content=current.answer.text.strip(), state=state,
                              figures=current.figures())
            self._add_tools(self._current_id, "assistant")
        else:
            # The failed turn leaves the conversation; its question goes back into the box.
            self.store.update(self._current_id, state="error")
            path = self.store.path(self.conversation_id)
            question = path[-2]
            self.store.set_head(self.conversation_id, self.store.parent(question.id))
            if not self.composer.input.toPlainText():
                self.composer.input.setPlainText(question.content)
        self.current = None
        self.sidebar.model.refresh()

    def new_chat(self) -> None:
        if self.bridge.busy:
            return
        self.cancel_edit()
        self.conversation_id = None
        self.chat.clear()
        self.composer.input.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        if self.bridge.busy or conversation_id == self.conversation_id:
            return
        self.cancel_edit()
        self.conversation_id = conversation_id
        conv = self.store.get(conversation_id)
        self.composer.think.setChecked(conv.thinking)
        self.composer.set_budget(conv.budget)
        self._render()

    def _render(self) -> None:
        """Show the conversation's current branch, with ‹ › where a message has alternatives."""
        self.chat.clear()
        if self.conversation_id is None:
            return
        for m in self.store.path(self.conversation_id):
            if m.role == "user":
                self.chat.add(UserMessage(m.content))
            elif m.role == "assistant":
                widget = AssistantMessage(self.renderer)
                self.chat.add(widget)
                widget.restore(m.reasoning, m.content, m.state, m.figures)
            self._add_tools(m.id, m.role)

    def _add_tools(self, message_id: int, role: str) -> None:
        siblings = self.store.siblings(message_id)
        if len(siblings) > 1 or role == "user":
            tools = MessageTools(message_id, siblings, editable=role == "user")
            tools.switchTo.connect(self.switch_branch)
            tools.editRequested.connect(self.edit)
            self.chat.add(tools)

    def _follow_color_scheme(self, scheme: Qt.ColorScheme) -> None:
        """The system switched light/dark: new code blocks use matching colours, shown ones re-render."""
        self.renderer.set_dark(scheme == Qt.ColorScheme.Dark)
        if not self.bridge.busy:
            self._render()

    def _save_settings(self) -> None:
        if self.conversation_id is not None:
            conv = self.store.get(self.conversation_id)
            self.store.set_settings(self.conversation_id, thinking=self.composer.think.isChecked(),
                                    budget=self.composer.budget_tokens, system_prompt=conv.system_prompt)

    def _offer_undo(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:
            self.new_chat()
        self._deleted_id = conversation_id
        self.undo.show()
        QTimer.singleShot(10_000, self.undo.hide)

    def _undo_delete(self) -> None:
        if self._deleted_id is not None:
            self.store.set_delete(self._deleted_id, False)
            self.sidebar.model.refresh()
            self._deleted_id = None
        self.undo.hide()

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
        search = QAction("Search chats", self)
        search.setShortcut("Ctrl+F")
        search.triggered.connect(self.sidebar.search.setFocus)
        settings = QAction("Load settings…", self)
        settings.triggered.connect(self._load_settings)
        unload = QAction("Unload", self)
        unload.triggered.connect(self.unload_model)
        for action in (open_action, demo, settings, unload, stop, search):
            menu.addAction(action)
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

    def set_system_prompt(self, text: str) -> None:
        if self.conversation_id is None:
            self.conversation_id = self.store.create("New chat", self.composer.think.isChecked(),
                                                     self.composer.budget_tokens)
            self.sidebar.model.refresh()
        self.store.set_settings(self.conversation_id, thinking=self.composer.think.isChecked(),
                                budget=self.composer.budget_tokens, system_prompt=text.strip())

    def _edit_system_prompt(self) -> None:
        current = self.store.get(self.conversation_id).system_prompt if self.conversation_id else ""
        text, ok = QInputDialog.getMultiLineText(self, "System prompt", "Instructions for this conversation:",
                                                 current)
        if ok:
            self.set_system_prompt(text)

    def _export(self, kind: str) -> None:
        if self.conversation_id is None:
            return
        from app.export import to_json, to_markdown

        title = self.store.get(self.conversation_id).title
        path, _ = QFileDialog.getSaveFileName(self, "Export conversation", str(Path.home() / f"{title[:40]}.{kind}"))
        if not path:
            return
        body = to_markdown(self.store, self.conversation_id) if kind == "md" else to_json(self.store,
                                                                                             self.conversation_id)
        try:
            Path(path).write_text(body, encoding="utf-8")
        except OSError as exc:
            QMessageBox.warning(self, "Export failed", f"Could not write {path}: {exc.strerror}. "
                                "Choose another folder, or free some disk space.")

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.load_model(path)

    def load_model(self, path: str | None) -> None:
        """Load a GGUF (None: the demo model) with the saved load settings; the window stays usable."""
        if self.bridge.busy:
            self.status.setText("Wait for the current answer or load to finish, or stop it first.")
            return
        self._model_path = path
        self.bridge.load(LoadSpec(path, saved_options()))

    def unload_model(self) -> None:
        """End the engine process: its memory, GPU memory included, is given back at once."""
        if self.bridge.busy:
            return
        self.serve_action.setChecked(False)
        self.bridge.client.unload()
        self.bridge.model = None
        self.status.setText("No model loaded")

    def _load_settings(self) -> None:
        if LoadSettingsDialog(self).exec() and self.bridge.model is not None:
            self.load_model(getattr(self, "_model_path", self.bridge.model.path))

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
            self.resize(1100, 760)

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        QSettings().setValue("window/geometry", self.saveGeometry())
        self.set_serving(False)
        self.bridge.shutdown()
        super().closeEvent(event)
