"""A prompt that cannot fit is refused before it is tokenized whole (issue 12, item 5): the front
ends (GUI, CLI) have no body limit, so a 100 MB paste once tokenized for minutes and took gigabytes.

Real llama.cpp on the tiny Nemotron-H GGUF, in process. The backend's tokenize is wrapped only to
record the lengths it was given; it still tokenizes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.api import Error, GenerationRequest, Message, SamplingParams
from engine.worker.session import EngineSession
from tests.conftest import load_session

N_CTX = 256


@pytest.fixture(scope="module")
def session(tiny_nemotron) -> Iterator[EngineSession]:  # type: ignore[no-untyped-def]
    s = load_session(tiny_nemotron.gguf_path, n_ctx=N_CTX)
    yield s
    s.unload()


def test_text_too_long_for_the_context_is_never_tokenized(session: EngineSession,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    backend = session.backend
    assert backend is not None and backend.n_ctx == N_CTX
    longest = backend.longest_token_bytes()
    assert 1 < longest < 1000
    given: list[int] = []
    real = backend.tokenize

    def tokenize(text: str, special: bool) -> list[int]:
        given.append(len(text))
        return real(text, special=special)

    monkeypatch.setattr(backend, "tokenize", tokenize)
    text = "blue sky " * (N_CTX * longest)  # provably more than N_CTX tokens by its length alone
    events = list(session.generate(GenerationRequest((Message("user", text),),
                                                     sampling=SamplingParams(max_tokens=4))))
    (error,) = [e for e in events if isinstance(e, Error)]
    assert error.kind == "context" and "at least" in error.message and f"{N_CTX:,}-token" in error.message
    assert max(given, default=0) < len(text) // 100, "the long text was tokenized"


def test_a_prompt_that_fits_by_length_is_still_counted_exactly(session: EngineSession) -> None:
    """Text below the bound is tokenized and checked as before: the bound only refuses, never admits."""
    backend = session.backend
    assert backend is not None
    text = "blue sky " * (N_CTX // 2)  # over the context in tokens, under the length bound
    assert len(text) // backend.longest_token_bytes() < N_CTX
    events = list(session.generate(GenerationRequest((Message("user", text),),
                                                     sampling=SamplingParams(max_tokens=4))))
    (error,) = [e for e in events if isinstance(e, Error)]
    assert error.kind == "context" and "at least" not in error.message
    events = list(session.generate(GenerationRequest((Message("user", "Hi"),), sampling=SamplingParams(max_tokens=4))))
    assert not [e for e in events if isinstance(e, Error)]
