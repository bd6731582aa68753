"""The fast decode path on the GPU, full-size architecture with random bfloat16 weights (device machine only).

Sections, each printing its figures (pick with --only a,b; default: all but `product`):

- `check`: each Triton kernel against its torch reference (reference.TorchOps) at the real shapes;
- `sweep`: each kernel site timed per launch configuration inside a CUDA graph of all its layers
  (weights rotate through the layers, far more than the L2 holds), against cuBLAS for the GEMVs;
- `step`: the decoder on the model built in memory: prefill 1k and 32k, the replayed step's time,
  the per-token loop, logits against transformers' own forward, the torch-reference step in a graph,
  a profile of replays (per-kernel time), VRAM; then the preparation time cold and cached, each in a
  fresh process;
- `ttft`: prompt to first token at 1k and 8k, our prefill and transformers' forward alternating;
- `parity`: 10 layers of the real widths in float32 and bfloat16: the graphed step against
  transformers, and the graph against the same kernels launched one by one (bit for bit);
- `product`: the product's own code on a written safetensors folder: load through the session
  (progress, label, time), the fast path, today's eager path and plain `generate()` side by side at
  1k, 8k and 32k (TTFT, decode tok/s), a chat with a reasoning budget, snapshots, unload, and
  `nemotron-desk chat` through the worker;
- `prepare`: the decoder's preparation in fresh processes, with an empty kernel cache, then cached.

Weights are re-drawn as the tiny fixture draws them (`condition_weights`); on the full 52 layers in
bfloat16 even transformers' own cached decode departs from its own fresh forward (rel. 0.6 on run 2),
so whole-model agreement is checked where it means something: `parity`, and on the CPU in float32.

    python -m tests.gpu.fast_h200 OUT_DIR [--only check,sweep,step,ttft,parity,product,prepare] [--tiny]

`--tiny` runs check and step on the CPU with the tiny config (Triton's interpreter), to try the
script itself without a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.backends.torch.fast import kernels as kernel_module
from engine.backends.torch.fast.decoder import FastDecoder
from engine.backends.torch.fast.reference import TorchOps
from engine.backends.torch.fast.step import decode_step
from engine.backends.torch.fast.weights import AttentionWeights, MambaWeights, ModelWeights, MoEWeights, model_weights
from tests.fixtures.tiny_nemotron import real_config, tiny_config

GiB = 2**30
CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
N_CTX = 40960


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def build_model(config: dict[str, Any], dtype: Any) -> Any:
    from transformers import NemotronHConfig, NemotronHForCausalLM

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(DEV):
            model = NemotronHForCausalLM(NemotronHConfig(**config))
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def condition_weights(model: Any) -> None:
    """Re-draw the weights as the tiny fixture draws them (unit-scale activations, a router with clear
    winners, a spread of logits). transformers' own init (std 0.02, zero router bias) leaves the top-6
    of 128 experts nearly tied, so bf16 rounding differences between any two implementations flip
    expert choices and the comparison measures the flips, not the step."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p.shape[-1]
            if name.endswith("embeddings.weight"):
                p.normal_(0.0, 1.0)
            elif name.endswith("norm.weight") or name.endswith("norm_f.weight") or name.endswith(".D"):
                p.normal_(1.0, 0.1)
            elif name.endswith("conv1d.weight"):
                p.normal_(0.0, 0.5)
            elif name.endswith("conv1d.bias"):
                p.normal_(0.0, 0.02)
            elif name.endswith("A_log"):
                p.copy_(torch.log(torch.empty_like(p, dtype=torch.float32).uniform_(1.0, 16.0)))
            elif name.endswith("dt_bias"):
                dt = torch.exp(torch.empty_like(p, dtype=torch.float32).uniform_(math.log(0.01), math.log(0.1)))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif name.endswith("gate.weight"):
                p.normal_(0.0, 2.0 / math.sqrt(fan_in))
            elif "down_proj" in name:
                p.normal_(0.0, 0.5 / math.sqrt(fan_in))
            elif name == "lm_head.weight":
                p.normal_(0.0, 3.0 / math.sqrt(fan_in))
            elif p.dim() >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(fan_in))
            if name.endswith("in_proj.weight"):
                p[-model.config.mamba_num_heads:] *= 0.25
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0.0, 0.05)


def rel(a: Any, b: Any) -> float:
    a, b = a.float(), b.float()
    if not torch.isfinite(a).all():
        return float("nan")
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def layers_of(w: ModelWeights, kind: type) -> list[Any]:
    return [layer for layer in w.layers if isinstance(layer, kind)]


# -- check -----------------------------------------------------------------------------------------


def check(model: Any, dtype: Any) -> None:
    w = model_weights(torch, model)
    sh = w.shapes
    ref, tri = TorchOps(torch), kernel_module.TritonOps(torch, sh, N_CTX, DEV, dtype)
    tol = 2e-2 if dtype != torch.float32 else 1e-5
    rows: list[tuple[str, float]] = []

    def rnd(*shape: int, scale: float = 1.0, dt: Any = dtype) -> Any:
        return (torch.randn(*shape, device=DEV) * scale).to(dt)

    def pair(make: Callable[[], Any]) -> tuple[Any, Any]:
        a = make()
        return a, a.clone()

    def poisoned(t: Any) -> Any:
        return torch.full_like(t, float("nan")) if t.is_floating_point() else t.clone()

    h = rnd(sh.hidden)
    mamba, attn, moe = layers_of(w, MambaWeights)[0], layers_of(w, AttentionWeights)[0], layers_of(w, MoEWeights)[0]
    gemvs = (("rms_gemv in_proj", mamba.in_proj, dtype), ("rms_gemv router", moe.router, torch.float32),
             ("rms_gemv lm_head", w.lm_head, dtype))
    for name, weight, out_dt in gemvs:
        o1 = torch.empty(weight.shape[0], dtype=out_dt, device=DEV)
        o2 = poisoned(o1)
        ref.rms_gemv(h, mamba.norm, sh.eps, weight, o1)
        tri.rms_gemv(h, mamba.norm, sh.eps, weight, o2)
        rows.append((name, rel(o2, o1)))
    for length in (1024, 32768) if CUDA else (5, 300):
        pos = torch.tensor([length - 1], device=DEV)
        k1, k2 = pair(lambda: rnd(sh.kv_heads, N_CTX, sh.head_dim))
        v1, v2 = pair(lambda: rnd(sh.kv_heads, N_CTX, sh.head_dim))
        q1 = torch.empty(sh.q_heads * sh.head_dim, dtype=dtype, device=DEV)
        q2 = poisoned(q1)
        ref.qkv_gemv(h, attn.norm, sh.eps, attn.qkv, q1, k1, v1, pos)
        tri.qkv_gemv(h, attn.norm, sh.eps, attn.qkv, q2, k2, v2, pos)
        rows.append((f"qkv_gemv q @{length}", rel(q2, q1)))
        rows.append((f"qkv_gemv k,v @{length}", rel(torch.cat([k2[:, length - 1], v2[:, length - 1]]),
                                                     torch.cat([k1[:, length - 1], v1[:, length - 1]]))))
        a1 = torch.empty_like(q1)
        a2 = poisoned(a1)
        ref.attention(q1, k1, v1, pos, a1)
        tri.attention(q1, k1, v1, pos, a2)
        rows.append((f"attention @{length}", rel(a2, a1)))
    ring1, ring2 = pair(lambda: rnd(sh.conv_dim, sh.conv_kernel))
    ssm1, ssm2 = pair(lambda: rnd(sh.mamba_heads, sh.mamba_head_dim, sh.ssm_state, scale=0.1, dt=torch.float32))
    for p in (0, 1, 2, 3, 1000):
        zx = rnd(sh.in_proj_rows)
        pos = torch.tensor([p], device=DEV)
        y1 = torch.empty(sh.inner, dtype=torch.float32, device=DEV)
        y2 = poisoned(y1)
        ref.mamba_mix(zx, ring1, ssm1, mamba, sh, pos, y1)
        tri.mamba_mix(zx, ring2, ssm2, mamba, sh, pos, y2)
        rows += [(f"mamba_mix y @{p}", rel(y2, y1)), (f"mamba_mix ssm @{p}", rel(ssm2, ssm1)),
                 (f"mamba_mix conv ring @{p}", rel(ring2, ring1))]
    h1, h2 = pair(lambda: h.clone())
    ref.gated_gemv_residual(y1, zx[:sh.inner], mamba.gate_norm, sh.eps, sh.n_groups, mamba.out_proj, h1)
    tri.gated_gemv_residual(y1, zx[:sh.inner], mamba.gate_norm, sh.eps, sh.n_groups, mamba.out_proj, h2)
    rows.append(("gated_gemv_residual", rel(h2 - h, h1 - h)))
    tri.variants["out_proj"] = "split"
    h3 = h.clone()
    tri.gated_gemv_residual(y1, zx[:sh.inner], mamba.gate_norm, sh.eps, sh.n_groups, mamba.out_proj, h3)
    tri.variants["out_proj"] = "fused"
    rows.append(("gated_gemv_residual, split", rel(h3 - h, h1 - h)))
    x = rnd(sh.q_heads * sh.head_dim)
    h1, h2 = pair(lambda: h.clone())
    ref.gemv_residual(x, attn.o_proj, h1)
    tri.gemv_residual(x, attn.o_proj, h2)
    rows.append(("gemv_residual o_proj", rel(h2 - h, h1 - h)))
    logits = torch.randn(sh.n_experts, device=DEV)
    i1 = torch.empty(sh.top_k, dtype=torch.long, device=DEV)
    w1 = torch.empty(sh.top_k, device=DEV)
    i2, w2 = i1.clone(), poisoned(w1)
    ref.route(logits, moe.router_bias, sh, i1, w1)
    tri.route(logits, moe.router_bias, sh, i2, w2)
    same = sorted(i1.tolist()) == sorted(i2.tolist())
    rows.append(("route (same experts: 0)" if same else "route: DIFFERENT EXPERTS", 0.0 if same else 1.0))
    order1, order2 = i1.argsort(), i2.argsort()
    rows.append(("route weights", rel(w2[order2], w1[order1])))
    u1 = torch.empty(sh.top_k + sh.n_shared_slots, sh.expert_ff, dtype=dtype, device=DEV)
    u2 = poisoned(u1)
    ref.experts_up(h, moe.norm, sh.eps, moe, sh, i1, u1)
    tri.experts_up(h, moe.norm, sh.eps, moe, sh, i1, u2)
    rows.append(("experts_up", rel(u2, u1)))
    h1, h2 = pair(lambda: h.clone())
    ref.experts_down(u1, moe, sh, i1, w1, h1)
    tri.experts_down(u1, moe, sh, i1, w1, h2)
    rows.append(("experts_down", rel(h2 - h, h1 - h)))
    tri.variants["down"] = "split"
    h3 = h.clone()
    tri.experts_down(u1, moe, sh, i1, w1, h3)
    rows.append(("experts_down, split", rel(h3 - h, h1 - h)))
    bad = 0
    for name, err in rows:
        ok = err == err and err < tol
        bad += not ok
        log(f"check {name:<28} rel err {err:.2e}  {'ok' if ok else 'FAIL'}")
    log(f"check: {len(rows) - bad}/{len(rows)} within {tol:g}")


# -- sweep -----------------------------------------------------------------------------------------


def graph_ms(body: Callable[[], None], reps: int = 20) -> float:
    """Median milliseconds of one replay of `body` captured in a CUDA graph."""
    from engine.backends.torch.fast.graph import CapturedGraph

    with torch.inference_mode():
        graph = CapturedGraph(torch, body, warmups=1)
        times = []
        for _ in range(5):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps):
                graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / reps)
    return statistics.median(times)


# (BLOCK_N, BLOCK_K, warps[, variant]); run 1 (2026-12-01) found BLOCK_N 8 / BLOCK_K 256 best of
# its few; these add whole-row loads (BLOCK_K >= K: one load burst per program) and the split forms.
SWEEP: dict[str, list[tuple[Any, ...]]] = {
    "in_proj": [(8, 256, 4), (4, 512, 4), (4, 1024, 4), (2, 4096, 4), (4, 4096, 8), (8, 512, 4)],
    "lm_head": [(8, 256, 4), (4, 512, 4), (4, 1024, 4), (2, 4096, 4), (4, 4096, 8)],
    "router": [(2, 512, 4), (1, 4096, 4), (2, 4096, 8), (1, 1024, 4)],
    "qkv": [(8, 256, 4), (4, 512, 4), (2, 4096, 4), (4, 1024, 4)],
    "o_proj": [(4, 512, 4), (2, 1024, 4), (2, 4096, 8), (1, 4096, 4), (4, 1024, 4)],
    "out_proj": [(4, 0, 4), (2, 0, 4), (2, 0, 2), (4, 512, 4, "split"), (2, 1024, 4, "split"),
                 (2, 4096, 8, "split"), (1, 4096, 4, "split")],
    "up": [(8, 256, 4), (4, 512, 4), (4, 1024, 4), (2, 4096, 4), (4, 4096, 8), (8, 512, 4)],
    "down": [(8, 512, 8), (4, 2048, 8), (2, 2048, 4), (8, 256, 4, "split"), (4, 512, 4, "split"),
             (4, 2048, 8, "split"), (2, 2048, 4, "split"), (8, 2048, 8, "split")],
}


def sweep(model: Any, dtype: Any) -> dict[str, tuple[kernel_module.Tile, str]]:
    w = model_weights(torch, model)
    sh = w.shapes
    ops = kernel_module.TritonOps(torch, sh, N_CTX, DEV, dtype)
    h = (torch.randn(sh.hidden, device=DEV)).to(dtype)
    zx = torch.randn(sh.in_proj_rows, device=DEV).to(dtype)
    y = torch.randn(sh.inner, device=DEV)
    q = torch.randn(sh.q_heads * sh.head_dim, device=DEV).to(dtype)
    router = torch.empty(sh.n_experts, device=DEV)
    logits = torch.empty(sh.vocab, dtype=dtype, device=DEV)
    idx = torch.randperm(sh.n_experts, device=DEV)[:sh.top_k].contiguous()
    wts = torch.rand(sh.top_k, device=DEV)
    up = torch.randn(sh.top_k + sh.n_shared_slots, sh.expert_ff, device=DEV).to(dtype)
    keys = torch.randn(sh.kv_heads, N_CTX, sh.head_dim, device=DEV).to(dtype)
    mam, att, moe = layers_of(w, MambaWeights), layers_of(w, AttentionWeights), layers_of(w, MoEWeights)

    def el(t: Any) -> int:
        return int(t.numel() * t.element_size())

    sites: dict[str, tuple[Callable[[], None], int]] = {
        "in_proj": (lambda: [ops.rms_gemv(h, m.norm, sh.eps, m.in_proj, zx) for m in mam] and None,
                    sum(el(m.in_proj) for m in mam)),
        "lm_head": (lambda: [ops.rms_gemv(h, w.norm_f, sh.eps, w.lm_head, logits) for _ in range(3)] and None,
                    3 * el(w.lm_head)),
        "router": (lambda: [ops.rms_gemv(h, e.norm, sh.eps, e.router, router) for e in moe] and None,
                   sum(el(e.router) for e in moe)),
        "qkv": (lambda: [ops.qkv_gemv(h, a.norm, sh.eps, a.qkv, q, keys, keys, idx[:1]) for a in att] and None,
                sum(el(a.qkv) for a in att)),
        "o_proj": (lambda: [ops.gemv_residual(q, a.o_proj, h) for a in att] and None, sum(el(a.o_proj) for a in att)),
        "out_proj": (lambda: [ops.gated_gemv_residual(y, zx[:sh.inner], m.gate_norm, sh.eps, sh.n_groups, m.out_proj,
                                                      h) for m in mam] and None, sum(el(m.out_proj) for m in mam)),
        "up": (lambda: [ops.experts_up(h, e.norm, sh.eps, e, sh, idx, up) for e in moe] and None,
               len(moe) * (sh.top_k * sh.expert_ff + sh.shared_ff) * sh.hidden * 2),
        "down": (lambda: [ops.experts_down(up, e, sh, idx, wts, h) for e in moe] and None,
                 len(moe) * (sh.top_k * sh.expert_ff + sh.shared_ff) * sh.hidden * 2),
    }
    best: dict[str, tuple[kernel_module.Tile, str]] = {}
    summary = []
    for site, (body, nbytes) in sites.items():
        results = []
        for bn, bk, warps, *rest in SWEEP[site]:
            variant = rest[0] if rest else "fused"
            tile = kernel_module.Tile(bn, bk, warps)
            ops.tiles[site] = tile
            if site in ops.variants:
                ops.variants[site] = variant
            try:
                ms = graph_ms(body)
            except Exception as exc:
                log(f"sweep {site} {bn}x{bk} w{warps} {variant}: failed {type(exc).__name__}: {str(exc)[:200]}")
                continue
            results.append((ms, tile, variant))
            log(f"sweep {site:<8} BLOCK_N {bn:>3} BLOCK_K {bk:>4} warps {warps} {variant:<5}: {ms * 1000:8.1f} us "
                f"{nbytes / ms / 1e9:7.2f} TB/s")
        ms, tile, variant = min(results, key=lambda r: r[0])
        best[site] = (tile, variant)
        ops.tiles[site] = tile
        if site in ops.variants:
            ops.variants[site] = variant
        summary.append(f"{site}={tile.block_n}x{tile.block_k}w{tile.warps} {variant}: {ms * 1000:.1f} us, "
                       f"{nbytes / ms / 1e9:.2f} TB/s")
    # cuBLAS for the same dense GEMVs (what torch.nn.functional.linear does)
    F = torch.nn.functional
    for site, weights in (("in_proj", [m.in_proj for m in mam]), ("out_proj", [m.out_proj for m in mam]),
                          ("lm_head", [w.lm_head] * 3), ("qkv", [a.qkv for a in att])):
        x = torch.randn(1, weights[0].shape[1], device=DEV).to(dtype)
        ms = graph_ms(lambda ws=weights, x=x: [F.linear(x, wt) for wt in ws] and None)
        nbytes = sum(el(wt) for wt in weights)
        summary.append(f"cuBLAS {site}: {ms * 1000:.1f} us, {nbytes / ms / 1e9:.2f} TB/s")
    # the rest of a step's kernels
    ring = torch.randn(len(mam), sh.conv_dim, sh.conv_kernel, device=DEV).to(dtype)
    ssm = torch.randn(len(mam), sh.mamba_heads, sh.mamba_head_dim, sh.ssm_state, device=DEV)
    pos = torch.tensor([1000], device=DEV)
    ms = graph_ms(lambda: [ops.mamba_mix(zx, ring[i], ssm[i], m, sh, pos, y) for i, m in enumerate(mam)] and None)
    summary.append(f"mamba_mix x{len(mam)}: {ms * 1000:.1f} us ({ms * 1000 / len(mam):.1f} us each)")
    ms = graph_ms(lambda: [ops.route(router, e.router_bias, sh, idx, wts) for e in moe] and None)
    summary.append(f"route x{len(moe)}: {ms * 1000:.1f} us ({ms * 1000 / len(moe):.1f} us each)")
    attn_out = torch.empty_like(q)
    for length in (1024, 32768):
        p = torch.tensor([length - 1], device=DEV)
        ms = graph_ms(lambda p=p: [ops.attention(q, keys, keys, p, attn_out) for _ in att] and None)
        summary.append(f"attention x{len(att)} @{length}: {ms * 1000:.1f} us ({ms * 1000 / len(att):.1f} us each)")
    for line in summary:
        log(f"sweep best: {line}")
    return best


# -- step ------------------------------------------------------------------------------------------


def step_ms(dec: FastDecoder, reps: int = 50) -> float:
    graph = dec.graphs["step"]
    times = []
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / reps)
    return statistics.median(times)


def loop_tok_s(dec: FastDecoder, n: int = 64) -> float:
    token = dec.greedy()
    sync()
    start = time.perf_counter()
    for _ in range(n):
        dec.step(token)
        token = dec.greedy()
    return n / (time.perf_counter() - start)


def versus_transformers(model: Any, dec: FastDecoder, prompt: list[int], steps: int) -> None:
    """Greedy from the same prompt: our prefill + steps against transformers' forward with its cache,
    and both against one fresh forward over the whole sequence at the end."""
    from transformers import DynamicCache

    from engine.backends.torch.backend import _forward_params

    kw = "cache" if "cache" in _forward_params(model) else "past_key_values"
    cache = DynamicCache(config=model.config)
    dec.reset()
    dec.feed(prompt)
    errs, agree, fed = [], 0, list(prompt)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt], device=DEV), use_cache=True, logits_to_keep=1, **{kw: cache})
        errs.append(rel(dec.work.logits, out.logits[0, -1]))
        for _ in range(steps):
            ours = dec.greedy()
            theirs = int(out.logits[0, -1].argmax())
            agree += ours == theirs
            dec.feed([theirs])
            fed.append(theirs)
            out = model(input_ids=torch.tensor([[theirs]], device=DEV), use_cache=True, logits_to_keep=1,
                        **{kw: cache})
            errs.append(rel(dec.work.logits, out.logits[0, -1]))
        fresh = model(input_ids=torch.tensor([fed], device=DEV), logits_to_keep=1).logits[0, -1]
    log(f"vs transformers ({len(prompt)}-token prompt, {steps} steps fed transformers' greedy tokens): "
        f"greedy agreement {agree}/{steps}; logits rel err prefill {errs[0]:.2e}, steps median "
        f"{statistics.median(errs[1:]):.2e}, max {max(errs[1:]):.2e}; against one fresh forward over all "
        f"{len(fed)} tokens: ours {rel(dec.work.logits, fresh):.2e}, transformers' cached decode "
        f"{rel(out.logits[0, -1], fresh):.2e}")


def ttft_pair(model: Any, dec: FastDecoder, prompt: list[int], reps: int = 3) -> None:
    """Prompt to first greedy token: our prefill into the static state against transformers' forward."""
    from transformers import DynamicCache

    from engine.backends.torch.backend import _attention_backends, _forward_params

    kw = "cache" if "cache" in _forward_params(model) else "past_key_values"
    ours, theirs = [], []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        dec.reset()
        dec.feed(prompt)
        dec.greedy()
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        with _attention_backends(torch)():
            out = model(input_ids=torch.tensor([prompt], device=DEV), use_cache=True, logits_to_keep=1,
                        **{kw: DynamicCache(config=model.config)})
        int(out.logits[0, -1].argmax())
        theirs.append(time.perf_counter() - start)
    log(f"TTFT {len(prompt)} tokens, alternating x{reps}: our prefill {[round(t * 1000) for t in ours]} ms, "
        f"transformers forward {[round(t * 1000) for t in theirs]} ms")


def ttft(model: Any) -> None:
    from engine.backends.torch.backend import _attention_backends

    dec = FastDecoder(torch, model, N_CTX, kernels="triton", prefill_chunk=8192,
                      attention_context=_attention_backends(torch))
    gen = torch.Generator().manual_seed(3)
    for depth in (1024, 8192):
        ttft_pair(model, dec, torch.randint(100, 131000, (depth,), generator=gen).tolist())
    dec.close()


def profile_replays(dec: FastDecoder) -> None:
    from torch.profiler import ProfilerActivity, profile

    graph = dec.graphs["step"]
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            graph.replay()
        sync()
    events = prof.key_averages()
    total = sum(e.self_device_time_total for e in events) / 5
    log(f"profile of 5 replays: {total / 1000:.3f} ms of kernel time per step")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:14]:
        log(f"  {e.key[:60]:<60} {e.count // 5:>4} per step  {e.self_device_time_total / 5 / 1000:7.3f} ms per step")


def step(model: Any, dtype: Any, out: Path) -> None:
    from engine.backends.torch.backend import _attention_backends

    context = _attention_backends(torch) if CUDA else __import__("contextlib").nullcontext
    before = torch.cuda.memory_allocated() if CUDA else 0
    start = time.perf_counter()
    dec = FastDecoder(torch, model, N_CTX, kernels="triton" if CUDA else "torch", prefill_chunk=8192,
                      attention_context=context)
    log(f"decoder ready in {time.perf_counter() - start:.1f} s (prepare {dec.prepare_s:.1f} s; kernels already "
        f"compiled in this process by check/sweep); static state {dec.state.nbytes() / GiB:.2f} GiB at n_ctx {N_CTX}; "
        f"VRAM +{((torch.cuda.memory_allocated() if CUDA else 0) - before) / GiB:.2f} GiB")
    vocab = dec.weights.shapes.vocab
    gen = torch.Generator().manual_seed(1)
    versus_transformers(model, dec, torch.randint(100, vocab, (1024 if CUDA else 40,), generator=gen).tolist(),
                        32 if CUDA else 8)
    if CUDA:
        ttft_pair(model, dec, torch.randint(100, vocab, (1024,), generator=gen).tolist())
    if not CUDA:
        return
    for depth in (1024, 32768):
        dec.reset()
        prompt = torch.randint(100, vocab, (depth,), generator=gen).tolist()
        sync()
        start = time.perf_counter()
        dec.feed(prompt)
        token = dec.greedy()
        ttft = time.perf_counter() - start
        dec.step(token)  # the replays below run at this position (the prefill does not write it)
        ms = step_ms(dec)
        tps = loop_tok_s(dec)
        log(f"depth {depth}: prefill+first token {ttft * 1000:.0f} ms; replayed step {ms:.3f} ms "
            f"({1000 / ms:.0f} tok/s, {1000 / ms / 662:.0%} of the 662 ceiling); step+greedy loop {tps:.0f} tok/s")
        del token
        if depth == 1024:
            profile_replays(dec)
            try:
                ms_ref = graph_ms(lambda: decode_step(TorchOps(torch), dec.weights, dec.state, dec.work), reps=5)
                log(f"the same step with the torch reference ops, graphed: {ms_ref:.2f} ms ({1000 / ms_ref:.0f} tok/s)")
            except Exception as exc:
                log(f"torch reference step in a graph failed: {type(exc).__name__}: {str(exc)[:200]}")
    log(f"peak VRAM {torch.cuda.max_memory_allocated() / GiB:.1f} GiB")
    dec.close()


def prepare_times(out: Path) -> None:
    """The decoder's preparation (compile + capture) in a fresh process: empty kernel cache, then warm."""
    cache = Path("/tmp/fast-triton-cache")  # not under OUT_DIR: only figures go back
    env = dict(os.environ, TRITON_CACHE_DIR=str(cache))
    code = ("import time, torch; from tests.gpu.fast_h200 import build_model, prepare_child; "
            "prepare_child()")
    for label in ("cold (empty kernel cache)", "cached (second load)"):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
        lines = [line for line in result.stdout.splitlines() if line.startswith("prepare")]
        seen = lines[-1] if lines else result.stderr[-800:]
        log(f"prepare {label}: {seen} (process {time.perf_counter() - start:.0f} s)")


def prepare_child() -> None:
    model = build_model(real_config(), torch.bfloat16)
    from engine.backends.torch.backend import _attention_backends

    apply_tiles()
    dec = FastDecoder(torch, model, N_CTX, kernels="triton", prefill_chunk=8192,
                      attention_context=_attention_backends(torch))
    print(f"prepare {dec.prepare_s:.1f} s", flush=True)


# -- parity ---------------------------------------------------------------------------------------


def parity() -> None:
    """The real widths over 10 layers (all three kinds twice), float32 and bfloat16: the graphed step
    against transformers, and the graph against the same kernels launched one by one."""
    config = dict(real_config(), hybrid_override_pattern="MEM*EMEM*E", num_hidden_layers=10)
    for dtype in (torch.float32, torch.bfloat16):
        model = build_model(config, dtype)
        condition_weights(model)
        from engine.backends.torch.backend import _attention_backends

        dec = FastDecoder(torch, model, 4096, kernels="triton", prefill_chunk=8192,
                          attention_context=_attention_backends(torch))
        log(f"parity, {str(dtype).removeprefix('torch.')}, 10 layers of the real widths:")
        prompt = torch.randint(100, 131000, (512,), generator=torch.Generator().manual_seed(2)).tolist()
        versus_transformers(model, dec, prompt, 32)
        dec.reset()
        dec.feed(prompt)
        snap, first = dec.snapshot(), dec.greedy()
        runs = []
        for graphed in (True, False):
            dec.restore(snap)
            graphs = dict(dec.graphs)
            if not graphed:
                dec.graphs.clear()
            token, logits = first, []
            for _ in range(8):
                dec.step(token)
                token = dec.greedy()
                logits.append(dec.work.logits.clone())
            dec.graphs.update(graphs)
            runs.append(torch.stack(logits))
        log(f"  graph replay against the same kernels launched eagerly, 8 steps: max |diff| "
            f"{float((runs[0].float() - runs[1].float()).abs().max()):.3g}")
        dec.close()
        del dec, model
        torch.cuda.empty_cache()


# -- product --------------------------------------------------------------------------------------


def product(out: Path) -> None:
    """The product's own path on a written folder: load, three decode paths side by side, chat, unload."""
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
    from engine.client.bench import run_engine_loop, run_plain_generate, synthetic_prompt
    from engine.worker.session import EngineSession
    from tests.gpu.torch_h200 import write_folder

    folder = Path("/dev/shm/nemotron-bf16")
    write_folder(folder)
    session = EngineSession()
    before = int(torch.cuda.mem_get_info()[0])
    start = time.perf_counter()
    stages: list[str] = []
    for event in session.load(LoadSpec(str(folder), torch=TorchLoadOptions(n_ctx=N_CTX))):
        if isinstance(event, LoadProgress) and (not stages or stages[-1] != event.stage.split(":")[0]):
            stages.append(event.stage.split(":")[0])
        elif isinstance(event, ModelInfo):
            log(f"loaded: {event.device}; {event.kernels}; notes {event.notes}")
    log(f"load {time.perf_counter() - start:.1f} s, VRAM +{(before - int(torch.cuda.mem_get_info()[0])) / GiB:.1f} GiB;"
        f" stages: {' > '.join(stages)}")
    backend = session.backend
    assert isinstance(backend, TorchBackend) and backend._fast is not None
    fast = backend._fast
    rows = []
    for depth in (1024, 8192, 32768):
        prompt = synthetic_prompt(backend, depth)
        figures = {}
        for name in ("fast path", "eager path", "plain generate()"):
            gen = 128 if name == "fast path" else 24
            if name == "eager path":
                backend._fast = None  # today's path on the same loaded model
            try:
                if depth == 1024:  # one untimed run each: first-use costs stay out of the figures
                    (run_plain_generate if name.startswith("plain") else run_engine_loop)(backend, prompt[:64], 4)
                run = run_plain_generate if name.startswith("plain") else run_engine_loop
                torch.cuda.reset_peak_memory_stats()
                f = run(backend, prompt, gen)
                figures[name] = f
                rows.append(f"| {depth:,} | {name} | {f.time_to_first_token_s * 1000:.0f} | "
                            f"{f.decode_tokens_per_s:.1f} | {torch.cuda.max_memory_allocated() / GiB:.1f} |")
                log(f"depth {depth} {name}: TTFT {f.time_to_first_token_s * 1000:.0f} ms, decode "
                    f"{f.decode_tokens_per_s:.1f} tok/s, peak {torch.cuda.max_memory_allocated() / GiB:.1f} GiB")
            except Exception as exc:
                log(f"depth {depth} {name}: failed {type(exc).__name__}: {str(exc)[:300]}")
            finally:
                backend._fast = fast
                backend.reset()
    log("| prompt | path | TTFT ms | decode tok/s | peak GiB |")
    for row in rows:
        log(row)
    request = GenerationRequest((Message("user", "Why is the sky blue?"),), reasoning_budget=64,
                                sampling=SamplingParams(temperature=1.0, top_p=0.95, seed=3, max_tokens=256))
    counts = {"reasoning": 0, "answer": 0}
    ended = usage = None
    for event in session.generate(request):
        if isinstance(event, ReasoningDelta):
            counts["reasoning"] += 1
        elif isinstance(event, ContentDelta):
            counts["answer"] += 1
        elif isinstance(event, ReasoningEnded):
            ended = event
        elif isinstance(event, Usage):
            usage = event
    if ended is not None and usage is not None:
        log(f"chat, budget 64, top_p 0.95: reasoning ended by budget={ended.by_budget} after "
            f"{ended.reasoning_tokens} tokens; {usage.answer_tokens} answer tokens; deltas {counts}; TTFT "
            f"{usage.time_to_first_token_s * 1000:.0f} ms; decode {usage.decode_tokens_per_s:.1f} tok/s")
    backend.reset()
    backend.feed(synthetic_prompt(backend, 4096))
    sync()
    start = time.perf_counter()
    snap = backend.snapshot()
    sync()
    taken = time.perf_counter() - start
    start = time.perf_counter()
    backend.restore(snap, list(backend.tokens))
    sync()
    log(f"snapshot at 4,096 tokens: {snap.nbytes() / 2**20:.0f} MiB, save {taken * 1000:.1f} ms, "  # type: ignore[attr-defined]
        f"restore {(time.perf_counter() - start) * 1000:.1f} ms")
    del snap, fast, backend
    session.unload()
    import gc

    gc.collect()
    torch.cuda.empty_cache()
    log(f"after unload: {torch.cuda.memory_allocated() / GiB:.2f} GiB allocated, "
        f"{(before - int(torch.cuda.mem_get_info()[0])) / GiB:.2f} GiB less free than before the load")
    cli_chat(folder)


CLI_KEYS = ("event", "kernels", "by_budget", "reasoning_tokens", "answer_tokens", "decode_tokens_per_s",
            "time_to_first_token_s", "reason", "message")


def cli_chat(folder: Path) -> None:
    """`nemotron-desk chat` through the worker process, with a budget, streamed as JSON events."""
    command = [sys.executable, "-m", "app.cli.main", "chat", "-m", str(folder), "--ctx", "16384", "-p",
               "Why is the sky blue?", "--budget", "32", "--max-tokens", "120", "--seed", "3", "--json"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=200)
    kinds: dict[str, int] = {}
    for line in result.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kinds[event["event"]] = kinds.get(event["event"], 0) + 1
        if event["event"] in ("ModelInfo", "ReasoningEnded", "Usage", "Finished", "Error"):
            log(f"cli: { {k: v for k, v in event.items() if k in CLI_KEYS} }")
    log(f"cli chat through the worker: rc {result.returncode}, {time.perf_counter() - start:.0f} s, events {kinds}"
        f"{'' if result.returncode == 0 else ' ' + result.stderr[-1500:]}")


TILES_FILE = Path(os.environ.get("FAST_TILES", "/tmp/fast-tiles.json"))


def apply_tiles() -> None:
    if TILES_FILE.is_file():
        for site, (bn, bk, warps, variant) in json.loads(TILES_FILE.read_text()).items():
            kernel_module.DEFAULT_TILES[site] = kernel_module.Tile(bn, bk, warps)
            if site in kernel_module.DEFAULT_VARIANTS:
                kernel_module.DEFAULT_VARIANTS[site] = variant


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", default="check,sweep,step")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    log(f"GPU: {torch.cuda.get_device_name(0) if CUDA else 'none'}, torch {torch.__version__}, "
        f"transformers {__import__('transformers').__version__}, triton {__import__('triton').__version__}")
    dtype = torch.float32 if args.tiny else torch.bfloat16
    start = time.perf_counter()
    model = None
    if only & {"check", "sweep", "step", "ttft"}:
        model = build_model(tiny_config() if args.tiny else real_config(), dtype)
        condition_weights(model)
        log(f"built the model in {time.perf_counter() - start:.1f} s: "
            f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters")
    sections: list[tuple[str, Callable[[], Any]]] = [
        ("ttft", lambda: ttft(model)),
        ("check", lambda: check(model, dtype)),
        ("sweep", lambda: save_tiles(sweep(model, dtype), args.out) if CUDA else None),
        ("step", lambda: (apply_tiles(), step(model, dtype, args.out))),
    ]
    for name, run in sections:
        if name in only:
            run_section(name, run)
    if CUDA and only & {"product", "prepare", "parity"}:
        del model, sections
        torch.cuda.empty_cache()
    if "parity" in only and CUDA:
        run_section("parity", parity)
    if "product" in only and CUDA:
        run_section("product", lambda: product(args.out))
    if "prepare" in only and CUDA:
        run_section("prepare", lambda: prepare_times(args.out))

def run_section(name: str, run: Callable[[], Any]) -> None:
    import traceback

    start = time.perf_counter()
    try:
        with torch.inference_mode():
            run()
    except Exception:
        log(f"section {name} FAILED:\n{traceback.format_exc()[-3000:]}")
    log(f"section {name}: {time.perf_counter() - start:.1f} s")


def save_tiles(best: dict[str, tuple[kernel_module.Tile, str]], out: Path) -> None:
    TILES_FILE.write_text(json.dumps({k: [t.block_n, t.block_k, t.warps, v] for k, (t, v) in best.items()}))
    (out / "tiles.json").write_text(TILES_FILE.read_text())


if __name__ == "__main__":
    main()
