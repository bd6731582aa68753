"""The fit estimate knows the hybrid: KV for 6 attention layers, a fixed Mamba state, layer-sized offload."""

from __future__ import annotations

import json

from engine.services.hub import fit
from engine.services.hub.catalog import LLAMA_CPP, TORCH
from tests import REPO_ROOT

GB, GIB = 1000**3, 1024**3
CONFIG = REPO_ROOT / "shared" / "reference" / "nemotron-3-nano" / "config.json"


def test_shape_matches_the_model() -> None:
    assert round(fit.TOTAL_PARAMS / 1e9, 2) == 31.58  # the model card's parameter count
    assert fit.PATTERN.count("*") == 6 and fit.PATTERN.count("M") == 23 and fit.PATTERN.count("E") == 23
    if CONFIG.is_file():  # the reference config, where the checkout has it
        config = json.loads(CONFIG.read_text())
        assert config["hybrid_override_pattern"] == fit.PATTERN
        assert (config["hidden_size"], config["vocab_size"], config["num_key_value_heads"]) == (
            fit.HIDDEN, fit.VOCAB, fit.KV_HEADS)


def test_kv_cache_counts_only_the_attention_layers() -> None:
    per_token = fit.kv_bytes_per_token()
    assert per_token == 2 * 128 * 2 * 6 * 2  # 6144 bytes
    naive = 2 * 128 * 2 * 52 * 2  # what an estimate that gives every layer a KV cache says
    assert naive / per_token > 8.6
    est_8k = fit.estimate(17 * GIB, LLAMA_CPP, 24 * GB, 64 * GB, context=8192)
    est_128k = fit.estimate(17 * GIB, LLAMA_CPP, 24 * GB, 64 * GB, context=131072)
    assert est_128k.kv_cache == 16 * est_8k.kv_cache
    assert est_128k.mamba_state == est_8k.mamba_state  # the Mamba state does not grow with context
    assert 45e6 < est_8k.mamba_state < 55e6


def test_verdicts() -> None:
    q4_0, q5_k_m, bf16 = 17 * GIB, int(24.4 * GIB), 63 * GB
    assert fit.estimate(q4_0, LLAMA_CPP, 24 * GB, 64 * GB).verdict == fit.FITS_GPU
    partial = fit.estimate(q5_k_m, LLAMA_CPP, 24 * GB, 64 * GB)
    assert partial.verdict == fit.PARTIAL and 30 < partial.gpu_layers < 52
    assert f"{partial.gpu_layers} of 52 layers" in partial.headline()
    assert partial.gpu_need <= 24 * GB and partial.ram_need > 0
    assert fit.estimate(q4_0, LLAMA_CPP, 0, 32 * GB).verdict == fit.CPU_ONLY
    assert fit.estimate(q4_0, LLAMA_CPP, 0, 16 * GB).verdict == fit.WONT_FIT
    assert fit.estimate(bf16, TORCH, 80 * GB, 64 * GB).verdict == fit.FITS_GPU
    torch_small = fit.estimate(bf16, TORCH, 48 * GB, 32 * GB)
    assert torch_small.verdict == fit.WONT_FIT and not torch_small.fits
    assert "KV cache" in torch_small.numbers() and "needed" in torch_small.numbers()


def test_more_gpu_memory_never_means_fewer_layers() -> None:
    layers = [fit.estimate(int(22.8 * GIB), LLAMA_CPP, v * GB, 128 * GB).gpu_layers for v in range(4, 30, 2)]
    assert layers == sorted(layers) and layers[0] < 52 == layers[-1]
