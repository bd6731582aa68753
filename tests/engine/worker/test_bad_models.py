"""Bad model files get a clear message that names the problem and the way out; nothing crashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.api import Error, LlamaLoadOptions, LoadSpec, ModelInfo
from engine.worker.session import EngineSession


def load_error(path: Path) -> Error:
    session = EngineSession()
    events = list(session.load(LoadSpec(str(path), LlamaLoadOptions(n_ctx=256, n_threads=1, n_gpu_layers=0))))
    assert not any(isinstance(e, ModelInfo) for e in events)
    errors = [e for e in events if isinstance(e, Error)]
    assert len(errors) == 1
    assert errors[0].action, "every error says what to do"
    assert session.backend is None
    return errors[0]


def test_missing_file(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.gguf")
    assert "No model file" in err.message and err.kind == "bad_model"


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    error = load_error(tmp_path)  # a folder is read as a Hugging Face folder, and this one is not
    assert "no config.json" in error.message and "GGUF file" in error.action


def test_not_a_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 Not Found</html>")
    assert "not a GGUF file" in load_error(fake).message


def test_unreadable_file(tmp_path: Path) -> None:
    # Reading /proc/self/mem at offset 0 fails with EIO for everyone, root included: a real
    # unreadable file, like a model on a failing disk.
    link = tmp_path / "model.gguf"
    link.symlink_to("/proc/self/mem")
    err = load_error(link)
    assert "Cannot read" in err.message and "permissions" in err.action


def test_truncated_download(tmp_path: Path, demo_gguf: Path) -> None:
    partial = tmp_path / "partial.gguf"
    with demo_gguf.open("rb") as src:
        partial.write_bytes(src.read(20 * 2**20))
    err = load_error(partial)
    assert "incomplete" in err.message or "damaged or incomplete" in err.action
    assert "download" in err.action.lower()


def test_header_only_file(tmp_path: Path, demo_gguf: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with demo_gguf.open("rb") as src:
        cut.write_bytes(src.read(5000))
    assert "download" in load_error(cut).action.lower()


def test_unknown_architecture(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "frobnicator")
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    err = load_error(path)
    assert "frobnicator" in err.message
    assert "update llama-cpp-python" in err.action
