"""Widgets for one chat turn: the person's message, and the assistant's thinking pane and answer.

ThinkingPane streams the reasoning as plain text appended at the end (no re-layout of what is there),
shows time and tokens live, and folds to one line when the answer starts unless the person opened it.
While it streams it has "Answer now", the budget meter and, when the engine suspects a loop, a warning
(app/gui/steering.py). An answer whose thinking took all its room offers to answer from that thinking
or to think longer.
AnswerView renders markdown incrementally (the final blocks once, the open tail each frame) and
owns its code blocks, for their Copy links.
"""

from __future__ import annotations

import time

from app.controller import took_all_the_room
from app.gui.markdown import MarkdownRenderer, MarkdownStream
from app.gui.qt import (
    QDesktopServices,
    QFrame,
    QGuiApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    Qt,
    QTextBrowser,
    QTextCursor,
    QTextOption,
    QTimer,
    QToolButton,
    QUrl,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.gui.rich_text import end_position, replace_from, replace_parts
from app.gui.steering import ANSWER_NOW_TIP, BudgetMeter, LoopBanner, RoomOffer
from engine.api import (
    ContentDelta,
    EngineEvent,
    Error,
    Finished,
    FinishReason,
    LoopSuspected,
    ReasoningDelta,
    ReasoningEndCause,
    ReasoningEnded,
    ReasoningProgress,
    Usage,
)

#: What the folded header adds for what ended the reasoning (nothing when the model closed it).
ENDED_BY = {ReasoningEndCause.BUDGET: " · ended by the budget",
            ReasoningEndCause.ANSWER_ROOM: " · ended to leave room for the answer (the context or max tokens)",
            ReasoningEndCause.USER: " · ended by you", ReasoningEndCause.LOOP: " · ended by the loop detector",
            "length": " · cut at the length limit", "stopped": " · stopped"}


#: The reasoning trace's tallest (it scrolls inside beyond that).
BODY_MAX_HEIGHT = 260


class AutoHeightBrowser(QTextBrowser):
    """A QTextBrowser as tall as its document, for stacking in a scrolling column."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        # Many size changes arrive per frame while text streams in: fit once, after them. The timer
        # belongs to the widget, so it dies with it (a conversation switch deletes the messages).
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self._fit)
        self.document().documentLayout().documentSizeChanged.connect(self._schedule_fit)

    def _schedule_fit(self) -> None:
        if not self._fit_timer.isActive():
            self._fit_timer.start()

    def _fit(self) -> None:
        width = self.viewport().width()
        if width != self.document().textWidth():
            self.document().setTextWidth(width)
        chrome = self.height() - self.viewport().height()  # frame and stylesheet padding
        height = int(self.document().size().height()) + chrome + 2
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().resizeEvent(event)
        if self.viewport().width() != self.document().textWidth():  # only a new width re-wraps the text
            self._schedule_fit()


class UserMessage(AutoHeightBrowser):
    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Your message")
        self.setStyleSheet("QTextBrowser { background: palette(alternate-base); border-radius: 8px; padding: 6px; }")
        self.setPlainText(text)


class BlocksView(AutoHeightBrowser):
    """Rendered markdown blocks, edited incrementally: the final blocks are appended once, the open
    tail after them is replaced each frame (both in one edit: the document is laid out once a frame)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)  # long URLs and code tokens too
        self.document().setUndoRedoEnabled(False)  # streamed edits would pile up in the undo stack
        self._tail_start: int | None = None  # document position where the tail begins; None: no final blocks

    @property
    def tail_start(self) -> int:
        """The document position where the open tail's blocks begin."""
        return self._tail_start or 0

    def show_blocks(self, final_html: str, tail_html: str, reset: bool = False) -> None:
        """Append `final_html`'s blocks to the final ones (reset: they are all of them), then show
        `tail_html` after them in place of the last tail."""
        document = self.document()
        if reset:
            self._tail_start = None
        if self._tail_start is None:  # no final part yet: the document is set, not edited
            if not final_html:
                replace_from(document, None, tail_html)
                return
            replace_from(document, None, final_html)
            self._tail_start, final_html = end_position(document), ""
        parts = [final_html, tail_html] if final_html else [tail_html]
        self._tail_start = replace_parts(document, self._tail_start, parts)

    def link_position_changed(self, start: int, delta: int) -> None:
        """A link's text at `start` changed length by `delta`: the tail moved if it is after it."""
        if self._tail_start is not None and start < self._tail_start:
            self._tail_start += delta


class AnswerView(BlocksView):
    """The answer, as markdown; links open in the browser, "Copy" copies its own code block.

    While the answer streams, it is shown in two views: this one holds the settled blocks, and
    `tail` (below it, a small document) the blocks that became final since the last settling and
    the open last block. A document shown in a view is laid out again after every change and that
    costs more as it grows (~15 ms a frame at 200 kB): the frames edit only the small tail, and the
    settled view changes once every SETTLE_CHARS of text (and at the end, when all of the answer
    moves into it, as one document to select and copy from). Every frame, the two show what
    rendering the whole text so far would (app/gui/markdown.py).
    """

    COPIED_MS = 1500  # how long a Copy link says "Copied"
    # Final text the tail holds before it moves into the settled view: a settle costs ~40-90 ms at 8 kB
    # of table-heavy text (the longest stalls of the stall benchmark), well under half of that at 1 kB.
    SETTLE_CHARS = 1024

    def __init__(self, renderer: MarkdownRenderer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Answer")
        self._renderer = renderer
        self.tail = BlocksView(parent)
        self.tail.setAccessibleName("Answer, still streaming")
        self._stream = MarkdownStream(renderer)
        self.text = ""
        self._settled = 0  # characters of the text in this view (the rest is in the tail)
        self._settled_code = 0  # code blocks among them
        self._pending: list[str] = []  # final blocks in the tail, not yet settled
        self._copied: int | None = None  # the code block whose link says "Copied"
        self._copied_timer = QTimer(self)
        self._copied_timer.setSingleShot(True)
        self._copied_timer.setInterval(self.COPIED_MS)
        self._copied_timer.timeout.connect(self._restore_link)
        self.anchorClicked.connect(self._on_link)
        self.tail.anchorClicked.connect(self._on_link)
        self.hide()
        self.tail.hide()

    @property
    def code(self) -> list[str]:
        """The code of this answer's blocks, by the index in their copy: links."""
        return self._stream.code

    @property
    def final_length(self) -> int:
        """How much of the text is in final blocks (rendered once, not again each frame)."""
        return self._stream.final_length

    @property
    def settled_length(self) -> int:
        """How much of the text is in this view; the rest is in `tail`."""
        return self._settled

    @property
    def settled_code(self) -> int:
        """How many code blocks are in this view (the tail's Copy links count on from there)."""
        return self._settled_code

    def append(self, text: str) -> None:
        self.text += text

    def restart(self, text: str) -> None:
        """Render `text` afresh (an answer continued from its saved text)."""
        self._stream = MarkdownStream(self._renderer)
        self._settled = self._settled_code = 0
        self._pending = []
        self._copied = None
        replace_from(self.document(), None, "")
        self.tail.show_blocks("", "", reset=True)
        self.text = ""
        self.append(text)
        self.refresh()

    def refresh(self) -> None:
        """Render what arrived since the last frame: new final blocks once, then the open tail."""
        frame = self._stream.advance(self.text)
        reset = frame.rebuild
        if reset:  # all final blocks again (a link definition arrived): nothing is settled any more
            self._settled = self._settled_code = 0
            self._pending = []
            self._copied = None
            replace_from(self.document(), None, "")
        if frame.final_html:
            self._pending.append(frame.final_html)
        if self._pending and self.final_length - self._settled >= self.SETTLE_CHARS:
            self._settle("\n".join(self._pending), self.final_length, self._stream.final_code)
            reset, final_html = True, ""
        else:
            final_html = frame.final_html
        self.tail.show_blocks(final_html, frame.tail_html, reset)
        self._show_views(bool(frame.tail_html or self._pending))

    def finish(self) -> None:
        """The answer is complete: all of it moves into this view, one document."""
        frame = self._stream.advance(self.text)
        if frame.rebuild:
            self._settled = self._settled_code = 0
            self._pending = []
            self._copied = None
            replace_from(self.document(), None, "")
        if frame.final_html:
            self._pending.append(frame.final_html)
        rest = [html for html in (*self._pending, frame.tail_html) if html]
        if rest:
            self._settle("\n".join(rest), len(self.text), len(self.code))
        self.tail.show_blocks("", "", reset=True)
        self._show_views(False)

    def _settle(self, html: str, length: int, code: int) -> None:
        document = self.document()
        if self._settled == 0:
            replace_from(document, None, html)
        else:
            replace_parts(document, end_position(document), [html])
        if self._copied is not None and self._copied >= self._settled_code:
            self._copied = None  # its link was in the tail: it comes here as rendered, saying "Copy"
        self._settled, self._settled_code, self._pending = length, code, []

    def _show_views(self, tail: bool) -> None:
        # Hidden while empty: no blank box under the thinking.
        self.setVisible(self._settled > 0)
        self.tail.setVisible(tail and bool(self.text[self._settled:].strip()))

    def copy_code(self, index: int) -> None:
        """Copy one code block of this answer; its link says "Copied" for a moment, the status line too."""
        if not 0 <= index < len(self.code):
            return
        code = self.code[index]
        QGuiApplication.clipboard().setText(code)
        self._restore_link()
        if self._set_link_text(index, "Copied"):
            self._copied = index
        self._copied_timer.start()
        lines = len(code.splitlines())
        window = self.window()
        if isinstance(window, QMainWindow):
            window.statusBar().showMessage(f"Copied {lines} line{'s' * (lines != 1)} of code", 2 * self.COPIED_MS)

    def _restore_link(self) -> None:
        if self._copied is not None:
            self._set_link_text(self._copied, "Copy")
            self._copied = None

    def _set_link_text(self, index: int, text: str) -> bool:
        """Change the text of block `index`'s Copy link, keeping its format; False if it is not shown."""
        href = f"copy:{index}"
        view: BlocksView = self if index < self._settled_code else self.tail
        document = view.document()
        block = document.begin()
        while block.isValid():
            pieces = block.begin()
            while not pieces.atEnd():
                piece = pieces.fragment()
                pieces += 1
                if piece.isValid() and piece.charFormat().anchorHref() == href:
                    start, length = piece.position(), piece.length()  # (the fragment is stale after the edit)
                    cursor = QTextCursor(document)
                    cursor.setPosition(start)
                    cursor.setPosition(start + length, QTextCursor.MoveMode.KeepAnchor)
                    cursor.insertText(text, piece.charFormat())
                    view.link_position_changed(start, len(text) - length)
                    return True
            block = block.next()
        return False

    def _on_link(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            index = url.path() or url.toString().split(":", 1)[1]
            if index.isdigit():
                self.copy_code(int(index))
        else:
            QDesktopServices.openUrl(url)


class ThinkingPane(QWidget):
    """The reasoning of one answer: a header that folds, and the streamed trace; while it streams,
    Answer now, the budget meter and the loop warning.

    Signals:
        answerNowRequested()   Answer now (the button, or the loop warning's)
        stopRequested()        Stop, from the loop warning
    """

    answerNowRequested = Signal()
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QToolButton(self)
        self.header.setCheckable(True)
        self.header.setChecked(True)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        # The name is the text ("Thought for 12 s · 843 tokens"); what it does is the description.
        self.header.setAccessibleDescription("Shows or hides the reasoning")
        self.body = QPlainTextEdit(self)
        self.body.setReadOnly(True)
        self.body.setAccessibleName("Reasoning")
        # As tall as its text up to 260 px, and fixed there: in the chat's column, which shrinks what
        # can shrink once the answer outgrows the window, an expanding pane lost height as text streamed.
        self.body.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.body.document().documentLayout().documentSizeChanged.connect(self._fit_body)
        self._fit_body()
        self.body.setStyleSheet("QPlainTextEdit { color: palette(placeholder-text); }")
        self.answer_now = QPushButton("Answer now", self)
        self.answer_now.setToolTip(ANSWER_NOW_TIP)
        self.answer_now.setAccessibleDescription(ANSWER_NOW_TIP)
        self.meter = BudgetMeter(self)
        self.loop_banner = LoopBanner(self)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.header)
        top.addWidget(self.answer_now)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.meter)
        layout.addWidget(self.loop_banner)
        layout.addWidget(self.body)
        self.header.toggled.connect(self._on_toggled)
        self.answer_now.clicked.connect(self.request_answer_now)
        self.loop_banner.answerNowRequested.connect(self.request_answer_now)
        self.loop_banner.stopRequested.connect(self.stopRequested)
        self.opened_by_person = False
        self._setting = False
        self.started = time.monotonic()
        self.elapsed = 0.0
        self.tokens = 0
        self.done = False
        self.ended_by = ""  # a ReasoningEndCause, "length" or "stopped"; "" or "model" when the model ended it
        self._clock = QTimer(self)
        self._clock.timeout.connect(self.update_header)
        self._clock.start(250)
        self.update_header()
        self.hide()  # shown with the first reasoning text: absent when reasoning is off

    @property
    def by_budget(self) -> bool:
        return self.ended_by == ReasoningEndCause.BUDGET

    def _fit_body(self) -> None:
        lines = max(2, int(self.body.document().size().height()))  # a plain-text layout counts lines
        chrome = 2 * (self.body.frameWidth() + int(self.body.document().documentMargin()))
        height = min(BODY_MAX_HEIGHT, lines * self.body.fontMetrics().lineSpacing() + chrome)
        if height != self.body.height() or self.body.minimumHeight() != height:
            self.body.setFixedHeight(height)

    def append(self, text: str, tokens: int = 0) -> None:
        """More reasoning; `tokens` is the engine's count so far (0: unknown, the count stays)."""
        self.show()
        bar = self.body.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = self.body.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.tokens = max(self.tokens, tokens)
        self.meter.follow(self.tokens)
        if at_bottom:
            bar.setValue(bar.maximum())

    def request_answer_now(self) -> None:
        """Ask for the answer now; the button waits for the engine to end the reasoning."""
        if not self.done:
            self.answer_now.setEnabled(False)
            self.answer_now.setText("Answering…")
            self.answerNowRequested.emit()

    def answer_now_refused(self) -> None:
        """Nothing was running to take it (the reasoning had just ended)."""
        if not self.done:
            self.answer_now.setEnabled(True)
            self.answer_now.setText("Answer now")

    def progress(self, event: ReasoningProgress) -> None:
        self.meter.show_progress(event)
        self.tokens = max(self.tokens, event.tokens)

    def loop_suspected(self, event: LoopSuspected) -> None:
        if event.action == "warn" and not self.done:
            self.loop_banner.warn(event)

    def end(self, tokens: int, ended_by: str = "", elapsed: float | None = None) -> None:
        self.done, self.tokens, self.ended_by = True, tokens, ended_by
        self.answer_now.hide()
        self.loop_banner.hide()  # nothing left to steer; the header says what ended it
        self.meter.setVisible(self.meter.phase is not None and self.header.isChecked())
        self.elapsed = time.monotonic() - self.started if elapsed is None else elapsed
        self._clock.stop()
        self.update_header()
        if not self.opened_by_person:
            self._set_open(False)

    def settle(self, finish: FinishReason | None = None) -> None:
        """The answer is over: stop the live clock (also when the pane never showed). Reasoning still
        open here was ended by the length limit or by Stop."""
        if self.isVisible() and not self.done:
            ended_by = {FinishReason.LENGTH: "length", FinishReason.CANCELLED: "stopped"}.get(finish, "") \
                if finish is not None else ""
            self.end(self.tokens, ended_by)
        self._clock.stop()

    def update_header(self) -> None:
        seconds = self.elapsed if self.done else time.monotonic() - self.started
        arrow = "▾" if self.header.isChecked() else "▸"
        if self.done:
            extra = ENDED_BY.get(self.ended_by, "")
            self.header.setText(f"{arrow} Thought for {seconds:.0f} s · {self.tokens} tokens{extra}")
        else:
            self.header.setText(f"{arrow} Thinking… {seconds:.0f} s · {self.tokens} tokens")

    def _set_open(self, open_: bool) -> None:
        self._setting = True
        self.header.setChecked(open_)
        self._setting = False

    def _on_toggled(self, checked: bool) -> None:
        if not self._setting:
            self.opened_by_person = checked
        self.body.setVisible(checked)
        if self.done:  # the meter's last reading goes with the trace
            self.meter.setVisible(checked and self.meter.phase is not None)
        self.update_header()


class AssistantMessage(QWidget):
    """One answer: thinking pane, answer, and a line of figures or an error.

    Signals:
        answerNowRequested(), stopRequested()    from the thinking pane, while it streams
        answerFromThinkingRequested()             the thinking took all the room: answer from it
        thinkLongerRequested()                    ... or write a new answer with more room
    """

    answerNowRequested = Signal()
    stopRequested = Signal()
    answerFromThinkingRequested = Signal()
    thinkLongerRequested = Signal()

    def __init__(self, renderer: MarkdownRenderer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thinking = ThinkingPane(self)
        self.answer = AnswerView(renderer, self)
        self.room_offer = RoomOffer(self)
        self.footer = QLabel(self)
        self.footer.setStyleSheet("color: palette(placeholder-text);")
        self.footer.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        for widget in (self.thinking, self.answer, self.answer.tail, self.room_offer, self.footer):
            layout.addWidget(widget)
        self.thinking.answerNowRequested.connect(self.answerNowRequested)
        self.thinking.stopRequested.connect(self.stopRequested)
        self.room_offer.answerFromThinkingRequested.connect(self.answerFromThinkingRequested)
        self.room_offer.thinkLongerRequested.connect(self.thinkLongerRequested)
        self.reasoning = ""
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.error: Error | None = None
        self.waiting = False

    def show_waiting(self) -> None:
        """Between Send and the first token: say that the answer is on its way."""
        self.waiting = True
        self.footer.setText("Waiting for the first token…")

    def apply(self, events: list[EngineEvent]) -> None:
        """Take one frame's events; the answer is re-rendered once for all of them."""
        if self.waiting and events:
            self.waiting = False
            self.footer.setText("")
        answer_changed = False
        for event in events:
            if isinstance(event, ReasoningDelta):
                self.reasoning += event.text
                self.thinking.append(event.text, event.reasoning_tokens)
            elif isinstance(event, ReasoningProgress):
                self.thinking.progress(event)
            elif isinstance(event, LoopSuspected):
                self.thinking.loop_suspected(event)
            elif isinstance(event, ReasoningEnded):
                self.thinking.end(event.reasoning_tokens, event.cause)
            elif isinstance(event, ContentDelta):
                if self.thinking.isVisible() and not self.thinking.done:
                    self.thinking.end(self.thinking.tokens)
                self.answer.append(event.text)
                answer_changed = True
            elif isinstance(event, Usage):
                self.usage = event
            elif isinstance(event, Finished):
                self.finish = event.reason
                self._finished()
            elif isinstance(event, Error):
                self.error = event
                self._finished()
        if answer_changed:
            self.answer.refresh()
        if not self.thinking.done and self.thinking.isVisible():
            self.thinking.update_header()

    def figures(self) -> dict[str, object]:
        """What is saved with the answer, to show it again later."""
        out: dict[str, object] = {"reasoning_tokens": self.thinking.tokens, "by_budget": self.thinking.by_budget,
                                  "reasoning_ended_by": str(self.thinking.ended_by),
                                  "thinking_s": round(self.thinking.elapsed, 2)}
        if self.usage is not None:
            out |= {"decode_tps": round(self.usage.decode_tokens_per_s, 2),
                    "ttft_s": round(self.usage.time_to_first_token_s, 3), "answer_tokens": self.usage.answer_tokens}
        return out

    def restore(self, reasoning: str, content: str, state: str, figures: dict[str, object]) -> None:
        """Show a saved answer: thinking folded, the answer rendered, how it ended."""
        if reasoning:
            self.reasoning = reasoning
            self.thinking.append(reasoning)
            ended_by = str(figures.get("reasoning_ended_by", "budget" if figures.get("by_budget") else ""))
            self.thinking.end(int(str(figures.get("reasoning_tokens", 0))), ended_by,
                              float(str(figures.get("thinking_s", 0.0))))
        self.answer.append(content)
        self.answer.finish()
        self.thinking.settle()
        notes = {"interrupted": "Interrupted: the app stopped before this answer was finished.",
                 "cancelled": "stopped"}
        parts = [f"{figures['decode_tps']} tok/s"] if "decode_tps" in figures else []
        if state in notes:
            parts.append(notes[state])
        self.footer.setText(" · ".join(parts))

    def resume(self) -> None:
        """The answer goes on after its thinking ("Answer from this thinking"): the offer goes, the
        answer continues from its saved text."""
        self.room_offer.hide()
        self.finish = self.error = None
        self.footer.setStyleSheet("color: palette(placeholder-text);")
        self.answer.restart(self.answer.text.strip())
        self.show_waiting()

    def offer_room(self, can_think_longer: bool = True, why_not: str = "") -> None:
        """The thinking took all the room: say so, and offer the two ways on."""
        self.room_offer.think_longer.setEnabled(can_think_longer)
        if not can_think_longer:
            self.room_offer.think_longer.setToolTip(why_not)
        self.room_offer.show()

    @property
    def took_all_the_room(self) -> bool:
        return took_all_the_room(self.reasoning, "" if not self.thinking.done else str(self.thinking.ended_by),
                                 self.finish, self.answer.text)

    def _finished(self) -> None:
        self.answer.finish()
        self.thinking.settle(self.finish)
        if self.error is not None:
            self.footer.setStyleSheet("color: #c0392b;")
            # One line of message: whatever reached the error, a traceback never shows under the answer.
            message = (self.error.message.strip().splitlines() or [""])[0]
            self.footer.setText(f"{message} {self.error.action}".strip())
            return
        parts = []
        if self.usage is not None:
            parts.append(f"{self.usage.decode_tokens_per_s:.1f} tok/s · first token "
                         f"{self.usage.time_to_first_token_s:.2f} s")
        if self.finish is FinishReason.CANCELLED:
            parts.append("stopped")
        elif self.finish is FinishReason.LENGTH:
            parts.append("cut at the length limit")
        self.footer.setText(" · ".join(parts))
