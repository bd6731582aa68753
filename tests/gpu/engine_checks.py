"""End-to-end engine checks on a GPU, printing figures (device machine only; CI has no GPU).

Runs on a GGUF (normally tests/gpu/full_size_gguf.py's output): load through the worker process
with the VRAM it takes, decode speed through the worker, a budgeted chat answer, multi-turn resume
from a snapshot against a cold prefill, and that unloading gives the memory back.

    python -m tests.gpu.engine_checks MODEL.gguf
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from engine.api import (
    ContentDelta,
    GenerationRequest,
    LlamaLoadOptions,
    LoadSpec,
    Message,
    ModelInfo,
    ReasoningDelta,
    ReasoningEnded,
    SamplingParams,
    Usage,
)
from engine.client import EngineClient
from engine.worker.session import EngineSession


def vram_used_mib() -> int:
    """GPU memory in use, or -1 without nvidia-smi (a smoke run on a CPU machine)."""
    if shutil.which("nvidia-smi") is None:
        return -1
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def run(events) -> tuple[Usage, list]:  # type: ignore[no-untyped-def]
    got = list(events)
    usage = [e for e in got if isinstance(e, Usage)]
    assert usage, [e for e in got if not isinstance(e, (ContentDelta, ReasoningDelta))]
    return usage[0], got


def main(path: str) -> None:
    spec = LoadSpec(path, LlamaLoadOptions(n_ctx=16384, n_gpu_layers=-1, flash_attn=True))
    before = vram_used_mib()
    with EngineClient() as client:
        start = time.perf_counter()
        info = next(e for e in client.load(spec) if isinstance(e, ModelInfo))
        print(f"load through worker: {time.perf_counter() - start:.1f} s; {info.name}, {info.quantization}, "
              f"{info.size_bytes / 2**30:.2f} GiB, n_ctx {info.n_ctx}, GPU layers {info.n_gpu_layers}; "
              f"VRAM +{vram_used_mib() - before} MiB")
        fast = SamplingParams(temperature=0.0, max_tokens=512, ignore_eos=True)
        for _ in range(2):
            usage, _ = run(client.generate(GenerationRequest((Message("user", "Count."),), thinking=False,
                                                             sampling=fast)))
            print(f"worker decode: {usage.decode_tokens_per_s:.1f} t/s over {usage.answer_tokens} tokens, "
                  f"TTFT {usage.time_to_first_token_s * 1000:.1f} ms")
        budget = GenerationRequest((Message("user", "Why is the sky blue?"),), reasoning_budget=128,
                                   sampling=SamplingParams(temperature=1.0, seed=1, max_tokens=1024))
        usage, events = run(client.generate(budget))
        ended = [e for e in events if isinstance(e, ReasoningEnded)]
        print(f"budget 128: reasoning {usage.reasoning_tokens} tokens, answer {usage.answer_tokens}, "
              f"ended {ended}, decode {usage.decode_tokens_per_s:.1f} t/s")
        print(f"VRAM at 16k context, loaded: {vram_used_mib()} MiB")
    print(f"after unload: VRAM {vram_used_mib()} MiB (before load {before} MiB)")
    multi_turn(spec)


def multi_turn(spec: LoadSpec) -> None:
    session = EngineSession()
    list(session.load(spec))
    sampling = SamplingParams(temperature=0.0, max_tokens=256)
    long_question = Message("user", "Summarise this: " + "the quick brown fox jumps over the lazy dog " * 300)
    first, events = run(session.generate(GenerationRequest((long_question,), reasoning_budget=64, sampling=sampling)))
    answer = "".join(e.text for e in events if type(e).__name__ == "ContentDelta")
    history = (long_question, Message("assistant", answer.strip() or "ok"), Message("user", "Shorter, please."))
    warm, _ = run(session.generate(GenerationRequest(history, reasoning_budget=64, sampling=sampling)))
    assert session.backend is not None and session.cache is not None
    session.backend.reset()
    session.cache.clear()
    cold, _ = run(session.generate(GenerationRequest(history, reasoning_budget=64, sampling=sampling)))
    print(f"multi-turn, {warm.prompt_tokens}-token prompt: resumed from snapshot ({warm.cached_prompt_tokens} "
          f"cached) TTFT {warm.time_to_first_token_s * 1000:.1f} ms; "
          f"cold TTFT {cold.time_to_first_token_s * 1000:.1f} ms "
          f"(first turn {first.prompt_tokens} tokens, TTFT {first.time_to_first_token_s * 1000:.1f} ms)")
    session.unload()


if __name__ == "__main__":
    main(sys.argv[1])
