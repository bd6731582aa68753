"""The torch backend on a GPU with the full-size architecture, printing figures (device machine only).

Writes the real Nemotron-3-Nano-30B-A3B config with random bfloat16 weights as a Hugging Face
folder (save_pretrained, ~59 GiB: put it on /dev/shm), with the tiny fixture's tokenizer and the
real chat template, then, through the product's own code:

1. loads it with the torch backend (memory plan, progress events, time, VRAM);
2. runs a chat request end to end (thinking on, a reasoning budget, the answer streamed);
3. measures time to first token and decode speed for 1k and 8k prompts, our loop against plain
   `model.generate()` in the same run, alternating (engine.client.bench.compare);
4. decode speed with each experts implementation transformers offers;
5. a snapshot's size and its save / restore time;
6. a profile of one decode step (what costs the most).

    python -m tests.gpu.torch_h200 OUT_DIR
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from engine.api import (
    ContentDelta,
    GenerationRequest,
    LoadProgress,
    LoadSpec,
    Message,
    ModelInfo,
    ReasoningDelta,
    ReasoningEnded,
    SamplingParams,
    TorchLoadOptions,
    Usage,
)
from engine.backends.torch.backend import TorchBackend
from engine.client.bench import compare, medians, synthetic_prompt
from engine.worker.session import EngineSession
from tests.fixtures.tiny_nemotron import _generation_config, _tokenizer_config, build_tokenizer, real_config

GiB = 2**30
CUDA = torch.cuda.is_available()


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def free_vram() -> int:
    return int(torch.cuda.mem_get_info()[0]) if CUDA else 0


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def write_folder(out: Path) -> None:
    from transformers import NemotronHConfig, NemotronHForCausalLM

    if (out / "config.json").is_file() and list(out.glob("*.safetensors")):
        log(f"reusing {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    config = real_config()
    start = time.perf_counter()
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = NemotronHForCausalLM(NemotronHConfig(**config))
    torch.set_default_dtype(previous)
    n = sum(p.numel() for p in model.parameters())
    log(f"built full-size model on GPU: {n / 1e9:.2f} B params in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    model.save_pretrained(str(out), max_shard_size="5GB")
    del model
    torch.cuda.empty_cache()
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    log(f"saved {size / GiB:.1f} GiB of safetensors in {time.perf_counter() - start:.1f} s")
    (out / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(config), indent=1), encoding="utf-8")
    (out / "generation_config.json").write_text(json.dumps(_generation_config()), encoding="utf-8")
    build_tokenizer().save(str(out / "tokenizer.json"))


def load(path: Path) -> EngineSession:
    session = EngineSession()
    before = free_vram()
    start = time.perf_counter()
    stages = []
    # today's eager decode, which this script profiles (tests/gpu/fast_h200.py measures the fast path)
    options = TorchLoadOptions(n_ctx=16384, n_threads=None if CUDA else 1, decode=os.environ.get("DECODE", "eager"))
    for event in session.load(LoadSpec(str(path), torch=options)):
        if isinstance(event, LoadProgress):
            stages.append(f"{event.fraction:.2f}")
        elif isinstance(event, ModelInfo):
            log(f"loaded {event.name}: {event.architecture}, {event.quantization}, {event.device}, "
                f"{event.size_bytes / GiB:.1f} GiB, n_ctx {event.n_ctx}; {event.kernels}; notes {event.notes}")
        else:
            raise SystemExit(f"load failed: {event}")
    used = before - free_vram()
    log(f"load: {time.perf_counter() - start:.1f} s, {len(stages)} progress events "
        f"({', '.join(stages[:3])} ... {', '.join(stages[-3:])}), VRAM +{used / GiB:.1f} GiB")
    return session


def chat(session: EngineSession) -> None:
    request = GenerationRequest((Message("user", "Why is the sky blue?"),), reasoning_budget=64,
                                sampling=SamplingParams(temperature=1.0, seed=3, max_tokens=256))
    reasoning = content = 0
    ended = usage = None
    for event in session.generate(request):
        if isinstance(event, ReasoningDelta):
            reasoning += 1
        elif isinstance(event, ContentDelta):
            content += 1
        elif isinstance(event, ReasoningEnded):
            ended = event
        elif isinstance(event, Usage):
            usage = event
    assert ended is not None and usage is not None
    log(f"chat, budget 64: reasoning ended by budget={ended.by_budget} after {ended.reasoning_tokens} tokens; "
        f"{usage.answer_tokens} answer tokens streamed ({reasoning} reasoning / {content} answer text deltas); "
        f"TTFT {usage.time_to_first_token_s * 1000:.0f} ms, decode {usage.decode_tokens_per_s:.1f} tok/s")


def bench(backend: TorchBackend, prompt_tokens: int, gen: int, rounds: int) -> None:
    runs = []
    for figures in compare(backend, prompt_tokens, gen, rounds):
        runs.append(figures)
        log(f"  {prompt_tokens} prompt: {figures.loop:<28} TTFT {figures.time_to_first_token_s * 1000:8.1f} ms  "
            f"prefill {figures.prefill_tokens_per_s:8.1f} t/s  decode {figures.decode_tokens_per_s:6.2f} t/s")
    summary = medians(runs)
    ours, plain = summary["engine"], summary["plain transformers generate"]
    log(f"median {prompt_tokens}: engine decode {ours.decode_tokens_per_s:.2f} vs generate "
        f"{plain.decode_tokens_per_s:.2f} t/s (ratio {ours.decode_tokens_per_s / plain.decode_tokens_per_s:.2f}); "
        f"TTFT {ours.time_to_first_token_s * 1000:.0f} vs {plain.time_to_first_token_s * 1000:.0f} ms")


def decode_speed(backend: TorchBackend, prompt_tokens: int, n: int = 32) -> float:
    from engine.client.bench import run_engine_loop

    return run_engine_loop(backend, synthetic_prompt(backend, prompt_tokens), n).decode_tokens_per_s


def attention_paths(backend: TorchBackend) -> None:
    """Decode speed on prompt lengths never seen before in this process, per attention path.

    A length seen before can be much faster (per-shape plans are cached), so each path gets
    fresh lengths, and one repeated length shows the cached case.
    """
    import contextlib

    from torch.nn.attention import SDPBackend, sdpa_kernel

    from engine.client.bench import run_engine_loop

    q = torch.randn(1, 32, 1, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 32, 700, 128, device="cuda", dtype=torch.bfloat16)
    log(f"cudnn sdp enabled: {torch.backends.cuda.cudnn_sdp_enabled()}; "
        f"fused sdp choice for a decode step: {torch._fused_sdp_choice(q, k, k)}")
    lengths = iter(range(301, 4000, 37))
    paths: list[tuple[str, object]] = [
        ("sdpa, default backends", contextlib.nullcontext),
        ("sdpa without cuDNN", lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                                    SDPBackend.MATH])),
        ("sdpa, flash only", lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION])),
        ("sdpa, cuDNN only", lambda: sdpa_kernel([SDPBackend.CUDNN_ATTENTION])),
    ]
    for name, context in paths:
        figures = []
        try:
            for _ in range(2):
                with context():  # type: ignore[operator]
                    figures.append(run_engine_loop(backend, synthetic_prompt(backend, next(lengths)), 32))
            with context():  # type: ignore[operator]
                again = run_engine_loop(backend, synthetic_prompt(backend, 301), 32)
            log(f"{name}: fresh lengths decode {[round(f.decode_tokens_per_s, 1) for f in figures]} tok/s, "
                f"TTFT {[round(f.time_to_first_token_s * 1000) for f in figures]} ms; "
                f"a seen length {again.decode_tokens_per_s:.1f} tok/s")
        except Exception as exc:
            log(f"{name}: failed ({type(exc).__name__}: {exc})")
    setter = getattr(backend.model, "set_attn_implementation", None)
    if setter is not None:
        setter("eager")
        figures = [run_engine_loop(backend, synthetic_prompt(backend, next(lengths)), 32) for _ in range(2)]
        log(f"eager attention: fresh lengths decode {[round(f.decode_tokens_per_s, 1) for f in figures]} tok/s")
        setter("sdpa")


def experts(backend: TorchBackend) -> None:
    model = backend.model
    setter = getattr(model, "set_experts_implementation", None)
    current = backend.experts
    for i, name in enumerate(("grouped_mm", "batched_mm", "eager")):
        if setter is None and name != current:
            continue
        try:
            if setter is not None:
                setter(name)
            # fresh prompt lengths: a length seen before runs faster (cached per-shape plans)
            log(f"experts={name}: decode {decode_speed(backend, 601 + 37 * i):.2f} tok/s")
        except Exception as exc:  # an implementation this torch cannot run
            log(f"experts={name}: unavailable ({type(exc).__name__}: {exc})")
    if setter is not None:
        setter(current)


def snapshots(backend: TorchBackend) -> None:
    backend.reset()
    backend.feed(synthetic_prompt(backend, 4096))
    sync()
    start = time.perf_counter()
    snap = backend.snapshot()
    sync()
    taken = time.perf_counter() - start
    size = 0
    stack: list[object] = [snap]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            size += item.numel() * item.element_size()
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    start = time.perf_counter()
    backend.restore(snap, list(backend.tokens))
    sync()
    log(f"snapshot at 4096 tokens: {size / 2**20:.0f} MiB, save {taken * 1000:.1f} ms, "
        f"restore {(time.perf_counter() - start) * 1000:.1f} ms")


def profile(backend: TorchBackend) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    backend.reset()
    backend.feed(synthetic_prompt(backend, 1024))
    token = [int(torch.argmax(backend._logits).item())]
    for _ in range(3):
        backend.feed(token)
    sync()
    start = time.perf_counter()
    for _ in range(5):
        backend.feed(token)
    sync()
    step = (time.perf_counter() - start) / 5
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if CUDA else [ProfilerActivity.CPU]
    with torch_profile(activities=activities) as prof:
        backend.feed(token)
        sync()
    events = prof.key_averages()
    gpu_us = sum(e.self_device_time_total for e in events) if events else 0
    log(f"one decode step: {step * 1000:.1f} ms wall; GPU busy {gpu_us / 1000:.1f} ms of it; "
        f"{sum(e.count for e in events if e.key.startswith('cuda') and 'Launch' in e.key)} kernel launches")
    print(events.table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=60), flush=True)
    print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60), flush=True)


def main(out: Path) -> None:
    log(f"GPU: {torch.cuda.get_device_name(0) if CUDA else 'none'}, torch {torch.__version__}, "
        f"transformers {__import__('transformers').__version__}")
    write_folder(out)
    session = load(out)
    backend = session.backend
    assert isinstance(backend, TorchBackend)
    if os.environ.get("ONLY") == "bench":
        bench(backend, 1024, 32, 2)
        bench(backend, 8192, 32, 2)
        return
    if os.environ.get("ONLY") == "attention":
        attention_paths(backend)
        experts(backend)
        return
    chat(session)
    if os.environ.get("SKIP_BENCH") != "1":
        bench(backend, 1024, 32, 2)
        bench(backend, 8192, 32, 2)
    if CUDA:
        log(f"peak VRAM {torch.cuda.max_memory_allocated() / GiB:.1f} GiB")
    snapshots(backend)
    profile(backend)
    experts(backend)
    session.unload()
    if CUDA:
        log(f"after unload: {torch.cuda.memory_allocated() / GiB:.2f} GiB allocated")
    if "--keep" not in sys.argv:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
