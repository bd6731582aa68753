"""Checks on a Hugging Face folder before anything heavy loads: each broken part has its own message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.errors import ModelLoadError
from engine.formats.hf_folder import layer_kinds, read_hf_folder
from tests.fixtures.tiny_nemotron import real_config


@pytest.fixture
def folder(tiny_nemotron, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    copy = tmp_path / "model"
    shutil.copytree(tiny_nemotron.hf_dir, copy)
    return copy


def message(path: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        read_hf_folder(path)
    return str(caught.value)


def test_a_good_folder_is_read(folder: Path) -> None:
    info = read_hf_folder(folder)
    assert info.model_type == "nemotron_h" and info.stored_dtype == "F32"
    assert info.n_params > 0 and info.size_bytes == info.n_params * 4
    assert info.chat_template is not None and "enable_thinking" in info.chat_template
    assert info.n_layers == len(info.config["hybrid_override_pattern"])


def test_missing_config(folder: Path) -> None:
    (folder / "config.json").unlink()
    assert "no config.json" in message(folder)


def test_truncated_weights_are_named_with_what_is_missing(folder: Path) -> None:
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 4096])
    text = message(folder)
    assert "model.safetensors is incomplete" in text and "interrupted" in text


def test_damaged_header(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"\xff" * 64)
    assert "cannot be read" in message(folder)


def test_missing_shard_of_an_index(folder: Path) -> None:
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    text = message(folder)
    assert "missing 1 of its 2 weight files: model-00002-of-00002.safetensors" in text


def test_pickle_weights_are_refused(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    assert "pickle" in message(folder)


def test_remote_code_is_refused(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="someone_elses", auto_map={"AutoModelForCausalLM": "modeling.Model"})
    (folder / "config.json").write_text(json.dumps(config))
    assert "trust_remote_code" in message(folder)


def test_missing_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()
    assert "no tokenizer.json" in message(folder)


def test_template_from_a_named_list_or_a_jinja_file(folder: Path) -> None:
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert read_hf_folder(folder).chat_template == "D"
    del config["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").write_text("J")
    assert read_hf_folder(folder).chat_template == "J"


def test_layer_kinds_from_nvidias_pattern_and_from_save_pretrained() -> None:
    from transformers import NemotronHConfig

    nvidia = real_config()
    saved = NemotronHConfig(**nvidia).to_dict()  # what save_pretrained writes: a list, no pattern
    assert "hybrid_override_pattern" not in saved
    for config in (nvidia, saved):
        kinds = layer_kinds(config)
        assert (len(kinds), kinds.count("mamba"), kinds.count("attention"), kinds.count("moe")) == (52, 23, 6, 23)
