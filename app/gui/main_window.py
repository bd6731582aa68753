"""The main window: it composes the widgets and connects their signals.

The conversation itself (store, branches, sending, saving while streaming, export) is the
ConversationController (app/controller.py), which knows no Qt; this window is its view. Downloads are
the Downloads helper (app/gui/download_host.py). The model loads in the engine process while the
window is already usable, with progress in the status line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.controller import TRUNCATE_THINKING, ConversationController, Shown, TurnSettings
from app.gui.announce import Announcer
from app.gui.api_switch import ApiServer
from app.gui.branches import MessageTools
from app.gui.bridge import EngineBridge
from app.gui.chat_view import ChatView, empty_hint
from app.gui.composer import Composer
from app.gui.context_gauge import ContextGauge
from app.gui.download_host import Downloads
from app.gui.elided_label import ElidedLabel
from app.gui.handoff import Handoff
from app.gui.load_dialog import LoadSettingsDialog, saved_spec
from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AssistantMessage, UserMessage
from app.gui.qt import (
    QAction,
    QFileDialog,
    QGuiApplication,
    QHBoxLayout,
    QInputDialog,
    QKeySequence,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSettings,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
)
from app.gui.reasoning_menu import ReasoningMenu
from app.gui.sidebar import Sidebar
from app.gui.system_prompt import SystemPromptDialog
from app.gui.undo_delete import DeletedChats
from app.store import ChatStore
from engine.api import EngineEvent, Error, GenerationRequest, LoadSpec, Message, ModelInfo, Usage
from engine.errors import EngineError


class MainWindow(QMainWindow):
    def __init__(self, bridge: EngineBridge, store: ChatStore, load: LoadSpec | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Nemotron Desk")
        self.bridge = bridge
        self.store = store
        self.renderer = MarkdownRenderer(dark=self.palette().window().color().lightness() < 128)
        self.current: AssistantMessage | None = None  # the answer streaming now
        self._streamed: AssistantMessage | None = None  # the last answer streamed here (it may go on)
        self._keep_scroll: int | None = None  # while a version switch redraws: the reading position
        self.model_path: str | None = None  # what was loaded last (None: the demo), for a reload
        self.model_text = ""
        self.sidebar = Sidebar(store, self)
        self.chat = ChatView(self)
        self.composer = Composer(self)
        central = QWidget(self)
        right = QVBoxLayout()
        right.addWidget(self.chat, 1)
        self.gauge = ContextGauge(self)  # on the composer's edge: the status line has no room left for it
        right.addWidget(self.gauge, 0, Qt.AlignmentFlag.AlignRight)
        right.addWidget(self.composer)
        layout = QHBoxLayout(central)
        layout.addWidget(self.sidebar)
        layout.addLayout(right, 1)
        self.setCentralWidget(central)
        self.status: QLabel = ElidedLabel("No model loaded", self)  # full text in its tooltip and for a reader
        self.undo = QPushButton("Undo delete", self)
        self.undo.hide()
        self.api: ApiServer | None = None
        self._api_starting: ApiServer | None = None
        self.handoff = Handoff(self)
        self.api_label = QLabel("", self)
        self.download_label = QLabel("", self)
        self.statusBar().addWidget(self.status, 1)  # not permanent: a passing message ("Copied ...") shows in its place
        self.statusBar().addPermanentWidget(self.api_label)
        self.statusBar().addPermanentWidget(self.undo)
        self.statusBar().addPermanentWidget(self.download_label)
        self.downloads = Downloads(self, self.download_label, self.load_model, bridge)
        self.controller = ConversationController(store, bridge, self)
        self.deleted_chats = DeletedChats(store, self.controller.undelete, self)
        if not store.read_only:
            for conversation_id in store.deleted():  # left by a crash while Undo was offered
                store.purge(conversation_id)
        self._menus()
        self.reasoning_menu = ReasoningMenu(self)  # Answer now (Ctrl+Shift+Enter), loop detection
        self.menuBar().addMenu(self.reasoning_menu)
        self.reasoning_menu.answerNowRequested.connect(self.answer_now)
        self._connect()
        self.announcer = Announcer(self.bridge.events, self.sidebar.deleted, self.statusBar())
        self._restore_geometry()
        QTimer.singleShot(0, self.renderer.warm_up)  # once the window is up, not before
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._follow_color_scheme)
        if load is not None:
            self.model_path = load.model_path
            self.bridge.load(load)

    def _connect(self) -> None:
        self.composer.sendRequested.connect(self.send)
        self.composer.stopRequested.connect(self.bridge.stop)
        self.composer.regenerateRequested.connect(self.regenerate)
        self.composer.cancelEditRequested.connect(self.controller.cancel_edit)
        self.composer.editLastRequested.connect(self.edit_last)
        self.composer.think.toggled.connect(self._save_settings)
        self.composer.budget.valueChanged.connect(self._save_settings)
        self.sidebar.conversationChosen.connect(self.open_conversation)
        self.sidebar.newRequested.connect(self.new_chat)
        self.sidebar.deleted.connect(self._offer_undo)
        self.undo.clicked.connect(self.undo_delete)
        self.deleted_chats.changed.connect(self._show_undo)
        self.bridge.events.connect(self._on_events)
        self.bridge.loadProgress.connect(lambda stage, f: self.status.setText(f"{stage}…"))
        self.bridge.loaded.connect(self._on_loaded)
        self.bridge.failed.connect(self._on_failed)
        self.bridge.busyChanged.connect(self.composer.set_busy)
        self._connect_gauge()

    def _connect_gauge(self) -> None:
        """The context gauge: counted after typing pauses and after each answer or load, never while busy."""
        self.composer.input.textChanged.connect(self.gauge.schedule)
        self.gauge.countWanted.connect(self._count_context)
        self.gauge.dropToggled.connect(self._set_drop_thinking)
        self.bridge.counted.connect(self.gauge.show_count)
        self.bridge.busyChanged.connect(self._recount_when_idle)
        self.bridge.events.connect(self.gauge.stream)

    def _recount_when_idle(self, busy: bool) -> None:
        if not busy:
            self.gauge.schedule()

    def _count_context(self) -> None:
        if self.bridge.busy or self.controller.busy or self.bridge.model is None:
            return  # asked again when the engine is idle (busyChanged)
        try:
            request = self.controller.request(self.settings(), draft=self.composer.input.toPlainText())
        except EngineError:  # text the engine cannot take; sending it says why
            return
        self.bridge.count(request)

    def _set_drop_thinking(self, drop: bool) -> None:
        self.controller.set_drop_thinking(drop)
        self._count_context()

    # -- the conversation: what the window asks of the controller ---------------------------------

    @property
    def conversation_id(self) -> int | None:
        return self.controller.conversation_id

    @property
    def last_request(self) -> GenerationRequest | None:
        return self.controller.last_request

    @property
    def history(self) -> list[Message]:
        return self.controller.history()

    def settings(self) -> TurnSettings:
        temperature, top_p = self.composer.sampling()
        model = self.bridge.model
        drop = self.gauge.drop.isChecked() if model and TRUNCATE_THINKING in model.template_variables else None
        return TurnSettings(self.composer.think.isChecked(), self.composer.budget_tokens, temperature, top_p,
                            self.max_tokens, drop, loop_detection=self.reasoning_menu.loop_detection)

    def send(self, text: str) -> None:
        self.controller.send(text, self.settings())

    def regenerate(self) -> None:
        """A new answer to the last question, kept beside the old one (switch with ‹ ›)."""
        self.controller.regenerate(self.settings())

    def edit(self, message_id: int) -> None:
        self.controller.edit(message_id)

    def answer_now(self) -> None:
        """End the thinking that streams now; the model answers from it."""
        if not self.controller.answer_now() and self.current is not None:
            self.current.thinking.answer_now_refused()

    def answer_from_thinking(self) -> None:
        self.controller.answer_from_thinking(self.settings())

    def think_longer(self) -> None:
        self.controller.think_longer(self.settings(), self._context)

    @property
    def _context(self) -> int | None:
        return self.bridge.model.n_ctx if self.bridge.model else None

    def edit_last(self) -> None:
        self.controller.edit_last()

    def copy_last_answer(self) -> None:
        text = self.controller.last_answer()
        if text:
            QGuiApplication.clipboard().setText(text)
            self.announcer.say("Copied the last answer.")

    def switch_branch(self, message_id: int) -> None:
        """Show another version (‹ ›) where the person is reading, not at the bottom."""
        self._keep_scroll = self.chat.verticalScrollBar().value()
        try:
            self.controller.switch_branch(message_id)
        finally:
            self._keep_scroll = None

    def new_chat(self) -> None:
        if self.controller.new_chat():
            self.sidebar.select(None)
            self.gauge.set_drop(self.controller.drop_thinking)
            self.gauge.schedule()
            self.composer.input.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        if self.controller.busy or conversation_id == self.controller.conversation_id:
            self.sidebar.select(self.controller.conversation_id)  # the highlight stays where the chat is
            return
        self.sidebar.select(conversation_id)
        conv = self.store.get(conversation_id)
        self.composer.think.setChecked(conv.thinking)
        self.composer.set_budget(conv.budget)
        self.gauge.set_drop(conv.drop_thinking)
        self.controller.open(conversation_id)
        self.gauge.schedule()

    def set_system_prompt(self, text: str) -> None:
        self.controller.set_system_prompt(text, self.composer.think.isChecked(), self.composer.budget_tokens)

    def _on_events(self, events: list[EngineEvent]) -> None:
        self.controller.on_events(events)
        self.reasoning_menu.answer_now.setEnabled(self.controller.reasoning_now)
        for event in events:
            if isinstance(event, Usage):
                self._show_status(event)

    def _save_settings(self) -> None:
        self.controller.save_settings(self.composer.think.isChecked(), self.composer.budget_tokens)

    def _offer_undo(self, conversation_id: int) -> None:
        self.controller.deleted(conversation_id)
        self.deleted_chats.push(conversation_id)

    def undo_delete(self) -> None:
        """Bring back the newest deleted chat (the Undo button, Ctrl+Z); again: the one before."""
        self.deleted_chats.undo()

    def _show_undo(self) -> None:
        titles = self.deleted_chats.titles
        self.undo.setVisible(bool(titles))
        self.undo_action.setEnabled(bool(titles))
        if titles:
            more = f" (+{len(titles) - 1} more, Ctrl+Z)" if len(titles) > 1 else ""
            self.undo.setText(f"Undo delete{more}")
            self.undo.setToolTip(f"Bring back “{titles[0]}” (Ctrl+Z)")

    def _edit_system_prompt(self) -> None:
        dialog = SystemPromptDialog(self.controller.system_prompt(), self)
        if dialog.exec():
            self.set_system_prompt(dialog.text())

    def _export(self, kind: str) -> None:
        if self.controller.conversation_id is None:
            return
        suggested = str(Path.home() / f"{self.controller.title()[:40]}.{kind}")
        path, _ = QFileDialog.getSaveFileName(self, "Export conversation", suggested)
        if not path:
            return
        try:
            self.controller.export(Path(path), kind)
        except OSError as exc:
            QMessageBox.warning(self, "Export failed", f"Could not write {path}: {exc.strerror}. "
                                "Choose another folder, or free some disk space.")

    def _follow_color_scheme(self, scheme: Qt.ColorScheme) -> None:
        """The system switched light/dark: new code blocks use matching colours, shown ones re-render."""
        self.renderer.set_dark(scheme == Qt.ColorScheme.Dark)
        self.controller.refresh()

    # -- the conversation: what the controller tells the window (ConversationView) ---------------

    def show_branch(self, messages: list[Shown]) -> None:
        """Show the conversation's current branch, with ‹ › where a message has versions."""
        self.chat.clear(keep=self._keep_scroll)
        self._streamed = None
        for shown in messages:
            m = shown.message
            if m.role == "user":
                self.chat.add(UserMessage(m.content))
            elif m.role == "assistant":
                widget = AssistantMessage(self.renderer)
                self.chat.add(widget)
                widget.restore(m.reasoning, m.content, m.state, m.figures)
                self._streamed = self._steer(widget)
            self._add_tools(shown)
        if self._streamed is not None and self.controller.room_answer() is not None:  # saved: offer it again
            self._offer_room(self._streamed)

    def question_added(self, question: Shown) -> None:
        self.chat.add(UserMessage(question.message.content))
        self._add_tools(question)
        self.chat.follow_bottom()  # however far up the person was reading: their message comes into view

    def answer_started(self) -> None:
        self.gauge.answer_started()
        self.current = AssistantMessage(self.renderer)
        self.current.show_waiting()
        self.chat.add(self.current)
        self._streamed = self._steer(self.current)

    def _steer(self, answer: AssistantMessage) -> AssistantMessage:
        answer.answerNowRequested.connect(self.answer_now)
        answer.stopRequested.connect(self.bridge.stop)
        answer.answerFromThinkingRequested.connect(self.answer_from_thinking)
        answer.thinkLongerRequested.connect(self.think_longer)
        return answer

    def _offer_room(self, answer: AssistantMessage) -> None:
        longer = self.controller.think_longer_settings(self.settings(), self._context)
        answer.offer_room(longer is not None, "The thinking already had the whole context: load the model "
                          "with a larger context (Model ▸ Load settings…) to think longer.")

    def answer_resumed(self) -> None:
        """The last answer goes on after its thinking (it is the one that offered it)."""
        self.current = self._streamed
        if self.current is not None:
            self.current.resume()

    def answer_events(self, events: list[EngineEvent]) -> None:
        if self.current is not None:
            self.current.apply(events)

    def answer_ended(self, answer: Shown | None) -> None:
        if answer is not None and self.current is not None and self.current.took_all_the_room:
            self._offer_room(self.current)
        if answer is not None and not answer.message.figures.get("answered_from_thinking"):
            self._add_tools(answer)
        self.current = None

    def question_returned(self, text: str) -> None:
        if not self.composer.input.toPlainText():
            self.composer.input.setPlainText(text)

    def conversations_changed(self, current: int | None) -> None:
        self.sidebar.select(current)
        self.sidebar.model.refresh()  # the highlight follows (Sidebar keeps it across resets)

    def editing_changed(self, text: str | None) -> None:
        if text is None:
            self.composer.show_editing(False)
            return
        self.composer.input.setPlainText(text)
        self.composer.show_editing(True)
        self.composer.input.setFocus()

    def _add_tools(self, shown: Shown) -> None:
        role = shown.message.role
        if len(shown.versions) > 1 or role == "user":
            tools = MessageTools(shown.message.id, shown.versions, editable=role == "user")
            tools.switchTo.connect(self.switch_branch)
            tools.editRequested.connect(self.edit)
            self.chat.add(tools)

    # -- model -----------------------------------------------------------------------------------

    def _action(self, text: str, slot: Callable[[], object],
                shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None) -> QAction:
        """A menu action with a mnemonic in `text`; its shortcut shows beside it in the menu."""
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _menus(self) -> None:
        file = self.menuBar().addMenu("&File")
        file.addAction(self._action("&New chat", self.new_chat, QKeySequence.StandardKey.New))
        file.addAction(self._action("&Search chats", self.sidebar.search.setFocus, QKeySequence.StandardKey.Find))
        file.addSeparator()
        file.addAction(self._action("Export as &Markdown…", lambda: self._export("md")))
        file.addAction(self._action("Export as &JSON…", lambda: self._export("json")))
        file.addSeparator()
        file.addAction(self._action("&Quit", self.close, "Ctrl+Q"))
        chat = self.menuBar().addMenu("&Conversation")
        chat.addAction(self._action("&Regenerate answer", self.regenerate, "Ctrl+R"))
        chat.addAction(self._action("&Edit last question", self.edit_last, "Ctrl+E"))
        chat.addAction(self._action("&Copy last answer", self.copy_last_answer, "Ctrl+Shift+C"))
        chat.addAction(self._action("S&top answer", self.bridge.stop, "Ctrl+."))
        chat.addSeparator()
        chat.addAction(self._action("System &prompt…", self._edit_system_prompt))
        chat.addAction(self.sidebar.delete_action)
        # Ctrl+Z in a text box is that box's undo (it takes the key first); elsewhere it brings a chat back.
        self.undo_action = self._action("&Undo delete", self.undo_delete, QKeySequence.StandardKey.Undo)
        self.undo_action.setEnabled(False)
        chat.addAction(self.undo_action)
        menu = self.menuBar().addMenu("&Model")
        for action in (self._action("&Open GGUF file…", self._choose_model),
                       self._action("Open &Hugging Face folder…", self._choose_folder),
                       self._action("Use the &demo model", lambda: self.load_model(None)),
                       self._action("&Connect to a server…", self._connect_server),
                       self._action("&Load settings…", self._load_settings),
                       self._action("&Unload", self.unload_model)):
            menu.addAction(action)
        menu.addSeparator()
        self.downloads.add_actions(menu)
        menu.addAction(self._action("Install the &torch backend (CUDA PyTorch)…", self._install_torch))
        server = self.menuBar().addMenu("&Server")
        self.serve_action = QAction("&Serve the model on 127.0.0.1 (OpenAI API)", self)
        self.serve_action.setCheckable(True)
        self.serve_action.toggled.connect(self.set_serving)
        server.addAction(self.serve_action)
        server.addAction(self._action("&Port…", self._choose_port))

    def set_serving(self, on: bool) -> None:
        """Switch the local API on or off; it shares this window's engine. It starts in a thread (uvicorn
        binds its port there), and says in the status line when it listens or why it cannot."""
        if on and self.api is None and self._api_starting is None:
            if self.bridge.model is None:
                self.status.setText("Load a model first, then switch the API on.")
                self.serve_action.setChecked(False)
                return
            port = int(str(QSettings().value("server/port", 8000)))
            api = ApiServer(self.bridge.client, self.bridge.model, port)
            self._api_starting = api
            self.api_label.setText("API: starting…")
            self.handoff.run(api.start, lambda problem: self._api_started(api, problem), "api-start")
        elif not on:
            starting, self._api_starting = self._api_starting, None
            if starting is not None:
                starting.stop()
            if self.api is not None:
                self.api.stop()
                self.api = None
            self.api_label.setText("")

    def _api_started(self, api: ApiServer, problem: str | Exception | None) -> None:
        if api is not self._api_starting:  # switched off meanwhile: stop() has run
            return
        self._api_starting = None
        if isinstance(problem, Exception):
            api.stop()
            raise problem
        if problem is not None:
            self.status.setText(problem)
            self.api_label.setText("")
            self.serve_action.setChecked(False)
            return
        self.api = api
        self.api_label.setText(f"API: {api.url}")

    def _choose_port(self) -> None:
        port, ok = QInputDialog.getInt(self, "API port", "Port on 127.0.0.1:",
                                       int(str(QSettings().value("server/port", 8000))), 1024, 65535)
        if ok:
            QSettings().setValue("server/port", port)
            if self.api is not None or self._api_starting is not None:  # move the running server
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
        self.model_path = path
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
            self.load_model(self.model_path)

    def _on_loaded(self, info: ModelInfo) -> None:
        if info.backend == "remote":
            self.model_text = f"{info.name} · {info.architecture} at {info.path}"
        else:
            where = info.device or f"GPU layers {info.n_gpu_layers}"
            self.model_text = f"{info.name} · {info.backend} · {info.quantization} · {where} · context {info.n_ctx}"
        self.status.setText(self.model_text)
        tip = [f"{info.path}", info.kernels, *info.notes]
        self.status.setToolTip("\n".join(t for t in tip if t))
        if info.notes:  # e.g. weights spilled to CPU memory: say it where it is seen
            self.status.setText(f"{self.model_text} · {info.notes[0]}")
        self.composer.follow_model(info)  # max tokens, the budget's steps, Think, the sampling preset
        self.chat.set_hint(empty_hint(info))
        if self.api is not None:
            self.api.follow(info)  # the API serves what is loaded now

    @property
    def max_tokens(self) -> int:
        return self.composer.max_tokens

    @max_tokens.setter
    def max_tokens(self, tokens: int) -> None:
        self.composer.cap_tokens = tokens

    def _on_failed(self, error: Error) -> None:
        if self.controller.answer is None:  # a load error; answer errors show in the answer
            self.status.setText(f"{error.message} {error.action}".strip())

    def _show_status(self, usage: Usage) -> None:
        # the context in use is the gauge's (above the composer)
        self.status.setText(f"{self.model_text} · "
                            f"{usage.decode_tokens_per_s:.1f} tok/s · first token {usage.time_to_first_token_s:.2f} s")

    # -- window ----------------------------------------------------------------------------------

    def offer_first_run(self) -> bool:
        return self.downloads.offer_first_run()

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
        self.statusBar().addWidget(self.read_only_label, 2)
        self.status.setText("Read-only")

    def _restore_geometry(self) -> None:
        geometry = QSettings().value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 760)

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        QSettings().setValue("window/geometry", self.saveGeometry())
        self.gauge.shut()
        self.set_serving(False)
        self.downloads.close()
        if not self.store.read_only:
            self.deleted_chats.purge_all()
        self.bridge.shutdown()
        self.controller.close()
        super().closeEvent(event)
