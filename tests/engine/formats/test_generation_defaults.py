"""The generation defaults a model declares (GGUF general.sampling.*, a folder's generation_config.json)
reach ModelInfo, so the app can use them instead of one temperature for every model."""

from __future__ import annotations

import json
from pathlib import Path

from gguf import GGUFValueType as T

from engine.formats.gguf import read_gguf_metadata
from engine.formats.hf_folder import generation_defaults
from tests.fixtures.bad_gguf import write_variant


def test_gguf_sampling_defaults_are_read(tmp_path: Path) -> None:
    declared = write_variant(tmp_path / "declared.gguf", {"general.sampling.temp": (0.3, T.FLOAT32),
                                                          "general.sampling.top_p": (0.8, T.FLOAT32)})
    meta = read_gguf_metadata(declared)
    assert abs((meta.temperature or 0) - 0.3) < 1e-6 and abs((meta.top_p or 0) - 0.8) < 1e-6
    plain = read_gguf_metadata(write_variant(tmp_path / "plain.gguf", {}))
    assert (plain.temperature, plain.top_p) == (None, None)
    odd = read_gguf_metadata(write_variant(tmp_path / "odd.gguf", {"general.sampling.temp": ("hot", T.STRING)}))
    assert odd.temperature is None  # a default that is not a number is no default, and no error


def test_folder_generation_config_is_read(tmp_path: Path) -> None:
    assert generation_defaults(tmp_path) == (None, None)
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.6, "top_p": 0.95}))
    assert generation_defaults(tmp_path) == (0.6, 0.95)
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": True, "top_p": "x"}))
    assert generation_defaults(tmp_path) == (None, None)
    (tmp_path / "generation_config.json").write_text("not json")
    assert generation_defaults(tmp_path) == (None, None)
