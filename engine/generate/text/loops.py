"""LoopDetector: notices when a reasoning trace keeps repeating itself (a "thinking loop").

Two signs, both over a sliding window of the most recent reasoning, both cheap per piece of text:

- Repeated n-grams: the reasoning is cut into words (runs of letters and digits, or single other
  characters), and of the last WINDOW_WORDS words' NGRAM-word n-grams, the share that are repeats
  of another n-gram in the window is the score. Text that says one thing after another scores near
  0; a passage of P words said over and over scores 1 - P/WINDOW_WORDS. Numbers are words, so
  working that repeats its shape with different figures ("12 × 13 = 156", "12 × 14 = 168") does not
  count as repetition; a loop whose only change is a counter still does.
- Repeated lines: of the last LINE_WINDOW lines of at least MIN_LINE_CHARS characters (whitespace
  collapsed), a line that comes back LINE_REPEATS times after the same line as before. This catches
  loops too long for the n-gram window, as long as they have lines.

The thresholds were tuned on a loop-free corpus of reasoning-like text of over 200,000 characters
and on scripted loops (docs/reasoning.md gives the figures; tests/engine/generate/text/test_loops.py
checks both). The detector fires once per reasoning: a warning repeated every window would be noise.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass

#: Words in the window the n-gram score is taken over, and the shortest reasoning it is judged on.
WINDOW_WORDS = 400
MIN_WORDS = 200
#: Words per n-gram.
NGRAM = 8
#: Share of repeated n-grams in the window that counts as a loop.
SCORE_THRESHOLD = 0.6
#: Lines kept, the shortest line that counts, and how often one must come back.
LINE_WINDOW = 60
MIN_LINE_CHARS = 20
LINE_REPEATS = 6
#: The longest sample of the repeated text a LoopSuspected event carries.
SAMPLE_CHARS = 120

_WORD = re.compile(r"\w+|[^\w\s]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class LoopFinding:
    """What the detector saw: the repeated text (a sample) and the score that made it fire."""

    repeated: str
    score: float


class LoopDetector:
    """Fed the reasoning text piece by piece (any split); `feed` returns a LoopFinding once, when it fires."""

    def __init__(self, *, window: int = WINDOW_WORDS, min_words: int = MIN_WORDS, ngram: int = NGRAM,
                 threshold: float = SCORE_THRESHOLD, line_window: int = LINE_WINDOW,
                 min_line_chars: int = MIN_LINE_CHARS, line_repeats: int = LINE_REPEATS) -> None:
        self.window, self.min_words, self.ngram, self.threshold = window, min_words, ngram, threshold
        self.min_line_chars, self.line_repeats = min_line_chars, line_repeats
        self.fired = False
        self.best_score = 0.0  # the highest score seen (figures for tuning)
        self._partial = ""  # text after the last whitespace or newline: a word or line may go on
        self._words: deque[str] = deque(maxlen=ngram)
        self._grams: deque[tuple[str, ...]] = deque()
        self._counts: Counter[tuple[str, ...]] = Counter()
        self._repeats = 0  # n-grams in the window that occur more than once (each extra occurrence)
        self._seen_words = 0
        self._lines: deque[str] = deque(maxlen=line_window)
        self._line_counts: Counter[str] = Counter()
        self._line = ""
        self._last_line = ""

    def feed(self, text: str) -> LoopFinding | None:
        if self.fired or not text:
            return None
        text, self._partial = self._partial + text, ""
        cut = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"))
        if cut < len(text) - 1:  # the last word may be cut in two by the token boundary
            text, self._partial = text[:cut + 1], text[cut + 1:]
        finding = None
        for piece in text.splitlines(keepends=True):
            finding = self._words_of(piece) or finding
            self._line += piece
            if piece.endswith(("\n", "\r")):
                finding = self._end_line() or finding
        if finding is not None:
            self.fired = True
        return finding

    def _words_of(self, text: str) -> LoopFinding | None:
        finding = None
        for word in _WORD.findall(text):
            self._words.append(word)
            self._seen_words += 1
            if len(self._words) == self.ngram:
                finding = self._add_gram(tuple(self._words)) or finding
        return finding

    def _add_gram(self, gram: tuple[str, ...]) -> LoopFinding | None:
        if self._counts[gram]:
            self._repeats += 1
        self._counts[gram] += 1
        self._grams.append(gram)
        if len(self._grams) > self.window:
            old = self._grams.popleft()
            self._counts[old] -= 1
            if self._counts[old]:
                self._repeats -= 1
            else:
                del self._counts[old]
        if self._seen_words < self.min_words:
            return None
        score = self._repeats / len(self._grams)
        self.best_score = max(self.best_score, score)
        if score < self.threshold:
            return None
        common, _ = self._counts.most_common(1)[0]
        return LoopFinding(_sample(" ".join(common)), round(score, 3))

    def _end_line(self) -> LoopFinding | None:
        """Lines are compared in pairs (a line and the one before it): a loop says the same lines in
        the same order again, while a stock phrase ("Wait, let me double-check.") follows a different
        line each time it comes."""
        line, self._line = _SPACE.sub(" ", self._line).strip(), ""
        if len(line) < self.min_line_chars:
            return None
        pair = f"{self._last_line}\n{line}"
        self._last_line = line
        if len(self._lines) == self._lines.maxlen:
            old = self._lines[0]
            self._line_counts[old] -= 1
            if not self._line_counts[old]:
                del self._line_counts[old]
        self._lines.append(pair)
        self._line_counts[pair] += 1
        if self._line_counts[pair] < self.line_repeats:
            return None
        return LoopFinding(_sample(line), round(self._line_counts[pair] / len(self._lines), 3))


def _sample(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS - 1] + "…"
