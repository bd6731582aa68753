"""Announcer: says what changes away from the focus (an answer starting and ending, errors, the
Undo offer) to a screen reader, and shows it in a short status line.

Each message becomes the text (so the accessible name) of a status-bar label, and is sent as a
QAccessibleAnnouncementEvent (Qt 6.8+), which screen readers speak without moving the focus.
"""

from __future__ import annotations

from app.gui.elided_label import ElidedLabel
from app.gui.qt import (
    QAccessible,
    QAccessibleAnnouncementEvent,
    QAccessibleEvent,
    QLabel,
    QObject,
    QStatusBar,
    SignalInstance,
)
from engine.api import ContentDelta, EngineEvent, Error, Finished, FinishReason, ModelInfo, ReasoningDelta

ENDINGS = {FinishReason.CANCELLED: "Answer stopped.", FinishReason.LENGTH: "Answer cut at the length limit.",
           FinishReason.TOOL_CALLS: "Answer finished: it asks to call a tool."}


class Announcer(QObject):
    def __init__(self, events: SignalInstance, deleted: SignalInstance, bar: QStatusBar) -> None:
        super().__init__(bar)
        self.live: QLabel = ElidedLabel("", bar)  # a long message must not widen the window
        self.live.setAccessibleDescription("What just happened")
        bar.addPermanentWidget(self.live)
        self._answering = False
        events.connect(self.on_events)
        deleted.connect(lambda _id: self.say("Chat deleted. Undo delete is offered in the status bar."))

    def say(self, text: str) -> None:
        self.live.setText(text)
        if QAccessible.isActive():
            QAccessible.updateAccessibility(QAccessibleEvent(self.live, QAccessible.Event.NameChanged))
            QAccessible.updateAccessibility(QAccessibleAnnouncementEvent(self.live, text))

    def on_events(self, events: list[EngineEvent]) -> None:
        for event in events:
            if isinstance(event, ReasoningDelta | ContentDelta) and not self._answering:
                self._answering = True
                self.say("Thinking…" if isinstance(event, ReasoningDelta) else "Answering…")
            elif isinstance(event, Finished):
                self._answering = False
                self.say(ENDINGS.get(event.reason, "Answer finished."))
            elif isinstance(event, Error):
                self._answering = False
                self.say(f"Error: {event}")
            elif isinstance(event, ModelInfo):
                self.say(f"Model loaded: {event.name}.")
