"""The decode step's fused Triton kernels; `TritonOps` launches them with `TorchOps`' signatures.

Each kernel does what one `reference.TorchOps` method does, with the same roundings to the model
dtype, and is checked against it (tests/engine/backends/torch/fast/test_fast_kernels.py under Triton's
interpreter on the CPU, tests/gpu/fast_h200.py on the GPU). Batch 1 decode is a walk over the weights, so every kernel
is a GEMV-shaped loop that reads each weight row once, with the small work around it (RMSNorm,
gates, residual adds, cache writes) folded into its prologue or epilogue:

- `_gemv_kernel`: out = W @ rmsnorm(x) (in_proj, router, lm_head), or h += W @ x (o_proj);
- `_qkv_kernel`: q/k/v of one token, k and v stored straight into the cache at the position;
- `_gated_gemv_kernel`: h += out_proj(gated group RMSNorm(y, z));
- `_mamba_kernel`: conv update + SiLU + selective-state update of one head's rows;
- `_attn_partial_kernel` + `_attn_reduce_kernel`: split-K (flash-decoding) attention over the cache
  up to the position held on the device, so one captured graph serves every length;
- `_route_kernel`: sigmoid router scores, top-k, renormalised weights;
- `_experts_up_kernel` / `_experts_down_kernel`: grouped GEMVs over only the chosen experts' rows,
  read where they lie in the [experts, out, in] tensors (no gather copy), with the shared expert
  as extra slices of the same launch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl

from engine.backends.torch.fast.shapes import ModelShapes
from engine.backends.torch.fast.weights import MambaWeights, MoEWeights

#: Keys per split-K program of the attention kernel; the partial buffers are sized n_ctx / ATTN_CHUNK.
ATTN_CHUNK = 256


@triton.jit
def _rstd(x_ptr, K, eps, BLOCK_X: tl.constexpr):
    offs = tl.arange(0, BLOCK_X)
    x = tl.load(x_ptr + offs, mask=offs < K, other=0.0).to(tl.float32)
    return 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / K + eps)


@triton.jit
def _rows_dot(x_ptr, nw_ptr, rstd, w_ptr, stride_w, rows, rmask, K,
              NORM: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """sum_k W[rows, k] * x[k] in float32; with NORM, x is rmsnorm(x) rounded to x's dtype."""
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        cmask = cols < K
        x = tl.load(x_ptr + cols, mask=cmask, other=0.0)
        if NORM:
            nw = tl.load(nw_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
            xf = (nw * (x.to(tl.float32) * rstd)).to(x.dtype).to(tl.float32)
        else:
            xf = x.to(tl.float32)
        w = tl.load(w_ptr + rows[:, None] * stride_w + cols[None, :], mask=rmask[:, None] & cmask[None, :],
                    other=0.0)
        acc += w.to(tl.float32) * xf[None, :]
    return tl.sum(acc, axis=1)


@triton.jit
def _gemv_kernel(x_ptr, nw_ptr, w_ptr, out_ptr, N, K, stride_w, eps,
                 NORM: tl.constexpr, RESIDUAL: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_X: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    if NORM:  # noqa: SIM108 (a constexpr branch: only one side is compiled)
        rstd = _rstd(x_ptr, K, eps, BLOCK_X)
    else:
        rstd = 1.0
    y = _rows_dot(x_ptr, nw_ptr, rstd, w_ptr, stride_w, rows, rmask, K, NORM, BLOCK_N, BLOCK_K)
    out_ty = out_ptr.dtype.element_ty
    if RESIDUAL:
        y = y.to(out_ty).to(tl.float32) + tl.load(out_ptr + rows, mask=rmask, other=0.0).to(tl.float32)
    tl.store(out_ptr + rows, y.to(out_ty), mask=rmask)


@triton.jit
def _qkv_kernel(x_ptr, nw_ptr, w_ptr, q_ptr, k_ptr, v_ptr, pos_ptr, N, K, stride_w, eps, NQ, NKV, D, stride_kh,
                BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_X: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    rstd = _rstd(x_ptr, K, eps, BLOCK_X)
    y = _rows_dot(x_ptr, nw_ptr, rstd, w_ptr, stride_w, rows, rmask, K, True, BLOCK_N, BLOCK_K)
    y = y.to(q_ptr.dtype.element_ty)
    pos = tl.load(pos_ptr)
    tl.store(q_ptr + rows, y, mask=rmask & (rows < NQ))
    r = rows - NQ
    tl.store(k_ptr + (r // D) * stride_kh + pos * D + r % D, y, mask=rmask & (r >= 0) & (r < NKV))
    r = rows - NQ - NKV
    tl.store(v_ptr + (r // D) * stride_kh + pos * D + r % D, y, mask=rmask & (r >= 0))


@triton.jit
def _gated_gemv_kernel(y_ptr, z_ptr, nw_ptr, w_ptr, h_ptr, N, stride_w, eps, G, GS,
                       BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    dt = h_ptr.dtype.element_ty
    j = tl.arange(0, BLOCK_G)
    jmask = j < GS
    acc = tl.zeros([BLOCK_N, BLOCK_G], dtype=tl.float32)
    for g in range(0, G):
        # one norm group per iteration: its sum of squares comes with the loads
        cols = g * GS + j
        zv = tl.load(z_ptr + cols, mask=jmask, other=0.0).to(tl.float32)
        gv = tl.load(y_ptr + cols, mask=jmask, other=0.0) * (zv * tl.sigmoid(zv))
        rstd = 1.0 / tl.sqrt(tl.sum(gv * gv, axis=0) / GS + eps)
        nw = tl.load(nw_ptr + cols, mask=jmask, other=0.0).to(tl.float32)
        xn = (nw * (gv * rstd).to(dt).to(tl.float32)).to(dt).to(tl.float32)
        w = tl.load(w_ptr + rows[:, None] * stride_w + cols[None, :], mask=rmask[:, None] & jmask[None, :],
                    other=0.0)
        acc += w.to(tl.float32) * xn[None, :]
    out = tl.sum(acc, axis=1).to(dt).to(tl.float32) + tl.load(h_ptr + rows, mask=rmask, other=0.0).to(tl.float32)
    tl.store(h_ptr + rows, out.to(dt), mask=rmask)


@triton.jit
def _conv_silu(zx_ptr, ring_ptr, cw_ptr, cb_ptr, c, cmask, wmask, pos, inner, KC: tl.constexpr):
    """The causal conv of channels c at `pos` over the ring of past inputs; stores the new inputs under `wmask`."""
    new = tl.load(zx_ptr + inner + c, mask=cmask, other=0.0)
    acc = tl.load(cb_ptr + c, mask=cmask, other=0.0).to(tl.float32)
    acc += tl.load(cw_ptr + c * KC + (KC - 1), mask=cmask, other=0.0).to(tl.float32) * new.to(tl.float32)
    for j in tl.static_range(KC - 1):
        old = tl.load(ring_ptr + c * KC + (pos + 1 + j) % KC, mask=cmask, other=0.0).to(tl.float32)
        acc += tl.load(cw_ptr + c * KC + j, mask=cmask, other=0.0).to(tl.float32) * old
    # Only slot pos % KC is written, and no program reads it: the others read the older slots.
    tl.store(ring_ptr + c * KC + pos % KC, new, mask=wmask)
    return acc * tl.sigmoid(acc)


@triton.jit
def _mamba_kernel(zx_ptr, ring_ptr, ssm_ptr, cw_ptr, cb_ptr, dtb_ptr, alog_ptr, d_ptr, pos_ptr, y_ptr,
                  inner, conv_dim, GN, HPG, P, N,
                  KC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_S: tl.constexpr):
    h = tl.program_id(0)
    pb = tl.program_id(1)
    g = h // HPG
    pos = tl.load(pos_ptr)
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < P
    n = tl.arange(0, BLOCK_S)
    nmask = n < N
    x = _conv_silu(zx_ptr, ring_ptr, cw_ptr, cb_ptr, h * P + p, pmask, pmask, pos, inner, KC)
    # the one program of the group that stores B's and C's inputs (a vector test: Triton's interpreter
    # cannot combine a scalar condition with a vector mask)
    lead_mask = nmask & ((n * 0 + h % HPG + pb) == 0)
    b = _conv_silu(zx_ptr, ring_ptr, cw_ptr, cb_ptr, inner + g * N + n, nmask, lead_mask, pos, inner, KC)
    c = _conv_silu(zx_ptr, ring_ptr, cw_ptr, cb_ptr, inner + GN + g * N + n, nmask, lead_mask, pos, inner, KC)
    dt = tl.load(zx_ptr + inner + conv_dim + h).to(tl.float32) + tl.load(dtb_ptr + h).to(tl.float32)
    dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(dt)))  # softplus, torch's threshold
    decay = tl.exp(dt * -tl.exp(tl.load(alog_ptr + h).to(tl.float32)))
    offs = h * P * N + p[:, None] * N + n[None, :]
    smask = pmask[:, None] & nmask[None, :]
    s = tl.load(ssm_ptr + offs, mask=smask, other=0.0)
    s = s * decay + (dt * x)[:, None] * b[None, :]
    tl.store(ssm_ptr + offs, s, mask=smask)
    out = tl.sum(s * c[None, :], axis=1) + tl.load(d_ptr + h).to(tl.float32) * x
    tl.store(y_ptr + h * P + p, out, mask=pmask)


@triton.jit
def _attn_partial_kernel(q_ptr, k_ptr, v_ptr, pos_ptr, acc_ptr, ml_ptr, stride_kh, n_heads, scale, GQ,
                         D: tl.constexpr, BLOCK_G: tl.constexpr, CHUNK: tl.constexpr, BLOCK_T: tl.constexpr):
    kvh = tl.program_id(0)
    chunk = tl.program_id(1)
    length = tl.load(pos_ptr) + 1
    start = chunk * CHUNK
    if start < length:
        gi = tl.arange(0, BLOCK_G)
        gmask = gi < GQ
        d = tl.arange(0, D)
        heads = kvh * GQ + gi
        q = tl.load(q_ptr + heads[:, None] * D + d[None, :], mask=gmask[:, None], other=0.0)
        m = tl.full([BLOCK_G], float("-inf"), tl.float32)
        lsum = tl.zeros([BLOCK_G], dtype=tl.float32)
        acc = tl.zeros([BLOCK_G, D], dtype=tl.float32)
        end = tl.minimum(start + CHUNK, length)
        base = kvh * stride_kh
        for t0 in range(start, end, BLOCK_T):
            t = t0 + tl.arange(0, BLOCK_T)
            tmask = t < end
            k = tl.load(k_ptr + base + t[:, None] * D + d[None, :], mask=tmask[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k)) * scale
            s = tl.where(tmask[None, :], s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, axis=1))
            p = tl.exp(s - m_new[:, None])
            alpha = tl.exp(m - m_new)
            lsum = lsum * alpha + tl.sum(p, axis=1)
            v = tl.load(v_ptr + base + t[:, None] * D + d[None, :], mask=tmask[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m = m_new
        row = chunk * n_heads + heads
        tl.store(acc_ptr + row[:, None] * D + d[None, :], acc, mask=gmask[:, None])
        tl.store(ml_ptr + row * 2, m, mask=gmask)
        tl.store(ml_ptr + row * 2 + 1, lsum, mask=gmask)


@triton.jit
def _attn_reduce_kernel(acc_ptr, ml_ptr, pos_ptr, out_ptr, n_heads, D: tl.constexpr, CHUNK: tl.constexpr):
    head = tl.program_id(0)
    n_chunks = (tl.load(pos_ptr) + CHUNK) // CHUNK  # chunks holding positions 0..pos
    d = tl.arange(0, D)
    m = tl.full([D], float("-inf"), tl.float32)
    lsum = tl.zeros([D], dtype=tl.float32)
    acc = tl.zeros([D], dtype=tl.float32)
    for c in range(0, n_chunks):
        row = c * n_heads + head
        mc = tl.load(ml_ptr + row * 2)
        lc = tl.load(ml_ptr + row * 2 + 1)
        m_new = tl.maximum(m, mc)
        old = tl.exp(m - m_new)
        new = tl.exp(mc - m_new)
        lsum = lsum * old + lc * new
        acc = acc * old + tl.load(acc_ptr + row * D + d) * new
        m = m_new
    tl.store(out_ptr + head * D + d, (acc / lsum).to(out_ptr.dtype.element_ty))


@triton.jit
def _route_kernel(logit_ptr, bias_ptr, idx_ptr, w_ptr, E, scale,
                  TOPK: tl.constexpr, NORM: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr):
    e = tl.arange(0, BLOCK_E)
    emask = e < E
    scores = tl.sigmoid(tl.load(logit_ptr + e, mask=emask, other=0.0))
    choice = tl.where(emask, scores + tl.load(bias_ptr + e, mask=emask, other=0.0).to(tl.float32), float("-inf"))
    ks = tl.arange(0, BLOCK_K)
    chosen = tl.zeros([BLOCK_K], dtype=tl.int32)
    weights = tl.zeros([BLOCK_K], dtype=tl.float32)
    for i in tl.static_range(TOPK):
        best = tl.argmax(choice, axis=0)
        chosen = tl.where(ks == i, best, chosen)
        weights = tl.where(ks == i, tl.sum(tl.where(e == best, scores, 0.0), axis=0), weights)
        choice = tl.where(e == best, float("-inf"), choice)
    if NORM:
        weights = weights / (tl.sum(weights, axis=0) + 1e-20)
    tl.store(idx_ptr + ks, chosen.to(tl.int64), mask=ks < TOPK)
    tl.store(w_ptr + ks, weights * scale, mask=ks < TOPK)


@triton.jit
def _experts_up_kernel(x_ptr, nw_ptr, up_ptr, shared_ptr, idx_ptr, out_ptr, K, F, stride_e, stride_f, stride_s, eps,
                       TOPK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_X: tl.constexpr):
    slot = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < F
    rstd = _rstd(x_ptr, K, eps, BLOCK_X)
    if slot < TOPK:
        expert = tl.load(idx_ptr + slot)
        y = _rows_dot(x_ptr, nw_ptr, rstd, up_ptr + expert * stride_e, stride_f, rows, rmask, K, True,
                      BLOCK_N, BLOCK_K)
    else:
        y = _rows_dot(x_ptr, nw_ptr, rstd, shared_ptr + (slot - TOPK) * F * stride_s, stride_s, rows, rmask, K,
                      True, BLOCK_N, BLOCK_K)
    dt = out_ptr.dtype.element_ty
    a = tl.maximum(y.to(dt).to(tl.float32), 0.0)
    tl.store(out_ptr + slot * F + rows, (a * a).to(dt), mask=rmask)


@triton.jit
def _experts_down_kernel(up_ptr, down_ptr, shared_ptr, idx_ptr, w_ptr, h_ptr, H, F, stride_e, stride_h, stride_s,
                         TOPK: tl.constexpr, SLOTS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < H
    dt = h_ptr.dtype.element_ty
    routed = tl.zeros([BLOCK_N], dtype=tl.float32)
    for i in tl.static_range(TOPK):
        expert = tl.load(idx_ptr + i)
        part = _rows_dot(up_ptr + i * F, up_ptr, 1.0, down_ptr + expert * stride_e, stride_h, rows, rmask, F, False,
                         BLOCK_N, BLOCK_K)
        routed += tl.load(w_ptr + i) * part.to(dt).to(tl.float32)
    shared = tl.zeros([BLOCK_N], dtype=tl.float32)
    for j in tl.static_range(SLOTS):
        shared += _rows_dot(up_ptr + (TOPK + j) * F, up_ptr, 1.0, shared_ptr + j * F, stride_s, rows, rmask, F,
                            False, BLOCK_N, BLOCK_K)
    out = (routed.to(dt).to(tl.float32) + shared.to(dt).to(tl.float32)).to(dt).to(tl.float32)
    h = tl.load(h_ptr + rows, mask=rmask, other=0.0).to(tl.float32)
    tl.store(h_ptr + rows, (h + out).to(dt), mask=rmask)


@triton.jit
def _experts_down_part_kernel(up_ptr, down_ptr, shared_ptr, idx_ptr, part_ptr, H, F, stride_e, stride_h, stride_s,
                              TOPK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """One slot's down rows (a chosen expert, or a slice of the shared expert) into part[slot] in float32."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    slot = tl.program_id(1)
    rmask = rows < H
    if slot < TOPK:
        expert = tl.load(idx_ptr + slot)
        part = _rows_dot(up_ptr + slot * F, up_ptr, 1.0, down_ptr + expert * stride_e, stride_h, rows, rmask, F,
                         False, BLOCK_N, BLOCK_K)
    else:
        part = _rows_dot(up_ptr + slot * F, up_ptr, 1.0, shared_ptr + (slot - TOPK) * F, stride_s, rows, rmask, F,
                         False, BLOCK_N, BLOCK_K)
    tl.store(part_ptr + slot * H + rows, part, mask=rmask)


@triton.jit
def _experts_down_finish_kernel(part_ptr, w_ptr, h_ptr, H, TOPK: tl.constexpr, SLOTS: tl.constexpr,
                                BLOCK: tl.constexpr):
    """h += the weighted routed parts + the shared parts, with _experts_down_kernel's roundings."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    rmask = rows < H
    dt = h_ptr.dtype.element_ty
    routed = tl.zeros([BLOCK], dtype=tl.float32)
    for i in tl.static_range(TOPK):
        part = tl.load(part_ptr + i * H + rows, mask=rmask, other=0.0)
        routed += tl.load(w_ptr + i) * part.to(dt).to(tl.float32)
    shared = tl.zeros([BLOCK], dtype=tl.float32)
    for j in tl.static_range(SLOTS):
        shared += tl.load(part_ptr + (TOPK + j) * H + rows, mask=rmask, other=0.0)
    out = (routed.to(dt).to(tl.float32) + shared.to(dt).to(tl.float32)).to(dt).to(tl.float32)
    h = tl.load(h_ptr + rows, mask=rmask, other=0.0).to(tl.float32)
    tl.store(h_ptr + rows, (h + out).to(dt), mask=rmask)


@triton.jit
def _gate_norm_kernel(y_ptr, z_ptr, nw_ptr, out_ptr, eps, GS, BLOCK_G: tl.constexpr):
    """One group of NemotronHRMSNormGated: out = weight * rmsnorm(y * silu(z)) in the model dtype."""
    g = tl.program_id(0)
    j = tl.arange(0, BLOCK_G)
    jmask = j < GS
    cols = g * GS + j
    dt = out_ptr.dtype.element_ty
    zv = tl.load(z_ptr + cols, mask=jmask, other=0.0).to(tl.float32)
    gv = tl.load(y_ptr + cols, mask=jmask, other=0.0) * (zv * tl.sigmoid(zv))
    rstd = 1.0 / tl.sqrt(tl.sum(gv * gv, axis=0) / GS + eps)
    nw = tl.load(nw_ptr + cols, mask=jmask, other=0.0).to(tl.float32)
    tl.store(out_ptr + cols, (nw * (gv * rstd).to(dt).to(tl.float32)).to(dt), mask=jmask)


@dataclass(frozen=True)
class Tile:
    """One launch configuration: rows per program, columns per loop step, warps."""

    block_n: int
    block_k: int
    warps: int = 4


#: Per call site, the fastest of tests/gpu/fast_h200.py's sweep on one H200 (2026-12-01, run 2: time for
#: all of a step's calls of that site inside a CUDA graph, weights rotating through the layers):
DEFAULT_TILES: dict[str, Tile] = {
    "in_proj": Tile(4, 512),  # 23 calls 456 us, 2.80 TB/s (8x256: 466 us; cuBLAS, no norm: 385 us)
    "router": Tile(2, 4096, 8),  # 23 calls 61 us (2x512: 95 us): latency, not bytes
    "lm_head": Tile(4, 512),  # 184 us, 3.82 TB/s (8x256: 198 us; cuBLAS, no norm: 164 us)
    "qkv": Tile(4, 1024),  # 6 calls 65 us, 2.28 TB/s (8x256: 95 us)
    "o_proj": Tile(2, 1024),  # 6 calls 49 us, 2.70 TB/s (4x512: 57 us)
    "out_proj": Tile(2, 1024),  # split: 23 calls 230 us, 2.21 TB/s (fused 4 rows: 325 us)
    "up": Tile(4, 512),  # 23 calls 618 us, 2.97 TB/s (8x256: 728 us)
    "down": Tile(2, 2048),  # fused: 23 calls 681 us, 2.70 TB/s (split 2x2048: 684 us; run 1's 8x512: 925 us)
}

#: Per call site that has two forms, the faster on the same run.
DEFAULT_VARIANTS: dict[str, str] = {"down": "fused", "out_proj": "split"}


def _pow2(n: int) -> int:
    return int(triton.next_power_of_2(max(1, n)))


class TritonOps:
    name = "triton"

    def __init__(self, torch: Any, shapes: ModelShapes, n_ctx: int, device: Any, dtype: Any = None,
                 tiles: dict[str, Tile] | None = None) -> None:
        self.torch = torch
        self.shapes = shapes
        self.tiles = dict(DEFAULT_TILES, **(tiles or {}))
        chunks = triton.cdiv(n_ctx, ATTN_CHUNK)
        self.part_acc = torch.zeros((chunks, shapes.q_heads, shapes.head_dim), dtype=torch.float32, device=device)
        self.part_ml = torch.zeros((chunks, shapes.q_heads, 2), dtype=torch.float32, device=device)
        self._block_x = _pow2(shapes.hidden)
        #: "fused" (one kernel per call site) or "split" (down: one program per slot and row block, then
        #: a small kernel that adds the parts; out_proj: the gated norm once, then a plain GEMV).
        self.variants = dict(DEFAULT_VARIANTS)
        self.down_parts = torch.zeros((shapes.top_k + shapes.n_shared_slots, shapes.hidden), dtype=torch.float32,
                                      device=device)
        self.gated = torch.zeros(shapes.inner, dtype=dtype or torch.float32, device=device)

    def _grid(self, n: int, site: str) -> tuple[int]:
        return (triton.cdiv(n, self.tiles[site].block_n),)

    def embed(self, table: Any, token: Any, h: Any) -> None:
        self.torch.index_select(table, 0, token, out=h.view(1, -1))

    def rms_gemv(self, h: Any, norm_w: Any, eps: float, weight: Any, out: Any) -> None:
        n, k = weight.shape
        site = "lm_head" if n == self.shapes.vocab else "router" if n == self.shapes.n_experts else "in_proj"
        t = self.tiles[site]
        _gemv_kernel[self._grid(n, site)](h, norm_w, weight, out, n, k, weight.stride(0), eps, NORM=True,
                                          RESIDUAL=False, BLOCK_N=t.block_n, BLOCK_K=t.block_k,
                                          BLOCK_X=self._block_x, num_warps=t.warps)

    def qkv_gemv(self, h: Any, norm_w: Any, eps: float, weight: Any, q: Any, keys: Any, values: Any,
                 pos: Any) -> None:
        n, k = weight.shape
        kv_heads, _, d = keys.shape
        t = self.tiles["qkv"]
        _qkv_kernel[self._grid(n, "qkv")](h, norm_w, weight, q, keys, values, pos, n, k, weight.stride(0), eps,
                                          q.numel(), kv_heads * d, d, keys.stride(0), BLOCK_N=t.block_n,
                                          BLOCK_K=t.block_k, BLOCK_X=self._block_x, num_warps=t.warps)

    def attention(self, q: Any, keys: Any, values: Any, pos: Any, out: Any) -> None:
        kv_heads, _, d = keys.shape
        heads = q.numel() // d
        group = heads // kv_heads
        chunks = self.part_acc.shape[0]
        _attn_partial_kernel[(kv_heads, chunks)](q, keys, values, pos, self.part_acc, self.part_ml, keys.stride(0),
                                                 heads, d ** -0.5, group, D=d, BLOCK_G=max(16, _pow2(group)),
                                                 CHUNK=ATTN_CHUNK, BLOCK_T=64, num_warps=4)
        _attn_reduce_kernel[(heads,)](self.part_acc, self.part_ml, pos, out, heads, D=d, CHUNK=ATTN_CHUNK,
                                      num_warps=1)

    def mamba_mix(self, zxbcdt: Any, conv: Any, ssm: Any, w: MambaWeights, shapes: ModelShapes, pos: Any,
                  y: Any) -> None:
        block_p = min(16, _pow2(shapes.mamba_head_dim))
        grid = (shapes.mamba_heads, triton.cdiv(shapes.mamba_head_dim, block_p))
        _mamba_kernel[grid](zxbcdt, conv, ssm, w.conv_w, w.conv_b, w.dt_bias, w.a_log, w.d, pos, y, shapes.inner,
                            shapes.conv_dim, shapes.n_groups * shapes.ssm_state, shapes.mamba_heads // shapes.n_groups,
                            shapes.mamba_head_dim, shapes.ssm_state, KC=shapes.conv_kernel, BLOCK_P=block_p,
                            BLOCK_S=_pow2(shapes.ssm_state), num_warps=4)

    def gated_gemv_residual(self, y: Any, z: Any, norm_w: Any, eps: float, groups: int, weight: Any,
                            h: Any) -> None:
        n, k = weight.shape
        t = self.tiles["out_proj"]
        if self.variants["out_proj"] == "split":
            gated = self.gated
            _gate_norm_kernel[(groups,)](y, z, norm_w, gated, eps, k // groups, BLOCK_G=_pow2(k // groups),
                                         num_warps=4)
            _gemv_kernel[self._grid(n, "out_proj")](gated, gated, weight, h, n, k, weight.stride(0), 0.0, NORM=False,
                                                    RESIDUAL=True, BLOCK_N=t.block_n, BLOCK_K=t.block_k or 512,
                                                    BLOCK_X=16, num_warps=t.warps)
            return
        _gated_gemv_kernel[self._grid(n, "out_proj")](y, z, norm_w, weight, h, n, weight.stride(0), eps, groups,
                                                      k // groups, BLOCK_N=t.block_n, BLOCK_G=_pow2(k // groups),
                                                      num_warps=t.warps)

    def gemv_residual(self, x: Any, weight: Any, h: Any) -> None:
        n, k = weight.shape
        t = self.tiles["o_proj"]
        _gemv_kernel[self._grid(n, "o_proj")](x, x, weight, h, n, k, weight.stride(0), 0.0, NORM=False,
                                              RESIDUAL=True, BLOCK_N=t.block_n, BLOCK_K=t.block_k, BLOCK_X=16,
                                              num_warps=t.warps)

    def route(self, logits: Any, bias: Any, shapes: ModelShapes, idx: Any, weights: Any) -> None:
        _route_kernel[(1,)](logits, bias, idx, weights, shapes.n_experts, shapes.routed_scale, TOPK=shapes.top_k,
                            NORM=shapes.norm_topk, BLOCK_E=_pow2(shapes.n_experts), BLOCK_K=_pow2(shapes.top_k),
                            num_warps=4)

    def experts_up(self, h: Any, norm_w: Any, eps: float, w: MoEWeights, shapes: ModelShapes, idx: Any,
                   up: Any) -> None:
        t = self.tiles["up"]
        grid = (shapes.top_k + shapes.n_shared_slots, triton.cdiv(shapes.expert_ff, t.block_n))
        _experts_up_kernel[grid](h, norm_w, w.up, w.shared_up, idx, up, shapes.hidden, shapes.expert_ff,
                                 w.up.stride(0), w.up.stride(1), w.shared_up.stride(0), eps, TOPK=shapes.top_k,
                                 BLOCK_N=t.block_n, BLOCK_K=t.block_k, BLOCK_X=self._block_x, num_warps=t.warps)

    def experts_down(self, up: Any, w: MoEWeights, shapes: ModelShapes, idx: Any, weights: Any, h: Any) -> None:
        t = self.tiles["down"]
        if self.variants["down"] == "split":
            slots = shapes.top_k + shapes.n_shared_slots
            grid = (triton.cdiv(shapes.hidden, t.block_n), slots)
            _experts_down_part_kernel[grid](up, w.down, w.shared_down, idx, self.down_parts, shapes.hidden,
                                            shapes.expert_ff, w.down.stride(0), w.down.stride(1),
                                            w.shared_down.stride(0), TOPK=shapes.top_k, BLOCK_N=t.block_n,
                                            BLOCK_K=t.block_k, num_warps=t.warps)
            _experts_down_finish_kernel[(triton.cdiv(shapes.hidden, 1024),)](
                self.down_parts, weights, h, shapes.hidden, TOPK=shapes.top_k, SLOTS=shapes.n_shared_slots,
                BLOCK=1024, num_warps=4)
            return
        _experts_down_kernel[self._grid(shapes.hidden, "down")](
            up, w.down, w.shared_down, idx, weights, h, shapes.hidden, shapes.expert_ff, w.down.stride(0),
            w.down.stride(1), w.shared_down.stride(0), TOPK=shapes.top_k, SLOTS=shapes.n_shared_slots,
            BLOCK_N=t.block_n, BLOCK_K=t.block_k, num_warps=t.warps)

    def argmax(self, logits: Any, out: Any) -> None:
        out.copy_(self.torch.argmax(logits).view(1))
