"""The step protocol every backend implements; the generation loop above it is shared.

A backend owns one running token sequence (its KV cache / recurrent state) and knows how to extend
it, sample the next token from its last logits, and save or restore its state. Everything else
(chat formatting, sampling parameters' meaning, stops, budget, cancellation, detokenization of the
stream) lives once in the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from engine.api import SamplingParams


class Sampler(Protocol):
    """Backend-native sampling state for one request (seeded RNG, chain of filters)."""

    def close(self) -> None: ...


class Backend(Protocol):
    name: str
    n_ctx: int
    eog_ids: frozenset[int]
    #: Strings of the vocabulary's control tokens (`<|im_start|>`, `<think>`, ...).
    special_tokens: tuple[str, ...]
    #: Whether prompts start with the BOS token (`bos_id`), which the chat template may not write.
    add_bos: bool
    bos_id: int

    @property
    def tokens(self) -> Sequence[int]:
        """The running sequence: every token whose state the backend holds."""

    @property
    def n_past(self) -> int:
        """len(tokens), cheaply: asked before every generated token."""

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Text to ids; with special=False, marker strings in `text` stay plain text."""

    def token_bytes(self, token: int) -> bytes:
        """The exact bytes one token stands for, markers included (never stripped)."""

    def feed(self, tokens: Sequence[int]) -> None:
        """Evaluate `tokens` at the end of the running sequence (prefill or one decode step)."""

    def truncate(self, n_tokens: int) -> bool:
        """Drop the sequence after `n_tokens`. False when the state cannot be rolled back (Mamba)."""

    def reset(self) -> None:
        """Forget the running sequence."""

    def make_sampler(self, params: SamplingParams) -> Sampler: ...

    def sample(self, sampler: Sampler) -> int:
        """Pick the next token from the logits of the last fed token."""

    def snapshot(self) -> object:
        """An opaque copy of the state for the current running sequence."""

    def restore(self, snapshot: object, tokens: Sequence[int]) -> None:
        """Return to a snapshot taken when the running sequence was `tokens`."""

    def close(self) -> None: ...
