"""The loaded transformers model's own weight tensors, laid out per layer for the decode step.

No copy of any weight is made: each field is the module's parameter (or a view of it). The one
change is that an attention layer's q, k and v projections are moved into one [q+k+v, hidden] tensor
and the three modules' weights become views of it, so one GEMV reads all three; the modules (and
so the prefill and the eager path) see the same values as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.backends.torch.fast.shapes import ModelShapes, shapes_from_config


@dataclass(frozen=True)
class MambaWeights:
    norm: Any
    in_proj: Any  # [z | x B C | dt rows, hidden]
    conv_w: Any  # [conv_dim, kernel]
    conv_b: Any  # [conv_dim]
    dt_bias: Any
    a_log: Any
    d: Any
    gate_norm: Any  # [inner]
    out_proj: Any  # [hidden, inner]


@dataclass(frozen=True)
class AttentionWeights:
    norm: Any
    qkv: Any  # [q_heads*d + 2*kv_heads*d, hidden]
    o_proj: Any


@dataclass(frozen=True)
class MoEWeights:
    norm: Any
    router: Any  # [experts, hidden] (float32 or the model dtype)
    router_bias: Any  # [experts] float32
    up: Any  # [experts, ff, hidden]
    down: Any  # [experts, hidden, ff]
    shared_up: Any  # [shared_ff, hidden]
    shared_down: Any  # [hidden, shared_ff]


LayerWeights = MambaWeights | AttentionWeights | MoEWeights


@dataclass(frozen=True)
class ModelWeights:
    shapes: ModelShapes
    embed: Any
    layers: tuple[LayerWeights, ...]
    norm_f: Any
    lm_head: Any


def model_weights(torch: Any, model: Any) -> ModelWeights:
    """Read (and, for attention, fuse in place) the weights of a NemotronHForCausalLM."""
    shapes = shapes_from_config(model.config)
    backbone = model.model
    layers: list[LayerWeights] = []
    for block, kind in zip(backbone.layers, shapes.kinds, strict=True):
        layers.append(_layer(torch, block, kind, shapes))
    return ModelWeights(shapes, backbone.embeddings.weight, tuple(layers), backbone.norm_f.weight,
                        model.lm_head.weight)


def _layer(torch: Any, block: Any, kind: str, shapes: ModelShapes) -> LayerWeights:
    mixer = block.mixer
    if kind == "mamba":
        bias = mixer.conv1d.bias
        if bias is None:
            bias = torch.zeros(shapes.conv_dim, dtype=mixer.conv1d.weight.dtype, device=mixer.conv1d.weight.device)
        return MambaWeights(block.norm.weight, mixer.in_proj.weight, mixer.conv1d.weight.squeeze(1), bias,
                            mixer.dt_bias, mixer.A_log, mixer.D, mixer.norm.weight, mixer.out_proj.weight)
    if kind == "attention":
        return AttentionWeights(block.norm.weight, _fuse_qkv(torch, mixer), mixer.o_proj.weight)
    experts = mixer.experts
    return MoEWeights(block.norm.weight, mixer.gate.weight, mixer.gate.e_score_correction_bias, experts.up_proj,
                      experts.down_proj, mixer.shared_experts.up_proj.weight, mixer.shared_experts.down_proj.weight)


def _fuse_qkv(torch: Any, attention: Any) -> Any:
    projections = (attention.q_proj, attention.k_proj, attention.v_proj)
    with torch.no_grad():
        fused = torch.cat([p.weight.detach() for p in projections], dim=0).contiguous()
        start = 0
        for proj in projections:
            rows = proj.weight.shape[0]
            proj.weight.data = fused[start:start + rows]
            start += rows
    return fused
