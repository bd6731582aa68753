"""The torch backend's memory plan: where the weights go, or why they cannot go anywhere."""

from __future__ import annotations

import pytest

from engine.backends.torch.backend import plan_placement, runtime_bytes
from engine.errors import ModelLoadError
from tests.fixtures.tiny_nemotron import real_config

GiB = 2**30
WEIGHTS = int(58.8 * GiB)  # Nemotron-3-Nano-30B-A3B in bfloat16


def test_runtime_counts_kv_for_the_six_attention_layers_only() -> None:
    config = real_config()
    kv_16k = 2 * 6 * 2 * 128 * 2 * 16384  # K and V, 6 layers, 2 kv heads x 128, bf16, 16k tokens
    mamba = runtime_bytes(config, 0, 2)  # the fixed part: conv and SSM states of 23 layers
    assert runtime_bytes(config, 16384, 2) == kv_16k + mamba
    assert kv_16k == 96 * 2**20 and 40 * 2**20 < mamba < 60 * 2**20
    # a 1M-token context still costs only ~6 GiB of cache (52 KV layers would be ~52 GiB)
    assert runtime_bytes(config, 2**20, 2) < 6.2 * GiB


def test_fits_one_gpu() -> None:
    plan = plan_placement(WEIGHTS, GiB, "cuda", [139 * GiB], 100 * GiB, allow_offload=True)
    assert plan.device_map == {"": 0} and plan.note == ""


def test_spreads_over_two_gpus_with_a_note() -> None:
    plan = plan_placement(WEIGHTS, GiB, "cuda", [40 * GiB, 40 * GiB], 100 * GiB, allow_offload=True)
    assert plan.device_map == "auto" and set(plan.max_memory or {}) == {0, 1}
    assert "spread over 2 GPUs" in plan.note


def test_spills_to_cpu_with_a_warning_about_speed() -> None:
    plan = plan_placement(WEIGHTS, GiB, "cuda", [48 * GiB], 64 * GiB, allow_offload=True)
    assert plan.device_map == "auto" and "cpu" in (plan.max_memory or {})
    assert "run from CPU memory" in plan.note and "slower" in plan.note


def test_refuses_with_the_numbers_when_nothing_fits() -> None:
    with pytest.raises(ModelLoadError) as caught:
        plan_placement(WEIGHTS, GiB, "cuda", [24 * GiB], 16 * GiB, allow_offload=True)
    text = str(caught.value)
    assert "59.8 GiB" in text and "24.0 GiB free" in text and "GGUF" in text


def test_no_offload_means_one_gpu_or_a_refusal() -> None:
    with pytest.raises(ModelLoadError, match="Allow spreading"):
        plan_placement(WEIGHTS, GiB, "cuda", [48 * GiB, 48 * GiB], 64 * GiB, allow_offload=False)


def test_cpu_needs_the_memory_free() -> None:
    assert plan_placement(GiB, 0, "cpu", [], 8 * GiB, allow_offload=True).device_map == {"": "cpu"}
    with pytest.raises(ModelLoadError, match="of memory on the CPU"):
        plan_placement(WEIGHTS, GiB, "cpu", [], 32 * GiB, allow_offload=True)
