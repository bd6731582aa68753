"""The sizes of one Nemotron-H model that the fast decode step is built for, read from its config.

Everything the static state, the workspace and the kernels size themselves by comes from here, so a
config the step cannot run (a layer kind it has no code for, a latent MoE projection, grouped routing)
is recognised in one place, before anything is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: transformers' layer-kind names (config.layers_block_type) mapped to the step's three kinds.
_KINDS = {"linear_attention": "mamba", "mamba": "mamba", "M": "mamba",
          "full_attention": "attention", "attention": "attention", "*": "attention",
          "moe": "moe", "E": "moe"}


@dataclass(frozen=True)
class ModelShapes:
    kinds: tuple[str, ...]  # "mamba", "attention" or "moe" per layer
    hidden: int
    vocab: int
    eps: float
    # Mamba-2
    mamba_heads: int
    mamba_head_dim: int
    n_groups: int
    ssm_state: int
    conv_kernel: int
    time_step_min: float
    # attention
    q_heads: int
    kv_heads: int
    head_dim: int
    # MoE
    n_experts: int
    top_k: int
    expert_ff: int
    shared_ff: int
    routed_scale: float
    norm_topk: bool

    @property
    def inner(self) -> int:
        return self.mamba_heads * self.mamba_head_dim

    @property
    def conv_dim(self) -> int:
        return self.inner + 2 * self.n_groups * self.ssm_state

    @property
    def in_proj_rows(self) -> int:
        return self.inner + self.conv_dim + self.mamba_heads

    @property
    def n_shared_slots(self) -> int:
        """The shared expert counted in routed-expert-sized slices (the grouped kernels' virtual experts)."""
        return self.shared_ff // self.expert_ff

    def count(self, kind: str) -> int:
        return sum(k == kind for k in self.kinds)


def shapes_from_config(config: Any) -> ModelShapes:
    """The shapes of a transformers NemotronHConfig, or ValueError naming what the step cannot run."""
    kinds_raw = list(getattr(config, "layers_block_type", None) or [])
    unknown = sorted({k for k in kinds_raw if k not in _KINDS})
    if unknown:
        raise ValueError(f"layer kinds {', '.join(unknown)} have no fast decode step")
    if getattr(config, "moe_latent_size", None) is not None:
        raise ValueError("latent MoE projections have no fast decode step")
    if int(getattr(config, "n_group", 1) or 1) != int(getattr(config, "topk_group", 1) or 1):
        raise ValueError("grouped expert routing has no fast decode step")
    expert_ff = int(config.moe_intermediate_size)
    shared_ff = int(config.moe_shared_expert_intermediate_size) * int(getattr(config, "n_shared_experts", 1) or 1)
    if shared_ff % expert_ff:
        raise ValueError("the shared expert is not a whole number of routed-expert slices")
    if any(getattr(config, name, False) for name in ("use_bias", "mlp_bias", "attention_bias")):
        raise ValueError("biased projections have no fast decode step")
    if getattr(config, "mamba_hidden_act", "silu") != "silu" or getattr(config, "mlp_hidden_act", "relu2") != "relu2":
        raise ValueError("activations other than silu (Mamba) and relu2 (experts) have no fast decode step")
    q_heads = int(config.num_attention_heads)
    return ModelShapes(
        kinds=tuple(_KINDS[k] for k in kinds_raw), hidden=int(config.hidden_size), vocab=int(config.vocab_size),
        eps=float(config.layer_norm_epsilon),
        mamba_heads=int(config.mamba_num_heads), mamba_head_dim=int(config.mamba_head_dim),
        n_groups=int(config.n_groups), ssm_state=int(config.ssm_state_size), conv_kernel=int(config.conv_kernel),
        time_step_min=float(getattr(config, "time_step_min", 0.0) or 0.0),
        q_heads=q_heads, kv_heads=int(config.num_key_value_heads or q_heads),
        head_dim=int(getattr(config, "head_dim", None) or config.hidden_size // q_heads),
        n_experts=int(config.n_routed_experts), top_k=int(config.num_experts_per_tok),
        expert_ff=expert_ff, shared_ff=shared_ff, routed_scale=float(config.routed_scaling_factor),
        norm_topk=bool(config.norm_topk_prob),
    )
