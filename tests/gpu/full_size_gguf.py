"""Write the full-size Nemotron-3-Nano-30B-A3B architecture as a Q4_0 GGUF with random weights.

For GPU benchmarks only (the device machine; CI never runs it): the real config (52 layers, 128
experts top-6, 131072-token vocabulary), the real chat template and special tokens (the tiny
fixture's tokenizer padded with unused tokens), and random Q4_0 blocks with a small fixed scale, so
that speed and memory are those of the real ~17 GiB file. The text it writes is noise.

    python -m tests.gpu.full_size_gguf OUT.gguf
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter

from tests.fixtures.tiny_nemotron import GGUF_ARCH, real_config, write_hparams, write_vocab

_BLOCK, _BLOCK_BYTES = 32, 18  # Q4_0: 32 weights in an fp16 scale + 16 bytes of nibbles
_SCALE = np.float16(0.002)


class _Q4Pool:
    """One buffer of random Q4_0 blocks; every quantized tensor is a view of its start."""

    def __init__(self, max_blocks: int, rng: np.random.Generator) -> None:
        blocks = rng.integers(0, 256, size=(max_blocks, _BLOCK_BYTES), dtype=np.uint8)
        blocks[:, :2] = np.frombuffer(_SCALE.tobytes(), dtype=np.uint8)
        self._flat = blocks.reshape(-1)

    def tensor(self, shape: tuple[int, ...]) -> np.ndarray:
        """Bytes of a Q4_0 tensor with numpy `shape` (rows..., columns)."""
        *rows, cols = shape
        row_bytes = cols // _BLOCK * _BLOCK_BYTES
        n = int(np.prod(rows)) * row_bytes
        return self._flat[:n].reshape(*rows, row_bytes)


def _layer_tensors(kind: str, c: dict, rng: np.random.Generator, q4: _Q4Pool) -> dict[str, tuple]:
    h = c["hidden_size"]
    f32 = lambda *shape, std=0.02: rng.normal(0, std, shape).astype(np.float32)  # noqa: E731
    t: dict[str, tuple] = {"attn_norm.weight": (np.ones(h, np.float32), None)}
    if kind == "M":
        heads, inner = c["mamba_num_heads"], c["mamba_num_heads"] * c["mamba_head_dim"]
        conv = inner + 2 * c["n_groups"] * c["ssm_state_size"]
        t |= {
            "ssm_in.weight": (q4.tensor((inner + conv + heads, h)), GGMLQuantizationType.Q4_0),
            "ssm_conv1d.weight": (f32(conv, c["conv_kernel"], std=0.2), None),
            "ssm_conv1d.bias": (np.zeros(conv, np.float32), None),
            "ssm_dt.bias": (np.full(heads, -4.0, np.float32), None),
            "ssm_a": (-np.linspace(1, 16, heads, dtype=np.float32)[:, None], None),
            "ssm_d": (np.ones((heads, 1), np.float32), None),
            "ssm_norm.weight": (np.ones((c["n_groups"], inner // c["n_groups"]), np.float32), None),
            "ssm_out.weight": (q4.tensor((h, inner)), GGMLQuantizationType.Q4_0),
        }
    elif kind == "*":
        q, kv = c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"]
        t |= {name: (q4.tensor(shape), GGMLQuantizationType.Q4_0) for name, shape in (
            ("attn_q.weight", (q, h)), ("attn_k.weight", (kv, h)), ("attn_v.weight", (kv, h)),
            ("attn_output.weight", (h, q)))}
    else:
        e, ff, sh = c["n_routed_experts"], c["moe_intermediate_size"], c["moe_shared_expert_intermediate_size"]
        t |= {
            "ffn_gate_inp.weight": (f32(e, h), None),
            "exp_probs_b.bias": (np.zeros(e, np.float32), None),
            "ffn_up_exps.weight": (q4.tensor((e, ff, h)), GGMLQuantizationType.Q4_0),
            "ffn_down_exps.weight": (q4.tensor((e, h, ff)), GGMLQuantizationType.Q4_0),
            "ffn_up_shexp.weight": (q4.tensor((sh, h)), GGMLQuantizationType.Q4_0),
            "ffn_down_shexp.weight": (q4.tensor((h, sh)), GGMLQuantizationType.Q4_0),
        }
    return t


def write_full_size(path: Path, seed: int = 0) -> None:
    c = real_config()
    rng = np.random.default_rng(seed)
    h, e, ff = c["hidden_size"], c["n_routed_experts"], c["moe_intermediate_size"]
    q4 = _Q4Pool(max(e * ff * h, c["vocab_size"] * h) // _BLOCK, rng)
    writer = GGUFWriter(str(path), arch=GGUF_ARCH)
    writer.add_string("general.type", "model")
    writer.add_string("general.name", "Nemotron-3-Nano-30B-A3B architecture, random Q4_0 weights")
    writer.add_uint32("general.file_type", 2)  # LLAMA_FTYPE_MOSTLY_Q4_0
    writer.add_uint32("general.quantization_version", 2)
    write_hparams(writer, c)
    write_vocab(writer, vocab_size=c["vocab_size"])
    top = {
        "token_embd.weight": (q4.tensor((c["vocab_size"], h)), GGMLQuantizationType.Q4_0),
        "output_norm.weight": (np.ones(h, np.float32), None),
        "output.weight": (q4.tensor((c["vocab_size"], h)), GGMLQuantizationType.Q4_0),
    }
    for name, (data, qtype) in top.items():
        writer.add_tensor(name, data, raw_dtype=qtype)
    for i, kind in enumerate(c["hybrid_override_pattern"]):
        for name, (data, qtype) in _layer_tensors(kind, c, rng, q4).items():
            writer.add_tensor(f"blk.{i}.{name}", data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    start = time.perf_counter()
    out = Path(sys.argv[1])
    write_full_size(out)
    print(f"wrote {out} ({out.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - start:.1f} s")
