"""Figures for docs/reasoning.md: the loop detector on the loop-free corpus and the scripted loops.

    PYTHONPATH=. python tests/engine/generate/text/loop_figures.py

Prints the corpus size per source, the traces that fired (the false positives) under several piece
splits, the highest n-gram score any loop-free trace reached against the threshold, and for each
scripted loop how many characters after its start the detector fired.
"""

from __future__ import annotations

from collections import defaultdict

from engine.generate.text import loops
from engine.generate.text.loops import LoopDetector
from tests.fixtures.reasoning_corpus import Trace, loop_free_corpus, pieces, scripted_loops

SEEDS = (0, 1, 2)


def run(trace: Trace, seed: int) -> tuple[LoopDetector, int | None]:
    detector, at = LoopDetector(), 0
    for piece in pieces(trace.text, seed):
        at += len(piece)
        if detector.feed(piece) is not None:
            return detector, at
    return detector, None


def main() -> None:
    corpus = loop_free_corpus()
    chars: dict[str, int] = defaultdict(int)
    for trace in corpus:
        chars[trace.source] += len(trace.text)
    print(f"thresholds: window {loops.WINDOW_WORDS} words, {loops.NGRAM}-grams, score >= {loops.SCORE_THRESHOLD}; "
          f"line pairs: {loops.LINE_REPEATS} in the last {loops.LINE_WINDOW} lines of >= {loops.MIN_LINE_CHARS} chars")
    print(f"corpus: {sum(chars.values()):,} characters in {len(corpus)} traces:",
          ", ".join(f"{source} {n:,}" for source, n in sorted(chars.items())))
    fired, best = 0, []
    for seed in SEEDS:
        for trace in corpus:
            detector, at = run(trace, seed)
            fired += at is not None
            best.append((detector.best_score, trace.source))
    best.sort(reverse=True)
    print(f"false positives: {fired} of {len(corpus) * len(SEEDS)} trace runs ({len(SEEDS)} piece splits)")
    print("highest n-gram score on loop-free text, per source:",
          ", ".join(f"{src} {max(s for s, x in best if x == src):.3f}" for src in sorted(chars)))
    for source in sorted(chars):  # each source as one long reasoning, for the long run
        detector, at = run(Trace(source, "".join(t.text for t in corpus if t.source == source)), 0)
        print(f"  {source} as one {chars[source]:,}-character stream: "
              f"{'fired at ' + str(at) if at is not None else 'silent'}, highest score {detector.best_score:.3f}")
    for trace in scripted_loops():
        _, at = run(trace, 0)
        assert trace.loop_starts is not None
        after = "missed" if at is None else f"fired {at - trace.loop_starts:,} characters into the loop"
        print(f"  {trace.source}: {after}")


if __name__ == "__main__":
    main()
