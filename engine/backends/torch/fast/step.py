"""One decode step of Nemotron-H, written out: embedding, the three layer kinds, final norm, lm_head, argmax.

The step reads the token and its position from `Workspace.tok_pos` on the device and writes the
logits and the greedy token into the workspace: no host value enters it, so the same Python runs
eagerly (CPU, tests) and is captured once into a CUDA graph (`graph.py`). `ops` is `TorchOps`
(plain torch) or `TritonOps` (the fused kernels); both have the same methods.

Per layer: Mamba = in_proj (norm fused in) -> conv + SSM update -> gated norm + out_proj + residual;
attention = q/k/v (norm fused in, k and v written into the cache) -> attention -> o_proj + residual;
MoE = router -> top-k -> the chosen experts' and the shared expert's up rows -> their down rows,
weighted, + residual.
"""

from __future__ import annotations

from typing import Any

from engine.backends.torch.fast.shapes import ModelShapes
from engine.backends.torch.fast.state import HybridState
from engine.backends.torch.fast.weights import AttentionWeights, MambaWeights, ModelWeights


class Workspace:
    """Every intermediate of the step, allocated once (the graph holds their addresses)."""

    def __init__(self, torch: Any, shapes: ModelShapes, dtype: Any, device: Any) -> None:
        def buf(*shape: int, dt: Any = dtype) -> Any:
            return torch.zeros(shape, dtype=dt, device=device)

        self.tok_pos = buf(2, dt=torch.long)  # the token being fed and its position
        self.token = self.tok_pos[0:1]
        self.pos = self.tok_pos[1:2]
        self.h = buf(shapes.hidden)  # the residual stream
        self.zxbcdt = buf(shapes.in_proj_rows)
        self.y = buf(shapes.inner, dt=torch.float32)
        self.q = buf(shapes.q_heads * shapes.head_dim)
        self.attn = buf(shapes.q_heads * shapes.head_dim)
        self.router = buf(shapes.n_experts, dt=torch.float32)
        self.topk_idx = buf(shapes.top_k, dt=torch.long)
        self.topk_w = buf(shapes.top_k, dt=torch.float32)
        self.up = buf(shapes.top_k + shapes.n_shared_slots, shapes.expert_ff)
        self.logits = buf(shapes.vocab)
        self.next_token = buf(1, dt=torch.long)


def decode_step(ops: Any, m: ModelWeights, s: HybridState, w: Workspace) -> None:
    sh = m.shapes
    ops.embed(m.embed, w.token, w.h)
    for i, layer in enumerate(m.layers):
        if isinstance(layer, MambaWeights):
            j = s.mamba_index[i]
            ops.rms_gemv(w.h, layer.norm, sh.eps, layer.in_proj, w.zxbcdt)
            ops.mamba_mix(w.zxbcdt, s.conv[j], s.ssm[j], layer, sh, w.pos, w.y)
            ops.gated_gemv_residual(w.y, w.zxbcdt[:sh.inner], layer.gate_norm, sh.eps, sh.n_groups,
                                    layer.out_proj, w.h)
        elif isinstance(layer, AttentionWeights):
            j = s.attn_index[i]
            ops.qkv_gemv(w.h, layer.norm, sh.eps, layer.qkv, w.q, s.keys[j], s.values[j], w.pos)
            ops.attention(w.q, s.keys[j], s.values[j], w.pos, w.attn)
            ops.gemv_residual(w.attn, layer.o_proj, w.h)
        else:
            ops.rms_gemv(w.h, layer.norm, sh.eps, layer.router, w.router)
            ops.route(w.router, layer.router_bias, sh, w.topk_idx, w.topk_w)
            ops.experts_up(w.h, layer.norm, sh.eps, layer, sh, w.topk_idx, w.up)
            ops.experts_down(w.up, layer, sh, w.topk_idx, w.topk_w, w.h)
    ops.rms_gemv(w.h, m.norm_f, sh.eps, m.lm_head, w.logits)
    ops.argmax(w.logits, w.next_token)
