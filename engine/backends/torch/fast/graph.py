"""Capturing the decode step (and the sampler) into CUDA graphs, and where compiled kernels are kept.

A graph is captured once per loaded model after a warm-up run on a side stream (which compiles the
Triton kernels and lets the caching allocator settle); replaying it launches the whole step at once.
Triton writes the kernels it compiles to the user cache folder (`compile_cache_dir`), so the second
load of a model skips compilation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

APP_NAME = "nemotron-desk"


def compile_cache_dir() -> Path:
    """The user cache folder's `triton` folder; NEMOTRON_DESK_CACHE_DIR overrides the cache folder."""
    override = os.environ.get("NEMOTRON_DESK_CACHE_DIR")
    if override:
        return Path(override) / "triton"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "triton"


def use_compile_cache() -> Path:
    """Point Triton's kernel cache at ours, unless the person set TRITON_CACHE_DIR themselves."""
    path = Path(os.environ.get("TRITON_CACHE_DIR") or compile_cache_dir())
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TRITON_CACHE_DIR"] = str(path)
    return path


class CapturedGraph:
    """`body` captured once; `replay()` runs it again on the current stream."""

    def __init__(self, torch: Any, body: Callable[[], None], warmups: int = 2) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmups):
                body()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            body()

    def replay(self) -> None:
        self.graph.replay()
