"""ConversationController: the chat without a window.

It owns what a conversation does: the ChatStore, the conversation on screen and its branch, sending,
streaming into the store (appending what is new, on a writer thread), regenerating (a new version
beside the old one), editing a question (a new branch), stopping, rolling back a failed send, and
exporting; steering the reasoning (answer now, loop detection) and, when the thinking took all the
room, answering from that thinking (the same turn, continued) or thinking longer (a new version with
twice the room). It knows no Qt: it talks to the engine through `Engine` (the GUI's EngineBridge, or
EngineJobs over an EngineClient) and tells the front end what changed through `ConversationView`.

The engine's events come back through `on_events()`, called on the thread that owns the controller
(the UI thread in the app), in batches (one per frame in the app).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from app.export import to_json, to_markdown
from app.store import ChatStore, StoredMessage, StreamWriter
from engine.api import (
    MAX_BUDGET,
    ContentDelta,
    EngineEvent,
    Error,
    Finished,
    FinishReason,
    GenerationRequest,
    Message,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
    SamplingParams,
    Usage,
)

#: The chat template variable that drops earlier turns' reasoning (Nemotron's template: True by default).
TRUNCATE_THINKING = "truncate_history_thinking"


class Engine(Protocol):
    """What the controller needs of the engine: start an answer, stop it, end its reasoning now, and
    whether one runs."""

    @property
    def busy(self) -> bool: ...

    def generate(self, request: GenerationRequest) -> bool: ...

    def stop(self) -> None: ...

    def answer_now(self) -> bool: ...


@dataclass(frozen=True)
class Shown:
    """A message on screen with its versions (itself and its siblings, oldest first)."""

    message: StoredMessage
    versions: list[int]


class ConversationView(Protocol):
    """What the front end is told; each call happens on the controller's thread."""

    def show_branch(self, messages: list[Shown]) -> None: ...         # replace everything on screen
    def question_added(self, question: Shown) -> None: ...
    def answer_started(self) -> None: ...                             # nothing arrived yet: show that it waits
    def answer_resumed(self) -> None: ...                             # the last answer on screen goes on
    def answer_events(self, events: list[EngineEvent]) -> None: ...  # one batch, in order
    def answer_ended(self, answer: Shown | None) -> None: ...         # None: it failed (its error was in the events)
    def question_returned(self, text: str) -> None: ...               # a failed question, back for the composer
    def conversations_changed(self, current: int | None) -> None: ...
    def editing_changed(self, text: str | None) -> None: ...          # a question to edit, or editing ended


@dataclass(frozen=True)
class TurnSettings:
    thinking: bool = True
    budget: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 8192
    #: Leave earlier turns' reasoning out of the prompt (the template's truncate_history_thinking);
    #: None: the loaded model's template has no such switch, so nothing is sent.
    drop_thinking: bool | None = None
    loop_detection: str = "warn"  # off, warn or end (GenerationRequest.loop_detection)


def took_all_the_room(reasoning: str, ended_by: str, finish: FinishReason | None, content: str) -> bool:
    """Whether the thinking used the answer's room: the length limit came inside the reasoning, or the
    room guard closed it and the answer is empty or was cut. `ended_by` is a ReasoningEndCause, ""
    (still open) or "length"."""
    if not reasoning:
        return False
    if finish is FinishReason.LENGTH and ended_by in ("", "length"):
        return True
    return ended_by == ReasoningEndCause.ANSWER_ROOM and (finish is FinishReason.LENGTH or not content.strip())


#: The figures of an answer's thinking, kept when the answer is continued from it.
THINKING_FIGURES = ("reasoning_tokens", "by_budget", "reasoning_ended_by", "thinking_s")


@dataclass
class Answer:
    """The answer streaming now, as the controller has it (what is saved, and its figures)."""

    message_id: int
    new_question: int | None  # the question sent with it (rolled back with it if it fails); None: regenerate
    started: float = field(default_factory=time.monotonic)
    content: str = ""
    reasoning: str = ""
    reasoning_pieces: int = 0
    reasoning_tokens: int | None = None
    by_budget: bool = False
    ended_by: str = ""  # a ReasoningEndCause once the reasoning ended; "" while it runs (or never did)
    thinking_s: float | None = None
    usage: Usage | None = None
    finish: FinishReason | None = None
    error: Error | None = None
    continued: StoredMessage | None = None  # answering from saved thinking: the answer as it was saved

    @property
    def reasoning_now(self) -> bool:
        """The reasoning streams and has not ended (what answer now can end)."""
        return bool(self.reasoning) and not self.ended_by and not self.content and not self.ended

    @property
    def took_all_the_room(self) -> bool:
        ended_by = self.ended_by or ("length" if self.finish is FinishReason.LENGTH else "")
        return took_all_the_room(self.reasoning, ended_by, self.finish, self.content)

    def take(self, event: EngineEvent) -> tuple[str, str]:
        """One event; returns the (content, reasoning) text it adds."""
        if isinstance(event, ReasoningDelta):
            self.reasoning += event.text
            # the engine's token count where it gives one, else the pieces (one token each, at most)
            self.reasoning_pieces = max(self.reasoning_pieces + 1, event.reasoning_tokens)
            return "", event.text
        if isinstance(event, ReasoningEnded):
            self.reasoning_tokens, self.by_budget = event.reasoning_tokens, event.by_budget
            self.ended_by = str(event.cause)
            self._thought()
        elif isinstance(event, ContentDelta):
            if self.reasoning:
                self._thought()
            self.content += event.text
            return event.text, ""
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finished):
            self.finish = event.reason
        elif isinstance(event, Error):
            self.error = event
        return "", ""

    def _thought(self) -> None:
        if self.thinking_s is None:
            self.thinking_s = time.monotonic() - self.started

    @property
    def ended(self) -> bool:
        return self.finish is not None or self.error is not None

    def figures(self) -> dict[str, object]:
        tokens = self.reasoning_tokens if self.reasoning_tokens is not None else self.reasoning_pieces
        thinking_s = self.thinking_s if self.thinking_s is not None else (
            time.monotonic() - self.started if self.reasoning else 0.0)
        out: dict[str, object] = {"reasoning_tokens": tokens, "by_budget": self.by_budget,
                                  "reasoning_ended_by": self.ended_by, "thinking_s": round(thinking_s, 2)}
        if self.continued is not None:  # the thinking is the saved one; the answer's figures are new
            out = {k: v for k, v in self.continued.figures.items() if k in THINKING_FIGURES}
            out["answered_from_thinking"] = True
        if self.finish is not None:
            out["finish"] = str(self.finish)
        if self.usage is not None:
            out |= {"decode_tps": round(self.usage.decode_tokens_per_s, 2),
                    "ttft_s": round(self.usage.time_to_first_token_s, 3), "answer_tokens": self.usage.answer_tokens}
        return out


class ConversationController:
    def __init__(self, store: ChatStore, engine: Engine, view: ConversationView) -> None:
        self.store = store
        self.engine = engine
        self.view = view
        self.conversation_id: int | None = None
        self.last_request: GenerationRequest | None = None
        self.answer: Answer | None = None
        self.answered: Answer | None = None  # the last answer that ended (for its figures and settings)
        self.answer_settings: TurnSettings | None = None  # what the last new answer was asked with
        self.edit_parent: int | None = None  # editing: the parent of the question being replaced (0: none)
        self._writer: StreamWriter | None = None
        self._view_stale = False  # a failed turn is still on screen: the next send shows the branch first

    # -- reading ---------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.engine.busy or self.answer is not None

    @property
    def writable(self) -> bool:
        return not self.store.read_only

    def history(self) -> list[Message]:
        if self.conversation_id is None:
            return []
        return [Message(m.role, m.content, m.reasoning) for m in self.store.path(self.conversation_id)  # type: ignore[arg-type]
                if m.state != "streaming"]

    def branch(self) -> list[Shown]:
        if self.conversation_id is None:
            return []
        return [self._shown(m) for m in self.store.path(self.conversation_id)]

    def _shown(self, message: StoredMessage) -> Shown:
        return Shown(message, self.store.siblings(message.id))

    def system_prompt(self) -> str:
        return self.store.get(self.conversation_id).system_prompt if self.conversation_id else ""

    def request(self, settings: TurnSettings, draft: str | None = None) -> GenerationRequest:
        """The request for the next answer; with `draft`, as if that question were sent now (what the
        context gauge counts)."""
        system = self.system_prompt()
        history = self.history()
        if draft is not None and self.edit_parent is not None:  # the draft replaces an earlier question
            history = history[:self._position(self.edit_parent) + 1] if self.edit_parent > 0 else []
        messages = ([Message("system", system)] if system else []) + history
        if draft is not None:
            messages.append(Message("user", draft))
        kwargs = {} if settings.drop_thinking is None else {TRUNCATE_THINKING: settings.drop_thinking}
        return GenerationRequest(tuple(messages), thinking=settings.thinking,
                                 reasoning_budget=settings.budget if settings.thinking else None,
                                 sampling=SamplingParams(temperature=settings.temperature, top_p=settings.top_p,
                                                         max_tokens=settings.max_tokens),
                                 chat_template_kwargs=kwargs,
                                 loop_detection=settings.loop_detection)

    def _position(self, message_id: int) -> int:
        """Where a message stands in history()."""
        assert self.conversation_id is not None
        shown = [m.id for m in self.store.path(self.conversation_id) if m.state != "streaming"]
        return shown.index(message_id)

    @property
    def drop_thinking(self) -> bool:
        """Whether this conversation leaves earlier turns' reasoning out (new ones: yes, the template's default)."""
        return self.store.get(self.conversation_id).drop_thinking if self.conversation_id else True

    def set_drop_thinking(self, drop: bool) -> None:
        if self.conversation_id is not None and self.writable:
            self.store.set_drop_thinking(self.conversation_id, drop)

    # -- a turn ----------------------------------------------------------------------------------

    def send(self, text: str, settings: TurnSettings) -> bool:
        """Save the question (a new branch when editing), show it, and start its answer."""
        if self.busy or not self.writable:
            return False
        if self.conversation_id is None:
            self.conversation_id = self.store.create(text[:60], settings.thinking, settings.budget)
            if settings.drop_thinking is not None:
                self.store.set_drop_thinking(self.conversation_id, settings.drop_thinking)
            self.view.conversations_changed(self.conversation_id)
        if self.edit_parent is not None:  # an edited question: a new branch beside the old one
            parent = self.edit_parent
            question = self.store.add(self.conversation_id, "user", text, parent_id=parent if parent > 0 else None)
            self.cancel_edit()
            self._show()
        else:
            if self._view_stale:
                self._show()
            question = self.store.add(self.conversation_id, "user", text)
            self.view.question_added(self._shown(self._message(question)))
        self._answer(settings, new_question=question)
        return True

    def regenerate(self, settings: TurnSettings) -> bool:
        """A new answer to the last question, kept beside the old one (versions ‹ ›)."""
        if self.busy or self.conversation_id is None or not self.writable:
            return False
        path = self.store.path(self.conversation_id)
        if len(path) < 2 or path[-1].role != "assistant":
            return False
        self.store.set_head(self.conversation_id, path[-2].id)
        self._show()
        self._answer(settings, new_question=None)
        return True

    def _answer(self, settings: TurnSettings, new_question: int | None) -> None:
        assert self.conversation_id is not None
        self.last_request = self.request(settings)
        self.answer_settings = settings
        self.answer = Answer(self.store.add(self.conversation_id, "assistant", state="streaming"), new_question)
        self._writer = self._writer or self.store.stream_writer()
        self.view.answer_started()
        if not self.engine.generate(self.last_request):
            self.on_events([Error("The engine is busy with another job.", "Wait for it to finish, or stop it.",
                                  "busy")])

    def stop(self) -> None:
        self.engine.stop()

    # -- steering the reasoning ------------------------------------------------------------------

    @property
    def reasoning_now(self) -> bool:
        """An answer is reasoning now (answer now can end it)."""
        return self.answer is not None and self.answer.reasoning_now

    def answer_now(self) -> bool:
        """End the reasoning that streams now; the model answers from it (False: none streams)."""
        return self.reasoning_now and self.engine.answer_now()

    def room_answer(self) -> StoredMessage | None:
        """The last answer on the branch, when its thinking took all the room (and nothing runs)."""
        if self.busy or self.conversation_id is None or not self.writable:
            return None
        path = self.store.path(self.conversation_id)
        if len(path) < 2 or path[-1].role != "assistant" or path[-1].state not in ("done", "cancelled"):
            return None
        last = path[-1]
        finish = last.figures.get("finish")
        return last if took_all_the_room(last.reasoning, str(last.figures.get("reasoning_ended_by", "")),
                                         FinishReason(finish) if finish else None, last.content) else None

    def answer_from_thinking(self, settings: TurnSettings) -> bool:
        """The thinking took all the room: continue the same answer after that thinking, closed, with a
        fresh allowance of max tokens for the answer alone."""
        last = self.room_answer()
        if last is None:
            return False
        system = self.system_prompt()
        messages = ([Message("system", system)] if system else []) + self.history()
        self.last_request = GenerationRequest(
            tuple(messages), thinking=settings.thinking, continue_final_message=True,
            sampling=SamplingParams(temperature=settings.temperature, top_p=settings.top_p,
                                    max_tokens=settings.max_tokens),
            loop_detection=settings.loop_detection)
        self.answer = Answer(last.id, None, content=last.content, reasoning=last.reasoning, continued=last,
                             ended_by=str(last.figures.get("reasoning_ended_by", "")) or "length", thinking_s=0.0)
        self.store.update(last.id, state="streaming")
        self._writer = self._writer or self.store.stream_writer()
        self.view.answer_resumed()
        if not self.engine.generate(self.last_request):
            self.on_events([Error("The engine is busy with another job.", "Wait for it to finish, or stop it.",
                                  "busy")])
        return True

    def think_longer_settings(self, settings: TurnSettings, context: int | None = None) -> TurnSettings | None:
        """Settings with twice the room (max tokens, and the budget where there was one) for the answer
        whose thinking took all of it; None when there is nothing to gain (the context is full)."""
        if self.room_answer() is None:
            return None
        base = self.answer_settings or settings
        max_tokens = 2 * base.max_tokens
        usage = self.answered.usage if self.answered is not None else None
        if context:
            prompt = usage.prompt_tokens if usage is not None else 0
            max_tokens = min(max_tokens, context - prompt)
            if max_tokens <= base.max_tokens:
                return None
        budget = None if base.budget is None else min(2 * base.budget, MAX_BUDGET)
        return replace(settings, budget=budget, max_tokens=max_tokens)

    def think_longer(self, settings: TurnSettings, context: int | None = None) -> bool:
        """Regenerate the answer whose thinking took all the room with twice the room: a new version."""
        longer = self.think_longer_settings(settings, context)
        return longer is not None and self.regenerate(longer)

    def on_events(self, events: list[EngineEvent]) -> None:
        """A batch of the engine's events for the answer streaming now: shown, then saved (appended)."""
        answer = self.answer
        if answer is None:
            return
        content, reasoning = [], []
        for event in events:
            c, r = answer.take(event)
            if c:
                content.append(c)
            if r:
                reasoning.append(r)
        self.view.answer_events(events)
        if (content or reasoning) and self._writer is not None:
            self._writer.append(answer.message_id, content="".join(content), reasoning="".join(reasoning))
        if answer.ended:
            self._ended(answer)

    def _ended(self, answer: Answer) -> None:
        assert self.conversation_id is not None
        if self._writer is not None:
            self._writer.flush()  # every appended piece is on disk before the final state
        self.answer = None
        self.answered = answer
        if answer.error is not None and answer.continued is not None:  # the saved answer stays as it was
            saved = answer.continued
            self.store.update(answer.message_id, content=saved.content, state=saved.state, figures=saved.figures)
            self._view_stale = True
            self.view.answer_ended(None)
        elif answer.error is None:
            state = "cancelled" if answer.finish is FinishReason.CANCELLED else "done"
            self.store.update(answer.message_id, content=answer.content.strip(), state=state,
                              figures=answer.figures())
            self._view_stale = False
            self.view.answer_ended(self._shown(self._message(answer.message_id)))
        else:
            self._roll_back(answer)
            self.view.answer_ended(None)
        self.view.conversations_changed(self.conversation_id)

    def _roll_back(self, answer: Answer) -> None:
        """A failed turn leaves the conversation: no stray question, no false version of it."""
        assert self.conversation_id is not None
        self.store.update(answer.message_id, state="error")
        path = self.store.path(self.conversation_id)
        question = path[-2] if len(path) >= 2 else None
        if question is None:
            self.store.set_head(self.conversation_id, None)
        elif answer.new_question is not None:  # its question goes back into the box, not into the chat
            self.store.update(question.id, state="error")
            self.store.set_head(self.conversation_id, self.store.parent(question.id))
            self.view.question_returned(question.content)
        else:  # a failed regenerate: the versions there were before
            self.store.set_head(self.conversation_id, self.store.leaf(question.id))
        self._view_stale = True

    def _message(self, message_id: int) -> StoredMessage:
        assert self.conversation_id is not None
        return next(m for m in self.store.path(self.conversation_id) if m.id == message_id)

    # -- editing and versions --------------------------------------------------------------------

    def edit(self, message_id: int) -> None:
        """Offer an earlier question for editing; sending it starts a new branch there."""
        if self.busy or self.conversation_id is None:
            return
        parent = self.store.parent(message_id)
        self.edit_parent = parent if parent is not None else 0
        self.view.editing_changed(self._message(message_id).content)

    def edit_last(self) -> bool:
        """Offer the last question on screen for editing (Up in an empty message box, Ctrl+E)."""
        questions = [m for m in self.store.path(self.conversation_id) if m.role == "user"] \
            if self.conversation_id is not None else []
        if self.busy or not questions:
            return False
        self.edit(questions[-1].id)
        return True

    def last_answer(self) -> str:
        """The text of the last finished answer on screen ("" when there is none)."""
        answers = [m for m in self.branch() if m.message.role == "assistant" and m.message.state != "streaming"]
        return answers[-1].message.content if answers else ""

    def cancel_edit(self) -> None:
        self.edit_parent = None
        self.view.editing_changed(None)

    def switch_branch(self, message_id: int) -> None:
        if self.busy or self.conversation_id is None or not self.writable:
            return
        self.store.set_head(self.conversation_id, self.store.leaf(message_id))
        self._show()

    # -- conversations ---------------------------------------------------------------------------

    def new_chat(self) -> bool:
        if self.busy:
            return False
        self.cancel_edit()
        self.conversation_id = None
        self._view_stale = False
        self.view.show_branch([])
        return True

    def open(self, conversation_id: int) -> bool:
        if self.busy or conversation_id == self.conversation_id:
            return False
        self.cancel_edit()
        self.conversation_id = conversation_id
        self._show()
        return True

    def refresh(self) -> None:
        """Show the current branch again (e.g. the colours changed)."""
        if not self.busy:
            self._show()

    def _show(self) -> None:
        self._view_stale = False
        self.view.show_branch(self.branch())

    def save_settings(self, thinking: bool, budget: int | None) -> None:
        if self.conversation_id is not None and self.writable:
            self.store.set_settings(self.conversation_id, thinking=thinking, budget=budget,
                                    system_prompt=self.system_prompt())

    def set_system_prompt(self, text: str, thinking: bool, budget: int | None) -> None:
        if not self.writable:
            return
        if self.conversation_id is None:
            self.conversation_id = self.store.create("New chat", thinking, budget)
            self.view.conversations_changed(self.conversation_id)
        self.store.set_settings(self.conversation_id, thinking=thinking, budget=budget, system_prompt=text.strip())

    def deleted(self, conversation_id: int) -> None:
        """The sidebar deleted a conversation (kept for undo); the one on screen closes."""
        if conversation_id == self.conversation_id:
            self.new_chat()

    def undelete(self, conversation_id: int) -> None:
        self.store.set_delete(conversation_id, False)
        self.view.conversations_changed(self.conversation_id)

    def title(self) -> str:
        return self.store.get(self.conversation_id).title if self.conversation_id else ""

    def export(self, path: Path, kind: str) -> None:
        """Write the conversation as Markdown ("md") or JSON; raises OSError when the file cannot be written."""
        if self.conversation_id is None:
            return
        body = (to_markdown if kind == "md" else to_json)(self.store, self.conversation_id)
        path.write_text(body, encoding="utf-8")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
