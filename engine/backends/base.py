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
from engine.errors import ContextOverflow


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

    def longest_token_bytes(self) -> int:
        """The most bytes any one token stands for: text of N characters is at least N / this tokens."""

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


class SequenceMixin:
    """The bookkeeping every backend shares: the running token list, the context check before a
    feed, and a cache of each token's bytes (subclasses say how to read one in `_piece`)."""

    n_ctx: int
    vocab_size: int
    _tokens: list[int]
    _pieces: dict[int, bytes]
    _longest: int | None = None

    @property
    def tokens(self) -> Sequence[int]:
        return self._tokens

    @property
    def n_past(self) -> int:
        return len(self._tokens)

    def token_bytes(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._piece(token)
        return piece

    def longest_token_bytes(self) -> int:
        # Read once, on the first long prompt: one pass over the vocabulary (0.1 s for a 49k vocabulary).
        if self._longest is None:
            self._longest = max((len(self._piece(t)) for t in range(self.vocab_size)), default=1) or 1
        return self._longest

    def _piece(self, token: int) -> bytes:
        raise NotImplementedError

    def _check_room(self, n_new: int) -> None:
        if len(self._tokens) + n_new > self.n_ctx:
            raise ContextOverflow(
                f"The conversation needs {len(self._tokens) + n_new:,} tokens; the model was loaded "
                f"with a {self.n_ctx:,}-token context.",
                "Start a new conversation, shorten this one, or reload the model with a larger context.",
            )
