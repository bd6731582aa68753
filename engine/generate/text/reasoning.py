"""ReasoningSplitter: turns the model's streamed text into reasoning deltas and answer deltas.

A small state machine over text (not tokens), so it works the same for every backend and every way
the text is chunked: whatever could be the start of `<think>` or `</think>` is held back until the
next chunk decides. Markers never reach the answer. Whitespace that only separates the markers from
the text (`<think>\\n`, `\\n</think>\\n\\n`) is dropped, so the stored reasoning and answer re-render
through the chat template exactly as the model would have written them.
"""

from __future__ import annotations

from enum import Enum

from engine.api import ContentDelta, ReasoningDelta

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_MARKERS = (THINK_OPEN, THINK_CLOSE)

Delta = ReasoningDelta | ContentDelta


class Phase(Enum):
    START = "start"  # nothing generated yet and the prompt did not open a think block
    REASONING = "reasoning"
    ANSWER = "answer"


def prompt_opens_reasoning(prompt_text: str) -> bool:
    """True when the prompt ends inside an open think block: `...<think>\\n`, or a raw prompt that
    continues a partial reasoning (`...<think>\\nSo far I`)."""
    return prompt_text.rfind(THINK_OPEN) > prompt_text.rfind(THINK_CLOSE)


def _is_partial(text: str, markers: tuple[str, ...]) -> bool:
    return any(len(text) < len(m) and m.startswith(text) for m in markers)


def _may_become_marker(tail: str, droppable: tuple[str, ...]) -> bool:
    """Whether `tail` may still turn into a marker: it starts one, or it starts one that is then
    interrupted by the start of a marker that will be dropped ("</th" + "<thi" + "nk>ink>")."""
    if _is_partial(tail, _MARKERS):
        return True
    return any(_is_partial(tail[:cut], _MARKERS) and _is_partial(tail[cut:], droppable)
               for cut in range(1, len(tail)))


def _held_suffix(text: str, droppable: tuple[str, ...]) -> int:
    """Length of the longest suffix of `text` that must wait for more text before it is emitted."""
    longest = 2 * (len(THINK_CLOSE) - 1)
    if "<" not in text[-longest:]:
        return 0  # the common case, once per token: no marker can be starting
    for size in range(min(len(text), longest), 0, -1):
        if _may_become_marker(text[-size:], droppable):
            return size
    return 0


class ReasoningSplitter:
    """Feed generated text in any chunks; get back reasoning and answer deltas.

    `feed()` returns the deltas that are certain so far, `finish()` the rest at the end of the
    generation (a reasoning block the model never closed stays reasoning).
    """

    def __init__(self, *, starts_in_reasoning: bool) -> None:
        self.phase = Phase.REASONING if starts_in_reasoning else Phase.START
        self._held = ""  # text that may be the start of a marker
        self._pending_space = ""  # reasoning whitespace, emitted only if more reasoning follows
        self._started = False  # the current section has emitted visible text

    @property
    def in_reasoning(self) -> bool:
        return self.phase is Phase.REASONING

    def feed(self, text: str) -> list[Delta]:
        out: list[Delta] = []
        self._held += text
        while self._held:
            if not self._step(out):
                break
        return out

    def finish(self) -> list[Delta]:
        """Flush at the end of generation: held text that never became a marker is plain text."""
        out: list[Delta] = []
        held, self._held = self._held, ""
        if self.phase is Phase.START:
            self._enter(Phase.ANSWER)
        if held:
            self._emit(held, out)
        self._pending_space = ""
        return out

    # -- internals -----------------------------------------------------------------------------

    def _step(self, out: list[Delta]) -> bool:
        """Consume what can be decided from the held text; False when it must wait for more."""
        if self.phase is Phase.START:
            return self._step_start()
        text = self._held
        positions = [(text.find(m), m) for m in _MARKERS if m in text]
        if positions:
            index, marker = min(positions)
            if marker == THINK_CLOSE and self.phase is Phase.REASONING:
                self._emit(text[:index], out)
                self._held = text[index + len(marker):]
                self._enter(Phase.ANSWER)
            else:
                # Any other marker is dropped (it never reaches the answer and cannot nest), and
                # the text around it is scanned again: "</th<think>ink>" must not leave "</think>".
                self._held = text[:index] + text[index + len(marker):]
            return True
        keep = _held_suffix(text, _MARKERS if self.phase is Phase.ANSWER else (THINK_OPEN,))
        self._emit(text[: len(text) - keep], out)
        self._held = text[len(text) - keep:]
        return False

    def _step_start(self) -> bool:
        stripped = self._held.lstrip()
        if not stripped:
            return False
        if stripped.startswith(THINK_OPEN):
            self._held = stripped[len(THINK_OPEN):]
            self._enter(Phase.REASONING)
            return True
        if THINK_OPEN.startswith(stripped):
            return False
        self._enter(Phase.ANSWER)
        return True

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        self._started = False
        self._pending_space = ""

    def _emit(self, text: str, out: list[Delta]) -> None:
        if not self._started:
            text = text.lstrip()
            if not text:
                return
            self._started = True
        if self.phase is Phase.REASONING:
            text = self._pending_space + text
            body = text.rstrip()
            self._pending_space = text[len(body):]
            if body:
                out.append(ReasoningDelta(body))
        elif text:
            out.append(ContentDelta(text))
