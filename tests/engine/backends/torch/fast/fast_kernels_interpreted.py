"""Each Triton kernel of the fast decode path against its torch reference, under Triton's interpreter.

Run by tests/engine/backends/torch/fast/test_fast_kernels.py in a process of its own with TRITON_INTERPRET=1
(Triton reads it when the kernels are defined): the kernels then run on CPU tensors. Shapes are small and
deliberately not powers of two, so every mask is exercised; positions cross the conv ring's wrap and
the attention kernel's split into chunks. Optional argument: a tiny Nemotron-H folder, whose whole
decode step then runs with the kernels against transformers for 12 greedy steps.

    TRITON_INTERPRET=1 python -m tests.engine.backends.torch.fast.fast_kernels_interpreted [HF_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from engine.backends.torch.fast.kernels import ATTN_CHUNK, TritonOps
from engine.backends.torch.fast.reference import TorchOps
from engine.backends.torch.fast.shapes import ModelShapes
from engine.backends.torch.fast.weights import MambaWeights, MoEWeights

TOL = 1e-5
SHAPES = ModelShapes(kinds=("mamba", "moe", "attention"), hidden=96, vocab=300, eps=1e-5, mamba_heads=8,
                     mamba_head_dim=16, n_groups=2, ssm_state=16, conv_kernel=4, time_step_min=1e-3, q_heads=4,
                     kv_heads=2, head_dim=16, n_experts=8, top_k=2, expert_ff=48, shared_ff=96, routed_scale=2.5,
                     norm_topk=True)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    assert torch.isfinite(a).all(), "an output element was not written"
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check(name: str, ours: torch.Tensor, want: torch.Tensor) -> None:
    err = rel(ours, want)
    assert err < TOL, f"{name}: relative error {err:.2e}"
    print(f"ok {name} {err:.1e}")


def nan_like(t: torch.Tensor) -> torch.Tensor:
    return torch.full_like(t, float("nan"))


def kernels() -> None:
    torch.manual_seed(0)
    sh, n_ctx = SHAPES, 2 * ATTN_CHUNK + 88
    ref, tri = TorchOps(torch), TritonOps(torch, sh, n_ctx, "cpu")

    def r(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape) * scale

    h, nw = r(sh.hidden), 1 + r(sh.hidden, scale=0.1)
    w_in = r(sh.in_proj_rows, sh.hidden, scale=0.1)
    want, ours = torch.empty(sh.in_proj_rows), torch.full((sh.in_proj_rows,), float("nan"))
    ref.rms_gemv(h, nw, sh.eps, w_in, want)
    tri.rms_gemv(h, nw, sh.eps, w_in, ours)
    check("rms_gemv", ours, want)

    w_qkv = r((sh.q_heads + 2 * sh.kv_heads) * sh.head_dim, sh.hidden, scale=0.1)
    for p in (0, 5, ATTN_CHUNK, n_ctx - 1):
        pos = torch.tensor([p])
        k1, v1 = r(sh.kv_heads, n_ctx, sh.head_dim), r(sh.kv_heads, n_ctx, sh.head_dim)
        k2, v2 = k1.clone(), v1.clone()
        q1 = torch.empty(sh.q_heads * sh.head_dim)
        q2 = nan_like(q1)
        ref.qkv_gemv(h, nw, sh.eps, w_qkv, q1, k1, v1, pos)
        tri.qkv_gemv(h, nw, sh.eps, w_qkv, q2, k2, v2, pos)
        check(f"qkv_gemv q @{p}", q2, q1)
        check(f"qkv_gemv k, v @{p}", torch.cat([k2, v2]), torch.cat([k1, v1]))
        a1 = torch.empty_like(q1)
        a2 = nan_like(a1)
        ref.attention(q1, k1, v1, pos, a1)
        tri.attention(q1, k1, v1, pos, a2)
        check(f"attention @{p}", a2, a1)

    mw = MambaWeights(nw, w_in, r(sh.conv_dim, sh.conv_kernel, scale=0.5), r(sh.conv_dim, scale=0.1),
                      r(sh.mamba_heads, scale=0.5), torch.log(torch.rand(sh.mamba_heads) * 15 + 1),
                      1 + r(sh.mamba_heads, scale=0.1), 1 + r(sh.inner, scale=0.1), r(sh.hidden, sh.inner, scale=0.1))
    ring1, ssm1 = r(sh.conv_dim, sh.conv_kernel), r(sh.mamba_heads, sh.mamba_head_dim, sh.ssm_state)
    ring2, ssm2 = ring1.clone(), ssm1.clone()
    for p in (0, 1, 2, 3, 4, 9):
        zx, pos = r(sh.in_proj_rows), torch.tensor([p])
        y1 = torch.empty(sh.inner)
        y2 = nan_like(y1)
        ref.mamba_mix(zx, ring1, ssm1, mw, sh, pos, y1)
        tri.mamba_mix(zx, ring2, ssm2, mw, sh, pos, y2)
        check(f"mamba_mix y @{p}", y2, y1)
        check(f"mamba_mix state @{p}", ssm2, ssm1)
        check(f"mamba_mix conv ring @{p}", ring2, ring1)
        h1, h2 = h.clone(), h.clone()
        ref.gated_gemv_residual(y1, zx[:sh.inner], mw.gate_norm, sh.eps, sh.n_groups, mw.out_proj, h1)
        tri.gated_gemv_residual(y1, zx[:sh.inner], mw.gate_norm, sh.eps, sh.n_groups, mw.out_proj, h2)
        check(f"gated_gemv_residual @{p}", h2 - h, h1 - h)
        tri.variants["out_proj"] = "split"
        h3 = h.clone()
        tri.gated_gemv_residual(y1, zx[:sh.inner], mw.gate_norm, sh.eps, sh.n_groups, mw.out_proj, h3)
        tri.variants["out_proj"] = "fused"
        check(f"gated_gemv_residual, split @{p}", h3 - h, h1 - h)

    x, w_o = r(sh.q_heads * sh.head_dim), r(sh.hidden, sh.q_heads * sh.head_dim, scale=0.1)
    h1, h2 = h.clone(), h.clone()
    ref.gemv_residual(x, w_o, h1)
    tri.gemv_residual(x, w_o, h2)
    check("gemv_residual", h2 - h, h1 - h)

    ew = MoEWeights(nw, r(sh.n_experts, sh.hidden), r(sh.n_experts, scale=0.05),
                    r(sh.n_experts, sh.expert_ff, sh.hidden, scale=0.1),
                    r(sh.n_experts, sh.hidden, sh.expert_ff, scale=0.1),
                    r(sh.shared_ff, sh.hidden, scale=0.1), r(sh.hidden, sh.shared_ff, scale=0.1))
    lg1, lg2 = torch.empty(sh.n_experts), torch.full((sh.n_experts,), float("nan"))
    ref.rms_gemv(h, nw, sh.eps, ew.router, lg1)
    tri.rms_gemv(h, nw, sh.eps, ew.router, lg2)
    check("router", lg2, lg1)
    i1, w1 = torch.empty(sh.top_k, dtype=torch.long), torch.empty(sh.top_k)
    i2, w2 = i1.clone(), nan_like(w1)
    ref.route(lg1, ew.router_bias, sh, i1, w1)
    tri.route(lg1, ew.router_bias, sh, i2, w2)
    assert sorted(i1.tolist()) == sorted(i2.tolist()), (i1, i2)
    check("route weights", w2[i2.argsort()], w1[i1.argsort()])
    u1 = torch.empty(sh.top_k + sh.n_shared_slots, sh.expert_ff)
    u2 = nan_like(u1)
    ref.experts_up(h, nw, sh.eps, ew, sh, i1, u1)
    tri.experts_up(h, nw, sh.eps, ew, sh, i1, u2)
    check("experts_up", u2, u1)
    h1, h2 = h.clone(), h.clone()
    ref.experts_down(u1, ew, sh, i1, w1, h1)
    tri.experts_down(u1, ew, sh, i1, w1, h2)
    check("experts_down", h2 - h, h1 - h)
    tri.variants["down"] = "split"
    h3 = h.clone()
    tri.experts_down(u1, ew, sh, i1, w1, h3)
    check("experts_down, split", h3 - h, h1 - h)


def whole_step(folder: Path) -> None:
    from engine.api import SamplingParams, TorchLoadOptions
    from engine.backends.torch.backend import TorchBackend
    from engine.formats.hf_folder import read_hf_folder

    hf = read_hf_folder(folder)
    fast = TorchBackend(hf, TorchLoadOptions(device="cpu", n_ctx=600, n_threads=1, decode="fast"))
    eager = TorchBackend(hf, TorchLoadOptions(device="cpu", n_ctx=600, n_threads=1, decode="eager"))
    assert fast._fast is not None
    fast._fast.ops = TritonOps(torch, fast._fast.weights.shapes, 600, "cpu")  # the kernels in the step
    prompt = fast.tokenize("The quick brown fox jumps over the lazy dog. " * 30, special=False)[:300]
    assert len(prompt) > ATTN_CHUNK  # decoding crosses into the attention kernel's second chunk
    fast.feed(prompt)
    eager.feed(prompt)
    greedy = SamplingParams(temperature=0.0)
    for _ in range(12):
        token = eager.sample(eager.make_sampler(greedy))
        assert fast.sample(fast.make_sampler(greedy)) == token
        fast.feed([token])
        eager.feed([token])
        diff = float((fast._fast.logits().float() - eager._logits).abs().max())
        assert diff < 1e-4, diff
    print("ok whole step, 12 greedy tokens")


if __name__ == "__main__":
    kernels()
    if len(sys.argv) > 1:
        whole_step(Path(sys.argv[1]))
