"""The static hybrid state of one running sequence, allocated once at load and never moved.

K/V for the attention layers sized to the loaded context, the Mamba layers' conv inputs and their
float32 SSM states. The decode step's CUDA graph holds these addresses, so everything here works in
place: a snapshot copies out what is valid (K/V up to the current length, all of the fixed-size
Mamba state), a restore copies it back.

The conv state is a ring of the last `conv_kernel` inputs per channel: the input at position p sits
in slot p % conv_kernel. A decode step then writes one slot and reads the others, so all the
programs of one fused kernel can read the old inputs while one of them writes the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.backends.torch.fast.shapes import ModelShapes


def static_state_bytes(shapes: ModelShapes, n_ctx: int, elem: int) -> int:
    """Bytes of the static state at `n_ctx` tokens (K/V in the model dtype, SSM state in float32)."""
    kv = 2 * shapes.count("attention") * shapes.kv_heads * shapes.head_dim * n_ctx * elem
    mamba = shapes.count("mamba") * (shapes.inner * shapes.ssm_state * 4 + shapes.conv_dim * shapes.conv_kernel * elem)
    return kv + mamba


@dataclass(frozen=True)
class StateSnapshot:
    """A copy of the valid part of the state, taken at `length` tokens."""

    length: int
    keys: Any  # [n_attn, kv_heads, length, head_dim]
    values: Any
    conv: Any  # [n_mamba, conv_dim, conv_kernel]
    ssm: Any  # [n_mamba, heads, head_dim, state] float32
    logits: Any  # [vocab] the last fed token's logits (model dtype)

    def nbytes(self) -> int:
        return sum(int(t.numel() * t.element_size()) for t in (self.keys, self.values, self.conv, self.ssm,
                                                                self.logits))


class HybridState:
    """The buffers, by layer kind; `attn_index` / `mamba_index` map a layer number to its slot."""

    def __init__(self, torch: Any, shapes: ModelShapes, n_ctx: int, dtype: Any, device: Any) -> None:
        self.shapes = shapes
        self.n_ctx = n_ctx
        kinds = shapes.kinds
        self.attn_index = {i: n for n, i in enumerate(i for i, k in enumerate(kinds) if k == "attention")}
        self.mamba_index = {i: n for n, i in enumerate(i for i, k in enumerate(kinds) if k == "mamba")}
        kv_shape = (len(self.attn_index), shapes.kv_heads, n_ctx, shapes.head_dim)
        self.keys = torch.zeros(kv_shape, dtype=dtype, device=device)
        self.values = torch.zeros(kv_shape, dtype=dtype, device=device)
        self.conv = torch.zeros((len(self.mamba_index), shapes.conv_dim, shapes.conv_kernel), dtype=dtype,
                                device=device)
        self.ssm = torch.zeros((len(self.mamba_index), shapes.mamba_heads, shapes.mamba_head_dim, shapes.ssm_state),
                               dtype=torch.float32, device=device)

    def clear(self) -> None:
        """Back to the empty sequence: zero conv inputs and SSM state (K/V past the length is never read)."""
        self.conv.zero_()
        self.ssm.zero_()

    def snapshot(self, length: int, logits: Any) -> StateSnapshot:
        return StateSnapshot(length, self.keys[:, :, :length].clone(), self.values[:, :, :length].clone(),
                             self.conv.clone(), self.ssm.clone(), logits.clone())

    def restore(self, snap: StateSnapshot, logits: Any) -> None:
        n = snap.length
        self.keys[:, :, :n].copy_(snap.keys)
        self.values[:, :, :n].copy_(snap.values)
        self.conv.copy_(snap.conv)
        self.ssm.copy_(snap.ssm)
        logits.copy_(snap.logits)

    def nbytes(self) -> int:
        return sum(int(t.numel() * t.element_size()) for t in (self.keys, self.values, self.conv, self.ssm))
