"""The conversation behaviour of the main window: sending, streaming into the store, regenerating,
editing into a branch, switching branches, and showing a stored conversation.

A mixin of MainWindow (which owns the widgets named below), kept apart so each file has one job.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from app.gui.branches import MessageTools
from app.gui.bridge import EngineBridge
from app.gui.chat_view import ChatView
from app.gui.composer import Composer
from app.gui.markdown import MarkdownRenderer
from app.gui.messages import AssistantMessage, UserMessage
from app.gui.qt import QFileDialog, QInputDialog, QLabel, QMessageBox, QPushButton, Qt, QTimer, QWidget
from app.gui.sidebar import Sidebar
from app.store import ChatStore
from engine.api import EngineEvent, FinishReason, GenerationRequest, Message, SamplingParams, Usage


class ConversationMixin:
    """Needs, from the window: bridge, store, renderer, sidebar, chat, composer, undo, status."""

    bridge: EngineBridge
    store: ChatStore
    renderer: MarkdownRenderer
    sidebar: Sidebar
    chat: ChatView
    composer: Composer
    undo: QPushButton
    status: QLabel
    conversation_id: int | None
    max_tokens: int
    last_request: GenerationRequest | None
    current: AssistantMessage | None
    _current_id: int
    _deleted_id: int | None
    _edit_parent: int | None

    def _show_status(self, usage: Usage) -> None: ...

    @property
    def _as_widget(self) -> QWidget:
        return cast(QWidget, self)  # the window this is mixed into: the parent of its dialogs


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
        if self.bridge.busy or self.store.read_only:
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
        if self.bridge.busy or self.conversation_id is None or self.store.read_only:
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
        if self.bridge.busy or self.conversation_id is None or self.store.read_only:
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
        if self.conversation_id is not None and not self.store.read_only:
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

    def set_system_prompt(self, text: str) -> None:
        if self.store.read_only:
            return
        if self.conversation_id is None:
            self.conversation_id = self.store.create("New chat", self.composer.think.isChecked(),
                                                     self.composer.budget_tokens)
            self.sidebar.model.refresh()
        self.store.set_settings(self.conversation_id, thinking=self.composer.think.isChecked(),
                                budget=self.composer.budget_tokens, system_prompt=text.strip())

    def _edit_system_prompt(self) -> None:
        current = self.store.get(self.conversation_id).system_prompt if self.conversation_id else ""
        text, ok = QInputDialog.getMultiLineText(self._as_widget, "System prompt",
                                                 "Instructions for this conversation:", current)
        if ok:
            self.set_system_prompt(text)

    def _export(self, kind: str) -> None:
        if self.conversation_id is None:
            return
        from app.export import to_json, to_markdown

        title = self.store.get(self.conversation_id).title
        suggested = str(Path.home() / f"{title[:40]}.{kind}")
        path, _ = QFileDialog.getSaveFileName(self._as_widget, "Export conversation", suggested)
        if not path:
            return
        body = to_markdown(self.store, self.conversation_id) if kind == "md" else to_json(self.store,
                                                                                             self.conversation_id)
        try:
            Path(path).write_text(body, encoding="utf-8")
        except OSError as exc:
            QMessageBox.warning(self._as_widget, "Export failed", f"Could not write {path}: {exc.strerror}. "
                                "Choose another folder, or free some disk space.")
