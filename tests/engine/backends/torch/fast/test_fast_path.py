"""The fast decode path's decisions, sizes and sampling, without a GPU.

Which path runs (and what the label says) for each condition; which configs the hand-written step
refuses; that the memory plan counts exactly the static state the fast path allocates; and that
sampling by thresholds from the top candidates follows the eager filter chain's distribution.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import NemotronHConfig

from engine.api import SamplingParams
from engine.backends.torch.backend import runtime_bytes
from engine.backends.torch.fast.decision import CPU_STEP_LABEL, FAST_LABEL, capture_failed, choose_decode_path
from engine.backends.torch.fast.sampling import CANDIDATES, GpuSampling, exact_draw, filtered_scores
from engine.backends.torch.fast.shapes import shapes_from_config
from engine.backends.torch.fast.state import static_state_bytes
from tests.fixtures.tiny_nemotron import real_config, tiny_config

GiB = 2**30
ONE_GPU = {"": 0}


@pytest.mark.parametrize(("requested", "device", "device_map", "triton", "problem", "fast", "kernels", "says"), [
    ("auto", "cuda", ONE_GPU, True, "", True, "triton", FAST_LABEL),
    ("fast", "cuda", ONE_GPU, True, "", True, "triton", FAST_LABEL),
    ("auto", "cpu", {"": "cpu"}, True, "", False, "", "needs an NVIDIA GPU"),
    ("fast", "cpu", {"": "cpu"}, False, "", True, "torch", CPU_STEP_LABEL),
    ("auto", "cuda", "auto", True, "", False, "", "not all on one GPU"),
    ("auto", "cuda", ONE_GPU, False, "", False, "", "Triton is not installed"),
    ("auto", "cuda", ONE_GPU, True, "latent MoE projections", False, "", "latent MoE projections"),
    ("eager", "cuda", ONE_GPU, True, "", False, "", "turned off"),
])
def test_decode_path_decision(requested: str, device: str, device_map: object, triton: bool, problem: str,
                              fast: bool, kernels: str, says: str) -> None:
    path = choose_decode_path(requested, device, device_map, triton, problem)
    assert (path.fast, path.kernels) == (fast, kernels)
    assert says in path.label
    assert (path.reason == "") == fast


def test_a_failed_capture_says_why() -> None:
    path = capture_failed(RuntimeError("CUDA error: operation not permitted when stream is capturing"))
    assert not path.fast
    assert "preparing the GPU decode step failed: RuntimeError: CUDA error" in path.label


def test_shapes_of_the_real_model() -> None:
    shapes = shapes_from_config(NemotronHConfig(**real_config()))
    assert (shapes.count("mamba"), shapes.count("moe"), shapes.count("attention")) == (23, 23, 6)
    assert (shapes.in_proj_rows, shapes.conv_dim, shapes.n_shared_slots) == (10304, 6144, 2)


@pytest.mark.parametrize(("change", "message"), [
    ({"hybrid_override_pattern": "M-M*E", "num_hidden_layers": 5}, "layer kinds mlp"),
    ({"moe_latent_size": 16}, "latent MoE"),
    ({"n_group": 2, "topk_group": 1}, "grouped expert routing"),
    ({"moe_shared_expert_intermediate_size": 40}, "shared expert"),
    ({"use_bias": True}, "biased projections"),
])
def test_configs_the_step_refuses(change: dict[str, object], message: str) -> None:
    config = tiny_config(vocab_size=64)
    config.update(change)
    with pytest.raises(ValueError, match=message):
        shapes_from_config(NemotronHConfig(**config))


def test_the_memory_plan_counts_the_static_state() -> None:
    shapes = shapes_from_config(NemotronHConfig(**real_config()))
    for n_ctx in (8192, 131072, 262144):
        assert runtime_bytes(real_config(), n_ctx, 2) == static_state_bytes(shapes, n_ctx, 2)
    kv_per_token = static_state_bytes(shapes, 1, 2) - static_state_bytes(shapes, 0, 2)
    assert kv_per_token == 6 * 2**10  # 6 layers x 2 KV heads x 128 x (K and V) x 2 bytes
    assert static_state_bytes(shapes, 262144, 2) - static_state_bytes(shapes, 0, 2) == 1.5 * GiB


# -- sampling -------------------------------------------------------------------------------------


def eager_distribution(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """What TorchBackend.sample draws from (its own filter function, then the temperature)."""
    return torch.softmax(filtered_scores(torch, logits.float(), params) / params.temperature, dim=-1)


PARAMS = [
    SamplingParams(),
    SamplingParams(temperature=0.6, top_p=0.95),
    SamplingParams(temperature=1.0, top_k=40),
    SamplingParams(temperature=0.8, top_k=20, top_p=0.5),
    SamplingParams(temperature=1.3, min_p=0.05),
    SamplingParams(temperature=0.7, top_p=0.9, min_p=0.02),
    SamplingParams(temperature=1.0, top_k=2000),
]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"T{p.temperature}-p{p.top_p}-k{p.top_k}-min{p.min_p}")
@pytest.mark.parametrize("spread", [0.5, 3.0, 12.0])
def test_gpu_sampling_follows_the_eager_distribution(params: SamplingParams, spread: float) -> None:
    gen = torch.Generator().manual_seed(int(spread * 10))
    logits = torch.randn(32768, generator=gen) * spread  # float32: no ties (see the next test for those)
    sampling = GpuSampling.create(torch, logits)
    ours, exact = sampling.distribution(params)
    want = eager_distribution(logits, params)
    nucleus = int((filtered_scores(torch, logits, SamplingParams(top_p=params.top_p)) > float("-inf")).sum())
    wide = params.top_k > CANDIDATES or (params.top_k == 0 and params.top_p < 1 and nucleus >= CANDIDATES)
    assert exact != wide  # the exact chain is asked for exactly when a threshold lies beyond the candidates
    if exact:
        assert torch.equal(ours > 0, want > 0)
        assert (ours - want).abs().max() < 1e-6


def test_ties_at_the_top_p_boundary_are_all_kept() -> None:
    """bf16 logits tie often. The eager chain keeps whichever tied tokens its sort puts first; the
    thresholds keep them all, so no token is preferred over an equal one."""
    logits = torch.tensor([3.0, 2.0, 2.0, 2.0, -1.0]).to(torch.bfloat16)
    params = SamplingParams(temperature=1.0, top_p=0.5)
    ours, exact = GpuSampling.create(torch, logits).distribution(params)
    assert exact
    assert (ours > 0).tolist() == [True, True, True, True, False]
    assert ours[1] == ours[2] == ours[3]


def test_draws_are_inverse_cdf_over_the_kept_tokens() -> None:
    logits = torch.tensor([0.0, 5.0, -50.0, 4.0, 1.0], dtype=torch.float32)
    sampling = GpuSampling.create(torch, logits)
    params = SamplingParams(temperature=1.0, top_k=2)
    seen = []
    for u in (0.0, 0.5, 0.999999):
        sampling.load(params, u)
        sampling.filtered()
        token, complete = sampling.result.tolist()
        assert complete == 1
        seen.append(token)
    assert seen == [1, 1, 3]  # the two best tokens (1 and 3) in vocabulary order, p(1) = 0.73


def test_frequencies_match_the_distribution() -> None:
    logits = torch.randn(4096, generator=torch.Generator().manual_seed(3)) * 2
    params = SamplingParams(temperature=0.9, top_p=0.8)
    sampling = GpuSampling.create(torch, logits)
    probs, _ = sampling.distribution(params)
    rng = random.Random(5)
    counts = torch.zeros_like(probs)
    n = 20000
    for _ in range(n):
        sampling.load(params, rng.random())
        sampling.filtered()
        counts[int(sampling.result[0])] += 1
    top = probs.argsort(descending=True)[:5]
    for token in top.tolist():
        p = float(probs[token])
        assert abs(counts[token] / n - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert counts[probs == 0].sum() == 0


def test_the_exact_chain_draws_the_same_tokens() -> None:
    """For a threshold the candidates cannot find, the eager chain runs with the same uniform number."""
    logits = torch.randn(32768, generator=torch.Generator().manual_seed(4)) * 0.1
    params = SamplingParams(temperature=1.0, top_p=0.99)
    sampling = GpuSampling.create(torch, logits)
    sampling.load(params, 0.3)
    sampling.filtered()
    assert sampling.result[1] == 0  # the nucleus is wider than the candidates
    want = eager_distribution(logits, params).cumsum(0)
    token = exact_draw(torch, logits, params, 0.3)
    assert want[token] > 0.3 * want[-1] and (token == 0 or want[token - 1] <= 0.3 * want[-1])
