"""The decode step's fused operations in plain torch: each Triton kernel's reference.

`TorchOps` has one method per kernel of `kernels.TritonOps`, with the same arguments and the same
roundings (results rounded to the model dtype where transformers rounds them), so the step can run
with either. On the CPU it is the step the tests compare with transformers; on the GPU it is what
each kernel is checked against. Every method is written without reading a device value on the host
(positions stay tensors), so the step stays capturable in a CUDA graph with these ops too.
"""

from __future__ import annotations

from typing import Any

from engine.backends.torch.fast.shapes import ModelShapes
from engine.backends.torch.fast.weights import MambaWeights, MoEWeights


def rms_norm(torch: Any, h: Any, weight: Any, eps: float) -> Any:
    """NemotronHRMSNorm: normalise in float32, scale by the weight in float32, round to h's dtype."""
    x = h.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return (weight.float() * x).to(h.dtype)


class TorchOps:
    name = "torch"

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.F = torch.nn.functional

    def embed(self, table: Any, token: Any, h: Any) -> None:
        h.copy_(table.index_select(0, token).view(-1))

    def rms_gemv(self, h: Any, norm_w: Any, eps: float, weight: Any, out: Any) -> None:
        """out = weight @ rmsnorm(h), computed in out's dtype (float32 for the router, as transformers)."""
        x = rms_norm(self.torch, h, norm_w, eps)
        out.copy_(self.F.linear(x.to(out.dtype), weight.to(out.dtype)))

    def qkv_gemv(self, h: Any, norm_w: Any, eps: float, weight: Any, q: Any, keys: Any, values: Any,
                 pos: Any) -> None:
        """q, k, v of one token; k and v go straight into the cache at `pos` (keys: [kv_heads, n_ctx, d])."""
        qkv = self.F.linear(rms_norm(self.torch, h, norm_w, eps), weight)
        kv_heads, _, d = keys.shape
        nq, nkv = q.numel(), kv_heads * d
        q.copy_(qkv[:nq])
        keys.index_copy_(1, pos, qkv[nq:nq + nkv].view(kv_heads, 1, d))
        values.index_copy_(1, pos, qkv[nq + nkv:].view(kv_heads, 1, d))

    def attention(self, q: Any, keys: Any, values: Any, pos: Any, out: Any) -> None:
        """Softmax attention of one query over the cache up to and including `pos` (GQA, no RoPE)."""
        torch = self.torch
        kv_heads, n_ctx, d = keys.shape
        qh = q.view(kv_heads, -1, d).float()
        scores = torch.einsum("kgd,knd->kgn", qh, keys.float()) * d ** -0.5
        later = torch.arange(n_ctx, device=keys.device) > pos
        probs = torch.softmax(scores.masked_fill(later, float("-inf")), dim=-1)
        out.copy_(torch.einsum("kgn,knd->kgd", probs, values.float()).reshape(-1))

    def mamba_mix(self, zxbcdt: Any, conv: Any, ssm: Any, w: MambaWeights, shapes: ModelShapes, pos: Any,
                  y: Any) -> None:
        """Conv update (ring of inputs), SiLU, and the selective-state update of one token; y in float32."""
        torch, F = self.torch, self.F
        inner, cd, kc = shapes.inner, shapes.conv_dim, shapes.conv_kernel
        heads, groups, n = shapes.mamba_heads, shapes.n_groups, shapes.ssm_state
        conv.index_copy_(1, torch.remainder(pos, kc), zxbcdt[inner:inner + cd].view(cd, 1))
        slots = torch.remainder(pos + 1 + torch.arange(kc, device=conv.device), kc)  # positions pos-kc+1..pos
        window = conv.index_select(1, slots).float()
        xbc = F.silu((window * w.conv_w.float()).sum(-1) + w.conv_b.float())
        x, b, c = torch.split(xbc, [inner, groups * n, groups * n])
        x = x.view(heads, -1)
        b = b.view(groups, n).repeat_interleave(heads // groups, dim=0)
        c = c.view(groups, n).repeat_interleave(heads // groups, dim=0)
        dt = F.softplus(zxbcdt[inner + cd:].float() + w.dt_bias.float())
        decay = torch.exp(dt * -torch.exp(w.a_log.float()))
        state = ssm * decay[:, None, None] + (dt[:, None] * x)[:, :, None] * b[:, None, :]
        ssm.copy_(state)
        y.copy_(((state * c[:, None, :]).sum(-1) + w.d.float()[:, None] * x).reshape(-1))

    def gated_gemv_residual(self, y: Any, z: Any, norm_w: Any, eps: float, groups: int, weight: Any,
                            h: Any) -> None:
        """h += out_proj(gated group RMSNorm(y, z)), as NemotronHRMSNormGated then the projection."""
        torch = self.torch
        g = (y.float() * self.F.silu(z.float())).view(groups, -1)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + eps)
        normed = norm_w * g.view(-1).to(h.dtype)
        h.copy_(h + self.F.linear(normed, weight))

    def gemv_residual(self, x: Any, weight: Any, h: Any) -> None:
        h.copy_(h + self.F.linear(x, weight))

    def route(self, logits: Any, bias: Any, shapes: ModelShapes, idx: Any, weights: Any) -> None:
        """NemotronHTopkRouter after its GEMV: sigmoid, bias for the choice, top-k, renormalise, scale."""
        scores = logits.sigmoid()
        top = self.torch.topk(scores + bias.float(), shapes.top_k).indices
        chosen = scores.gather(0, top)
        if shapes.norm_topk:
            chosen = chosen / (chosen.sum() + 1e-20)
        idx.copy_(top)
        weights.copy_(chosen * shapes.routed_scale)

    def experts_up(self, h: Any, norm_w: Any, eps: float, w: MoEWeights, shapes: ModelShapes, idx: Any,
                   up: Any) -> None:
        """relu(W_up x)^2 for the chosen experts, then the shared expert's slices: up is [top_k + slots, ff]."""
        x = rms_norm(self.torch, h, norm_w, eps)
        routed = self.torch.einsum("kfh,h->kf", w.up.index_select(0, idx), x)
        shared = self.F.linear(x, w.shared_up).view(shapes.n_shared_slots, shapes.expert_ff)
        up.copy_(self.torch.relu(self.torch.cat([routed, shared])).square())

    def experts_down(self, up: Any, w: MoEWeights, shapes: ModelShapes, idx: Any, weights: Any, h: Any) -> None:
        """h += sum_k weight_k * W_down[e_k] up_k (in float32, as transformers) + the shared expert."""
        k = shapes.top_k
        parts = self.torch.einsum("khf,kf->kh", w.down.index_select(0, idx), up[:k])
        routed = (parts.float() * weights[:, None]).sum(0)
        shared = self.F.linear(up[k:].reshape(-1), w.shared_down)
        h.copy_(h + (routed.to(h.dtype) + shared))

    def argmax(self, logits: Any, out: Any) -> None:
        out.copy_(self.torch.argmax(logits).view(1))
