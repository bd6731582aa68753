"""Will a Nemotron-3-Nano file run here? An estimate that knows the hybrid architecture.

Memory = weights + a KV cache for the 6 attention layers only (× context) + the fixed Mamba state of
the 23 Mamba layers (conv + SSM state, fp32, whatever the context) + compute buffers. Estimates that
give all 52 layers a KV cache are ~9× too high. Layer sizes differ a lot (a MoE layer holds ~1.3 B
parameters, a Mamba layer ~39 M, an attention layer ~23 M), so partial offload counts layer by layer,
from the last layer down, the way llama.cpp's n_gpu_layers offloads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from engine.services.hub.catalog import LLAMA_CPP, TORCH
from engine.services.hub.hardware import gb

# The shape of nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B (its config.json).
PATTERN = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME"
HIDDEN = 2688
VOCAB = 131072
EXPERTS, EXPERT_FF, SHARED_FF = 128, 1856, 3712
MAMBA_HEADS, MAMBA_HEAD_DIM, SSM_STATE, N_GROUPS, CONV_KERNEL = 64, 64, 128, 8, 4
Q_HEADS, KV_HEADS, HEAD_DIM = 32, 2, 128

MIB = 1024**2
CUDA_OVERHEAD = 600 * MIB  # CUDA context + cuBLAS workspaces, seen on an H200 with llama.cpp
UBATCH = 512  # llama.cpp's default physical batch
RAM_HEADROOM = 2 * 1000**3  # the OS, the app and the page cache need some RAM too


@cache
def layer_params() -> tuple[int, ...]:
    """Parameters of each of the 52 blocks, in order."""
    inner = MAMBA_HEADS * MAMBA_HEAD_DIM
    sizes = []
    for kind in PATTERN:
        if kind == "M":
            in_proj = HIDDEN * (2 * inner + 2 * N_GROUPS * SSM_STATE + MAMBA_HEADS)
            conv = CONV_KERNEL * (inner + 2 * N_GROUPS * SSM_STATE)
            sizes.append(in_proj + conv + inner * HIDDEN + inner + 3 * MAMBA_HEADS + HIDDEN)
        elif kind == "E":
            experts = EXPERTS * 2 * HIDDEN * EXPERT_FF + 2 * HIDDEN * SHARED_FF
            sizes.append(experts + HIDDEN * EXPERTS + EXPERTS + HIDDEN)  # + router, correction bias, norm
        else:
            sizes.append(2 * HIDDEN * Q_HEADS * HEAD_DIM + 2 * HIDDEN * KV_HEADS * HEAD_DIM + HIDDEN)
    return tuple(sizes)


TOTAL_PARAMS = sum(layer_params()) + 2 * VOCAB * HIDDEN + HIDDEN  # + embeddings, output head, final norm


def kv_bytes_per_token(bytes_per_element: int = 2) -> int:
    """K and V of the attention layers only: 2 kv heads × 128 × 2 × 6 layers × element size."""
    return KV_HEADS * HEAD_DIM * 2 * PATTERN.count("*") * bytes_per_element


def mamba_state_bytes() -> int:
    """Conv state + SSM state of the 23 Mamba layers, fp32, for one sequence; context does not change it."""
    conv = (CONV_KERNEL - 1) * (MAMBA_HEADS * MAMBA_HEAD_DIM + 2 * N_GROUPS * SSM_STATE)
    ssm = MAMBA_HEADS * MAMBA_HEAD_DIM * SSM_STATE
    return (conv + ssm) * 4 * PATTERN.count("M")


def compute_bytes(backend: str) -> int:
    """Scratch memory: logits and activations for one batch (llama.cpp), or torch's activations."""
    logits = UBATCH * VOCAB * 4
    activations = UBATCH * (HIDDEN * 4 * 8 + EXPERTS * 4)
    if backend == TORCH:
        return 2 * (logits + activations)
    return logits + activations


@dataclass(frozen=True)
class FitEstimate:
    verdict: str  # "fits on GPU", "fits with partial offload", "runs on the CPU", "won't fit"
    gpu_layers: int  # layers on the GPU (of 52)
    weights: int
    kv_cache: int
    mamba_state: int
    compute: int
    gpu_need: int  # bytes the GPU must hold with `gpu_layers` offloaded (all layers when none fit)
    ram_need: int
    gpu_free: int
    ram_available: int
    context: int

    @property
    def fits(self) -> bool:
        return self.verdict != WONT_FIT

    def headline(self) -> str:
        if self.verdict == PARTIAL:
            return f"fits with partial offload ({self.gpu_layers} of {len(PATTERN)} layers on the GPU)"
        return self.verdict

    def numbers(self) -> str:
        return (f"weights {gb(self.weights)} + KV cache {gb(self.kv_cache)} ({self.context:,} tokens, 6 attention "
                f"layers) + Mamba state {gb(self.mamba_state)} + compute {gb(self.compute)}; "
                f"GPU {gb(self.gpu_need)} needed, {gb(self.gpu_free)} free; RAM {gb(self.ram_need)} needed, "
                f"{gb(self.ram_available)} available")


FITS_GPU = "fits on GPU"
PARTIAL = "fits with partial offload"
CPU_ONLY = "runs on the CPU"
WONT_FIT = "won't fit"


def estimate(weights: int, backend: str, gpu_free: int, ram_available: int, context: int = 32768) -> FitEstimate:
    """The verdict for a file of `weights` bytes on a machine with this much free GPU memory and RAM."""
    kv_elem = 2  # f16 (llama.cpp) or bf16 (torch)
    kv = kv_bytes_per_token(kv_elem) * context
    state = mamba_state_bytes()
    compute = compute_bytes(backend)
    per_param = weights / TOTAL_PARAMS
    embed = int(VOCAB * HIDDEN * per_param)  # token_embd stays in RAM in llama.cpp
    runtime = kv + state + compute

    def result(verdict: str, layers: int, gpu_need: int, ram_need: int) -> FitEstimate:
        return FitEstimate(verdict, layers, weights, kv, state, compute, gpu_need, ram_need,
                           gpu_free, ram_available, context)

    usable_ram = max(0, ram_available - RAM_HEADROOM)
    all_on_gpu = (weights - embed if backend == LLAMA_CPP else weights) + runtime + CUDA_OVERHEAD
    if gpu_free and all_on_gpu <= gpu_free:
        return result(FITS_GPU, len(PATTERN), all_on_gpu, embed if backend == LLAMA_CPP else 0)
    if gpu_free and backend == LLAMA_CPP:
        layers, gpu_need = _offload(per_param, gpu_free, kv, state, compute)
        if layers:
            ram_need = weights - (gpu_need - compute - CUDA_OVERHEAD - _runtime_on_gpu(layers, kv, state))
            if ram_need <= usable_ram:
                return result(PARTIAL, layers, gpu_need, ram_need)
    cpu_need = weights + runtime
    if cpu_need <= usable_ram:
        return result(CPU_ONLY, 0, all_on_gpu, cpu_need)
    return result(WONT_FIT, 0, all_on_gpu, cpu_need)


def _runtime_on_gpu(layers: int, kv: int, state: int) -> int:
    """KV and Mamba state of the last `layers` blocks (they live with their layer)."""
    tail = PATTERN[len(PATTERN) - layers:]
    return kv * tail.count("*") // PATTERN.count("*") + state * tail.count("M") // PATTERN.count("M")


def _offload(per_param: float, gpu_free: int, kv: int, state: int, compute: int) -> tuple[int, int]:
    """How many blocks, from the last one down, fit on the GPU, and the GPU memory they need."""
    params = layer_params()
    need = compute + CUDA_OVERHEAD
    layers = 0
    for i in range(len(params) - 1, -1, -1):
        extra = int(params[i] * per_param) + _runtime_on_gpu(layers + 1, kv, state) - _runtime_on_gpu(layers, kv, state)
        if need + extra > gpu_free:
            break
        need += extra
        layers += 1
    return layers, need if layers else 0
