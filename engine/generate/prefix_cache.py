"""PrefixCache: prefill a prompt re-using as much of the backend's state as is still valid.

Three ways to avoid re-reading a conversation, cheapest first:
1. the running sequence is a prefix of the new prompt: feed only the new tail;
2. the backend can roll back (attention-only models): truncate to the common prefix, feed the rest;
3. a snapshot taken at an earlier turn boundary is a prefix: restore it, feed the rest.
Hybrid Mamba models cannot roll back, and the chat template drops old reasoning from the history, so
(3) is what makes their multi-turn chats fast: a snapshot is taken where the last turn starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.backends.base import Backend


@dataclass(frozen=True)
class _Snapshot:
    tokens: tuple[int, ...]
    state: object


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    """Owns the snapshots of one backend; `prefill` returns how many prompt tokens were re-used."""

    def __init__(self, backend: Backend, max_snapshots: int = 2) -> None:
        self._backend = backend
        self._max = max_snapshots
        self._snapshots: list[_Snapshot] = []

    def clear(self) -> None:
        self._snapshots.clear()

    def prefill(self, prompt: Sequence[int], checkpoint_at: int | None = None) -> int:
        """Make the backend's running sequence equal `prompt`, with logits ready for sampling.

        `checkpoint_at`: a position worth a snapshot (where the last turn starts), or None.
        """
        reused = self._reuse(prompt)
        position = reused
        if checkpoint_at is not None and reused < checkpoint_at < len(prompt):
            self._backend.feed(prompt[position:checkpoint_at])
            position = checkpoint_at
            self._remember(tuple(prompt[:checkpoint_at]))
        self._backend.feed(prompt[position:])
        return reused

    def _reuse(self, prompt: Sequence[int]) -> int:
        """Bring the backend to the longest re-usable prefix of `prompt` (always < len(prompt))."""
        backend = self._backend
        running = backend.tokens
        common = _common_prefix(running, prompt)
        # One prompt token is always fed again: sampling needs the logits of the last one.
        limit = min(common, len(prompt) - 1)
        if limit > 0 and limit == len(running):
            return limit
        if limit > 0 and backend.truncate(limit):
            return limit
        best = max(
            (s for s in self._snapshots if len(s.tokens) < len(prompt) and _is_prefix(s.tokens, prompt)),
            key=lambda s: len(s.tokens),
            default=None,
        )
        if best is not None and len(best.tokens) > 0:
            backend.restore(best.state, best.tokens)
            return len(best.tokens)
        backend.reset()
        return 0

    def _remember(self, tokens: tuple[int, ...]) -> None:
        self._snapshots = [s for s in self._snapshots if s.tokens != tokens]
        self._snapshots.append(_Snapshot(tokens, self._backend.snapshot()))
        del self._snapshots[: -self._max]


def _is_prefix(prefix: Sequence[int], seq: Sequence[int]) -> bool:
    return len(prefix) <= len(seq) and tuple(seq[: len(prefix)]) == tuple(prefix)
