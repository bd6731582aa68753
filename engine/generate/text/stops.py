"""Stop-string matching over streamed text.

It holds back exactly what cannot be decided yet (a possible start of a stop string), so joining
every piece it emits gives the same text as processing it whole.
"""

from __future__ import annotations

from collections.abc import Sequence


def held_prefix_length(text: str, candidates: Sequence[str]) -> int:
    """Length of the longest end of `text` that is a proper start of one of `candidates`: the text
    a stream must hold back until the next chunk shows whether a candidate follows."""
    longest = max((len(c) for c in candidates), default=1) - 1
    tail = text[-longest:] if longest > 0 else ""
    if not any(c[0] in tail for c in candidates if c):
        return 0  # the common case, once per token: no candidate can be starting
    for size in range(min(len(text), longest), 0, -1):
        end = text[-size:]
        if any(c.startswith(end) for c in candidates):
            return size
    return 0


class StopMatcher:
    """Finds stop strings in streamed text. On a match the stop string and all after it are dropped."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Return the text that is certainly not part of a stop string."""
        if not self._stops:
            return text
        if self.stopped:
            return ""
        buf = self._held + text
        hits = [i for i in (buf.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return buf[: min(hits)]
        keep = held_prefix_length(buf, self._stops)
        self._held = buf[len(buf) - keep:]
        return buf[: len(buf) - keep]

    def finish(self) -> str:
        """At the end (not by a stop string): what was held back was plain text after all."""
        held, self._held = self._held, ""
        return "" if self.stopped else held
