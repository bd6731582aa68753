"""Benchmarks of the engine on a model: our generation loop, and the runtime's own loop beside it.

The runtime's own loop is llama-cpp-python's `Llama.generate` for a GGUF, and plain transformers
`model.generate()` for a Hugging Face folder.

Figures, not assertions: runs alternate between the two loops (ABAB...) on the same loaded model so
that a noisy machine slows both alike, and the ratio of medians is what to read.

A benchmark runs in the caller's process, with no worker between it and the loop it measures: it is
the one front-end path that holds a session itself (`InProcessSession`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.api import SamplingParams, Usage
from engine.backends.base import Backend
from engine.backends.llama_cpp import LlamaCppBackend
from engine.backends.torch.backend import TorchBackend
from engine.generate.loop import LoopOptions, generate_tokens
from engine.generate.prefix_cache import PrefixCache
from engine.worker.session import EngineSession as InProcessSession

__all__ = ["BenchFigures", "InProcessSession", "compare", "longest_run", "medians", "run_bare_loop",
           "run_engine_loop", "run_plain_generate", "synthetic_prompt"]

_FILLER = (
    "The quick brown fox jumps over the lazy dog while the engineers measure how fast a reasoning "
    "model reads and writes tokens on their own machine. "
)


@dataclass(frozen=True)
class BenchFigures:
    loop: str
    time_to_first_token_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


def synthetic_prompt(backend: Backend, n_tokens: int) -> list[int]:
    """Exactly `n_tokens` tokens of plain English."""
    pieces = backend.tokenize(_FILLER, special=False)
    repeats = n_tokens // max(1, len(pieces)) + 1
    return (pieces * repeats)[:n_tokens]


class _Never:
    def is_set(self) -> bool:
        return False


def run_engine_loop(backend: Backend, prompt: list[int], gen_tokens: int) -> BenchFigures:
    backend.reset()
    params = SamplingParams(temperature=0.0, max_tokens=gen_tokens, ignore_eos=True)
    usage: Usage | None = None
    events = generate_tokens(backend, PrefixCache(backend), prompt, LoopOptions(params), _Never(),
                             lambda text: backend.tokenize(text, special=True))
    for event in events:
        if isinstance(event, Usage):
            usage = event
    assert usage is not None
    return BenchFigures("engine", usage.time_to_first_token_s, usage.prefill_tokens_per_s, usage.decode_tokens_per_s)


def run_bare_loop(backend: LlamaCppBackend, prompt: list[int], gen_tokens: int) -> BenchFigures:
    """llama-cpp-python's own `Llama.generate`, greedy, nothing else."""
    llm = backend.llama
    llm.reset()
    start = time.perf_counter()
    first = start
    count = 0
    for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        count += 1
        if count == 1:
            first = time.perf_counter()
        if count >= gen_tokens:
            break
        del token
    end = time.perf_counter()
    prefill = first - start
    return BenchFigures("bare llama-cpp-python", prefill, len(prompt) / prefill if prefill else 0.0,
                        (count - 1) / (end - first) if end > first else 0.0)


class _FirstTokenClock:
    """A transformers streamer that only notes when the first generated token arrives."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2:  # the first call carries the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def run_plain_generate(backend: TorchBackend, prompt: list[int], gen_tokens: int) -> BenchFigures:
    """transformers' own `model.generate()`, greedy, exactly `gen_tokens` new tokens."""
    import torch

    backend.reset()
    ids = torch.tensor([prompt], dtype=torch.long, device=backend.input_device)
    clock = _FirstTokenClock()
    start = time.perf_counter()
    with torch.inference_mode():
        out = backend.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=gen_tokens,
                                     min_new_tokens=gen_tokens, do_sample=False, streamer=clock,
                                     pad_token_id=min(backend.eog_ids) if backend.eog_ids else None)
    end = time.perf_counter()
    count = int(out.shape[1]) - len(prompt)
    first = clock.first or end
    prefill = first - start
    return BenchFigures("plain transformers generate", prefill, len(prompt) / prefill if prefill else 0.0,
                        (count - 1) / (end - first) if end > first else 0.0)


def baseline_loop(backend: Backend) -> Callable[[Any, list[int], int], BenchFigures] | None:
    """The runtime's own generation loop for this backend, to compare ours with."""
    if isinstance(backend, LlamaCppBackend):
        return run_bare_loop
    if isinstance(backend, TorchBackend):
        return run_plain_generate
    return None


def longest_run(prompt_tokens: int, gen_tokens: int, rounds: int) -> int:
    """Tokens the last run of `compare` reaches (each run starts past where the previous one ended)."""
    return prompt_tokens + (2 * rounds - 1) * (gen_tokens + 1) + gen_tokens


def compare(backend: Backend, prompt_tokens: int, gen_tokens: int, rounds: int,
            bare: bool = True) -> Iterator[BenchFigures]:
    """Alternate the loops `rounds` times (ABBA order, so drift hits both alike); yields every run.

    Each loop first runs once untimed on a short prompt, so one-time costs (CUDA kernel loading,
    allocator growth) are not charged to whichever loop happens to go first. Every timed run then
    starts where the last one's sequence ended: a person's conversation always reaches sequence
    lengths it has not seen, and per-shape plan caches (cuDNN attention's, for one) would otherwise
    flatter whichever loop runs second on the same lengths.
    """
    prompt = synthetic_prompt(backend, longest_run(prompt_tokens, gen_tokens, rounds) - gen_tokens)
    baseline = baseline_loop(backend) if bare else None
    loops: list[Callable[[Any, list[int], int], BenchFigures]] = [run_engine_loop]
    if baseline is not None:
        loops.append(baseline)
    for loop in loops:
        loop(backend, prompt[:64], 4)
    run = 0
    for i in range(rounds):
        for loop in loops if i % 2 == 0 else loops[::-1]:
            yield loop(backend, prompt[:prompt_tokens + run * (gen_tokens + 1)], gen_tokens)
            run += 1


def medians(runs: list[BenchFigures]) -> dict[str, BenchFigures]:
    out = {}
    for loop in dict.fromkeys(r.loop for r in runs):
        mine = [r for r in runs if r.loop == loop]
        out[loop] = BenchFigures(
            loop,
            statistics.median(r.time_to_first_token_s for r in mine),
            statistics.median(r.prefill_tokens_per_s for r in mine),
            statistics.median(r.decode_tokens_per_s for r in mine),
        )
    return out
