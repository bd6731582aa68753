"""Which decode path a loaded torch model runs, and the words that say so.

The fast path (a hand-written decode step over a static state, replayed from a CUDA graph, with
Triton kernels) needs: a CUDA device holding all the weights, Triton, and a model the step has code
for. Anything else runs today's eager transformers decode, and the label says why.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

FAST_LABEL = "fast decode: CUDA graph, Triton kernels"
CPU_STEP_LABEL = "hand-written decode step, eager (CPU)"


@dataclass(frozen=True)
class DecodePath:
    fast: bool
    #: "triton" (kernels, CUDA graph) or "torch" (the same step in plain torch, eager), when fast.
    kernels: str
    label: str  # what the CLI, bench and status line show
    reason: str  # why the fast path does not run; empty when it does


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def choose_decode_path(requested: str, device_type: str, device_map: Any, has_triton: bool,
                       model_problem: str) -> DecodePath:
    """`requested`: "auto", "fast" or "eager" (TorchLoadOptions.decode); `model_problem`: why the step
    cannot run this model, or ""."""
    def eager(reason: str) -> DecodePath:
        return DecodePath(False, "", f"eager transformers decode ({reason})", reason)

    if requested == "eager":
        return eager("the fast decode path is turned off")
    if model_problem:
        return eager(f"no fast decode step for this model: {model_problem}")
    if device_type != "cuda":
        if requested == "fast":
            return DecodePath(True, "torch", CPU_STEP_LABEL, "")
        return eager("the fast decode path needs an NVIDIA GPU")
    if device_map != {"": 0}:
        return eager("the weights are not all on one GPU")
    if not has_triton:
        return eager("Triton is not installed")
    return DecodePath(True, "triton", FAST_LABEL, "")


def capture_failed(error: BaseException) -> DecodePath:
    reason = f"preparing the GPU decode step failed: {type(error).__name__}: {error}"
    return DecodePath(False, "", f"eager transformers decode ({reason})", reason)
