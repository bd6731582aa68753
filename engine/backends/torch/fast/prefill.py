"""Prefill into the static state: many tokens in one forward, through the model's own modules.

The layers' projections, norms, MoE blocks and transformers' own chunked Mamba-2 scan
(`mamba2_chunk_scan`, which the optional mamba-ssm kernels replace when installed) do the work, as in
the eager path; what differs is only where the state lives: K/V are written into the static cache,
the conv ring and SSM state are read and written in place, so a prompt continues a decoded
sequence (the next turn) as well as it starts a new one.
"""

from __future__ import annotations

import sys
from typing import Any

from engine.backends.torch.fast.state import HybridState


def prefill(torch: Any, model: Any, state: HybridState, tokens: list[int], start: int, logits: Any) -> None:
    """Evaluate `tokens` at positions start.. and leave the last one's logits in `logits`."""
    backbone = model.model
    ids = torch.tensor([tokens], dtype=torch.long, device=backbone.embeddings.weight.device)
    h = backbone.embeddings(ids)
    for i, (block, kind) in enumerate(zip(backbone.layers, state.shapes.kinds, strict=True)):
        x = block.norm(h.to(dtype=block.norm.weight.dtype))
        if kind == "mamba":
            j = state.mamba_index[i]
            out = _mamba(torch, block.mixer, x, state.conv[j], state.ssm[j], start)
        elif kind == "attention":
            j = state.attn_index[i]
            out = _attention(torch, block.mixer, x, state.keys[j], state.values[j], start)
        else:
            out = block.mixer(x)
        h = h + out
    last = backbone.norm_f(h[:, -1:])
    logits.copy_(model.lm_head(last)[0, 0])


def _mamba(torch: Any, mixer: Any, x: Any, conv: Any, ssm: Any, start: int) -> Any:
    F = torch.nn.functional
    n = x.shape[1]
    inner, cd, heads = mixer.intermediate_size, mixer.conv_dim, mixer.num_heads
    groups, state_size, kc = mixer.n_groups, mixer.ssm_state_size, mixer.conv_kernel_size
    z, xbc, dt = mixer.in_proj(x).split([inner, cd, heads], dim=-1)
    # The causal conv sees the kc-1 inputs before `start` (zeros before the sequence began). Indices
    # are made on the device: a small tensor copied from the host would wait for the GPU each layer.
    device = conv.device
    past = conv.index_select(1, torch.remainder(torch.arange(start - kc + 1, start, device=device), kc))
    inputs = torch.cat([past, xbc[0].transpose(0, 1).to(conv.dtype)], dim=1)
    weight = mixer.conv1d.weight
    conv_out = F.conv1d(inputs[None].to(weight.dtype), weight, mixer.conv1d.bias, groups=cd)
    xbc = F.silu(conv_out).transpose(1, 2).to(x.dtype)
    keep = torch.arange(max(start, start + n - kc), start + n, device=device)  # the last inputs, into the ring
    conv.index_copy_(1, torch.remainder(keep, kc), inputs.index_select(1, keep - start + kc - 1))

    hs, b, c = xbc.split([inner, groups * state_size, groups * state_size], dim=-1)
    scan = sys.modules[type(mixer).__module__].mamba2_chunk_scan  # transformers own chunked scan
    y, final = scan(
        hs.view(1, n, heads, mixer.head_dim), dt, -torch.exp(mixer.A_log.float()),
        b.view(1, n, groups, state_size), c.view(1, n, groups, state_size), chunk_size=mixer.chunk_size,
        D=mixer.D, z=None, dt_bias=mixer.dt_bias, dt_softplus=True,
        initial_states=ssm[None] if start else None,
        dt_limit=getattr(mixer, "time_step_limit", (0.0, float("inf"))), return_final_states=True)
    ssm.copy_(final[0])
    y = mixer.norm(y.reshape(1, n, -1), z)
    return mixer.out_proj(y.to(x.dtype))


def _attention(torch: Any, attn: Any, x: Any, keys: Any, values: Any, start: int) -> Any:
    F = torch.nn.functional
    n = x.shape[1]
    d, kv_heads = attn.head_dim, keys.shape[0]
    q = attn.q_proj(x).view(1, n, -1, d).transpose(1, 2)
    keys[:, start:start + n] = attn.k_proj(x).view(n, kv_heads, d).transpose(0, 1)
    values[:, start:start + n] = attn.v_proj(x).view(n, kv_heads, d).transpose(0, 1)
    groups = q.shape[1] // kv_heads
    k = keys[None, :, :start + n].repeat_interleave(groups, dim=1)
    v = values[None, :, :start + n].repeat_interleave(groups, dim=1)
    if start == 0:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=attn.scaling)
    else:
        mask = torch.ones(n, start + n, dtype=torch.bool, device=x.device).tril(diagonal=start)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scaling)
    return attn.o_proj(out.transpose(1, 2).reshape(1, n, -1))
