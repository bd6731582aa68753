"""The hand-written decode step (engine/backends/torch/fast) against transformers, on the CPU.

The tiny random Nemotron-H (Mamba, MoE and attention layers) in float32, loaded twice: once on the
fast path run eagerly with the torch reference ops (the same step code the CUDA graph captures on a
GPU, `decode="fast"`), once on today's eager path (transformers' NemotronHForCausalLM forward with its
own cache). Both are fed the same tokens; their logits must agree at every step within LOGITS_ATOL
(float32 arithmetic in a different order: the differences seen are ~1e-5 on logits of magnitude ~10).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.api import FinishReason, GenerationRequest, LoadSpec, Message, SamplingParams, TorchLoadOptions
from engine.backends.torch.backend import TorchBackend
from engine.backends.torch.fast.state import StateSnapshot
from engine.errors import ContextOverflow
from engine.formats.hf_folder import read_hf_folder
from engine.generate.text.budget import CLOSE_AT_NEWLINE
from engine.worker.session import EngineSession
from tests.engine.helpers import CancelAfter, collect

LOGITS_ATOL = 1e-4
QUESTION = (Message("user", "Why is the sky blue?"),)


def backend(tiny_nemotron, decode: str, n_ctx: int = 1024) -> TorchBackend:  # type: ignore[no-untyped-def]
    folder = read_hf_folder(Path(tiny_nemotron.hf_dir))
    return TorchBackend(folder, TorchLoadOptions(device="cpu", n_ctx=n_ctx, n_threads=1, decode=decode))


@pytest.fixture(scope="module")
def pair(tiny_nemotron) -> Iterator[tuple[TorchBackend, TorchBackend]]:  # type: ignore[no-untyped-def]
    fast, eager = backend(tiny_nemotron, "fast"), backend(tiny_nemotron, "eager")
    yield fast, eager
    fast.close()
    eager.close()


def logits(b: TorchBackend) -> torch.Tensor:
    if b._fast is not None:
        return b._fast.logits().float()
    return b._logits.float()


def greedy_in_lockstep(fast: TorchBackend, eager: TorchBackend, steps: int) -> list[int]:
    """Feed both the eager path's greedy token `steps` times; the logits must agree at every step."""
    tokens = []
    for _ in range(steps):
        assert (logits(fast) - logits(eager)).abs().max() <= LOGITS_ATOL
        ours = fast.sample(fast.make_sampler(SamplingParams(temperature=0.0)))
        theirs = eager.sample(eager.make_sampler(SamplingParams(temperature=0.0)))
        assert ours == theirs
        fast.feed([ours])
        eager.feed([theirs])
        tokens.append(ours)
    assert (logits(fast) - logits(eager)).abs().max() <= LOGITS_ATOL
    return tokens


def prompt_of(b: TorchBackend, repeats: int = 3) -> list[int]:
    return b.tokenize("The quick brown fox jumps over the lazy dog. Hello! How are you today? " * repeats,
                      special=False)


def test_the_fast_path_runs_the_hand_written_step(pair: tuple[TorchBackend, TorchBackend]) -> None:
    fast, eager = pair
    assert fast._fast is not None and eager._fast is None
    kinds = set(fast._fast.weights.shapes.kinds)
    assert kinds == {"mamba", "moe", "attention"}
    assert "hand-written decode step" in fast.kernels
    assert "eager transformers decode" in eager.kernels


def test_64_greedy_steps_match_transformers(pair: tuple[TorchBackend, TorchBackend]) -> None:
    fast, eager = pair
    for b in pair:
        b.reset()
        b.feed(prompt_of(b))
    tokens = greedy_in_lockstep(fast, eager, 64)
    assert len(set(tokens)) > 4  # a real trajectory, not one token repeated


def test_after_snapshot_and_restore(pair: tuple[TorchBackend, TorchBackend]) -> None:
    fast, eager = pair
    for b in pair:
        b.reset()
        b.feed(prompt_of(b))
    greedy_in_lockstep(fast, eager, 8)
    snaps = [b.snapshot() for b in pair]
    assert isinstance(snaps[0], StateSnapshot) and snaps[0].length == fast.n_past
    at = list(fast.tokens)
    first = greedy_in_lockstep(fast, eager, 12)
    for b, snap in zip(pair, snaps, strict=True):
        b.restore(snap, at)
    assert fast.n_past == len(at)
    # the state came back exactly: the same continuation, matching transformers step by step
    assert greedy_in_lockstep(fast, eager, 12) == first


def test_after_a_restore_into_a_reset_sequence(pair: tuple[TorchBackend, TorchBackend]) -> None:
    """Regenerate / edit: the running sequence moved on elsewhere, then an old turn's state returns."""
    fast, eager = pair
    for b in pair:
        b.reset()
        b.feed(prompt_of(b, 2))
    snaps = [b.snapshot() for b in pair]
    at = list(fast.tokens)
    for b in pair:
        b.reset()
        b.feed(prompt_of(b, 4))
    for b, snap in zip(pair, snaps, strict=True):
        b.restore(snap, at)
    greedy_in_lockstep(fast, eager, 16)


def test_after_the_budgets_closing_tokens_and_a_next_turn(pair: tuple[TorchBackend, TorchBackend]) -> None:
    fast, eager = pair
    for b in pair:
        b.reset()
        b.feed(prompt_of(b))
    greedy_in_lockstep(fast, eager, 5)
    closing = fast.tokenize(CLOSE_AT_NEWLINE, special=True)
    assert len(closing) > 1
    for b in pair:
        b.feed(closing)  # several tokens at once, as the loop feeds them
    greedy_in_lockstep(fast, eager, 16)
    turn = fast.tokenize("<|im_end|>\n<|im_start|>user\nAnd at sunset? Tell me more about the sky.<|im_end|>\n"
                         "<|im_start|>assistant\n<think>\n", special=True)
    assert len(turn) > 8  # long enough to go through the prefill, continuing the decoded state
    for b in pair:
        b.feed(turn)
    greedy_in_lockstep(fast, eager, 16)


def test_context_overflow_is_the_same_message(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    fast = backend(tiny_nemotron, "fast", n_ctx=64)
    try:
        fast.feed(prompt_of(fast, 6)[:60])
        with pytest.raises(ContextOverflow) as raised:
            fast.feed(prompt_of(fast, 1)[:8])
        assert "64-token context" in str(raised.value)
        assert fast.n_past == 60  # the refused feed changed nothing
    finally:
        fast.close()


# -- the generation loop on the fast path ---------------------------------------------------------


@pytest.fixture(scope="module")
def sessions(tiny_nemotron) -> Iterator[dict[str, EngineSession]]:  # type: ignore[no-untyped-def]
    out = {}
    for decode in ("fast", "eager"):
        session = EngineSession()
        options = TorchLoadOptions(device="cpu", n_ctx=2048, n_threads=1, decode=decode)
        events = list(session.load(LoadSpec(str(tiny_nemotron.hf_dir), torch=options)))
        assert session.info is not None, events
        out[decode] = session
    yield out
    for session in out.values():
        session.unload()


def greedy_request(messages: tuple[Message, ...] = QUESTION, **kw: object) -> GenerationRequest:
    return GenerationRequest(messages, sampling=SamplingParams(temperature=0.0, max_tokens=48), **kw)  # type: ignore[arg-type]


def test_model_info_names_the_path(sessions: dict[str, EngineSession]) -> None:
    assert sessions["fast"].info is not None and sessions["eager"].info is not None
    assert "hand-written decode step" in sessions["fast"].info.kernels
    assert "eager transformers decode" in sessions["eager"].info.kernels


def test_budget_and_multi_turn_give_the_eager_paths_tokens(sessions: dict[str, EngineSession]) -> None:
    answers = {}
    for decode, session in sessions.items():
        first = collect(session.generate(greedy_request(reasoning_budget=6)))
        assert not first.errors
        (ended,) = first.ended
        assert ended.by_budget
        history = (*QUESTION, Message("assistant", first.content.strip(), reasoning=first.reasoning),
                   Message("user", "And at sunset?"))
        second = collect(session.generate(greedy_request(history, reasoning_budget=6)))
        assert second.usage.cached_prompt_tokens > 0  # resumed from the turn's snapshot
        assert session.backend is not None
        answers[decode] = (first.reasoning, first.content, second.reasoning, second.content,
                           list(session.backend.tokens))
    assert answers["fast"] == answers["eager"]


def test_seeded_sampling_repeats(sessions: dict[str, EngineSession]) -> None:
    session = sessions["fast"]
    runs = []
    for _ in range(2):
        request = GenerationRequest(QUESTION, sampling=SamplingParams(temperature=1.0, top_p=0.9, seed=11,
                                                                      max_tokens=24, ignore_eos=True))
        answer = collect(session.generate(request))
        assert session.backend is not None
        runs.append(list(session.backend.tokens[answer.usage.prompt_tokens:]))
    assert runs[0] == runs[1] and len(runs[0]) >= 23


def test_cancel_within_one_token(sessions: dict[str, EngineSession]) -> None:
    request = GenerationRequest(QUESTION, sampling=SamplingParams(seed=3, max_tokens=500, ignore_eos=True))
    answer = collect(sessions["fast"].generate(request, CancelAfter(10)))
    assert answer.finish is FinishReason.CANCELLED
    assert answer.usage.completion_tokens == 10


def test_a_fast_path_that_cannot_be_prepared_falls_back(tiny_nemotron, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """This machine has no GPU, so the decision is told it found one (the only thing mocked here);
    preparing the Triton step then really fails, and the backend must run the eager path and say why."""
    from engine.backends.torch.fast import decision

    monkeypatch.setenv("NEMOTRON_DESK_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(decision, "choose_decode_path",
                        lambda *args: decision.DecodePath(True, "triton", decision.FAST_LABEL, ""))
    b = backend(tiny_nemotron, "auto")
    try:
        assert b._fast is None
        assert "preparing the GPU decode step failed" in b.kernels
        b.feed(prompt_of(b))
        assert b.sample(b.make_sampler(SamplingParams(temperature=0.0))) >= 0
    finally:
        b.close()
