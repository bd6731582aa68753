"""The fast path's Triton kernels against their torch references on the CPU, through Triton's interpreter.

Triton reads TRITON_INTERPRET when its kernels are defined, so the checks run in a process of their
own (tests/engine/backends/torch/fast/fast_kernels_interpreted.py). Skipped where Triton is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")


def test_kernels_and_the_whole_step_match_the_references(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    module = "tests.engine.backends.torch.fast.fast_kernels_interpreted"
    result = subprocess.run([sys.executable, "-m", module, str(tiny_nemotron.hf_dir)],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "ok experts_down" in result.stdout and "ok whole step" in result.stdout
