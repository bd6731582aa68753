"""A Hugging Face model folder, read and checked before anything heavy is imported or allocated.

What the torch backend needs from a folder: config.json, the safetensors weights (one file or an
index of shards, every shard present and readable), tokenizer.json, and a chat template
(tokenizer_config.json's `chat_template`, or chat_template.jinja). Each missing or damaged part gets
its own message, so a half-downloaded folder is named as such instead of failing deep in torch.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError

#: Bytes per element of the safetensors dtypes a causal LM ships in.
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
                "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_MAX_HEADER = 100 * 2**20


@dataclass(frozen=True)
class HfFolder:
    path: Path
    config: dict[str, Any]
    weight_files: tuple[Path, ...]
    n_params: int
    size_bytes: int
    #: The dtype most of the weights are stored in ("BF16", "F32", ...).
    stored_dtype: str
    chat_template: str | None
    tokenizer_config: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def n_layers(self) -> int:
        return len(layer_kinds(self.config))

    @property
    def context_length(self) -> int:
        return int(self.config.get("max_position_embeddings") or 0)


_KIND_NAMES = {"M": "mamba", "mamba": "mamba", "linear_attention": "mamba",
               "*": "attention", "attention": "attention", "full_attention": "attention",
               "E": "moe", "moe": "moe", "-": "mlp", "mlp": "mlp"}


def layer_kinds(config: dict[str, Any]) -> list[str]:
    """Each layer's kind ("mamba", "attention", "moe", "mlp"), from whichever form the config uses.

    NVIDIA's config.json writes a pattern string (`MEMEM*E...`); transformers' save_pretrained writes
    a `layers_block_type` list (`linear_attention`, `moe`, `full_attention`).
    """
    pattern = config.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:
        names: list[str] = list(pattern)
    else:
        listed = config.get("layers_block_type") or config.get("layer_types")
        names = [str(t) for t in listed] if isinstance(listed, list) else \
            ["attention"] * int(config.get("num_hidden_layers") or 0)
    return [_KIND_NAMES.get(name, name) for name in names]


def generation_defaults(path: Path) -> tuple[float | None, float | None]:
    """(temperature, top_p) from the folder's generation_config.json; None for what it does not declare."""
    try:
        config = json.loads((path / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(config, dict):
        return None, None

    def number(key: str) -> float | None:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return float(value)

    return number("temperature"), number("top_p")


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{what} in {path.parent.name} cannot be read ({exc}).",
                             "Download the model again; the file is damaged or incomplete.") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{what} in {path.parent.name} is not a JSON object.",
                             "Download the model again; the file is damaged.")
    return data


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of one safetensors file, checked against the file's real size."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("shorter than its header")
            (n,) = struct.unpack("<Q", raw)
            if n > _MAX_HEADER or n + 8 > size:
                raise ValueError("its header is damaged")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"The weights file {path.name} cannot be read: {exc}.",
                             "Download the model again; the file is damaged or incomplete.") from exc
    end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        missing = 8 + n + end - size
        raise ModelLoadError(
            f"The weights file {path.name} is incomplete: {missing / 2**20:,.1f} MiB are missing at its end.",
            "The download was interrupted. Resume or repeat it, then load the model again.")
    return dict(header)


def read_hf_folder(path: Path) -> HfFolder:
    if not path.is_dir():
        raise ModelLoadError(f"{path} is not a folder.", "Choose a Hugging Face model folder or a GGUF file.")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path.name} has no config.json, so it is not a Hugging Face model folder.",
                             "Choose a GGUF file, or the folder that holds config.json and the .safetensors files.")
    config = _read_json(path / "config.json", "config.json")
    if "auto_map" in config and config.get("model_type") not in ("nemotron_h",):
        raise ModelLoadError(
            f"{path.name} needs the model's own Python code (trust_remote_code), which Nemotron Desk never runs.",
            "Use a model whose architecture transformers supports natively, or its GGUF with llama.cpp.")

    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index, "model.safetensors.index.json").get("weight_map", {})
        names = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        files = [path / name for name in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise ModelLoadError(f"{path.name} is missing {len(missing)} of its {len(files)} weight files: {shown}.",
                                 "The download is incomplete. Resume it, then load the model again.")
    else:
        files = sorted(path.glob("*.safetensors"))
    if not files:
        pt = list(path.glob("*.bin")) + list(path.glob("*.pt"))
        hint = ("It holds PyTorch pickle weights, which can run code when loaded; only safetensors are loaded."
                if pt else "Download the model's .safetensors files into this folder.")
        raise ModelLoadError(f"{path.name} has no .safetensors weights.", hint)

    n_params = size = 0
    dtype_bytes: dict[str, int] = {}
    for file in files:
        for key, tensor in _safetensors_header(file).items():
            if key == "__metadata__":
                continue
            count = 1
            for dim in tensor["shape"]:
                count *= int(dim)
            n_params += count
            dtype = str(tensor["dtype"])
            nbytes = count * _DTYPE_BYTES.get(dtype, 2)
            dtype_bytes[dtype] = dtype_bytes.get(dtype, 0) + nbytes
            size += nbytes
    stored = max(dtype_bytes, key=lambda d: dtype_bytes[d]) if dtype_bytes else "BF16"

    if not (path / "tokenizer.json").is_file():
        raise ModelLoadError(f"{path.name} has no tokenizer.json.",
                             "Download the model's tokenizer files (tokenizer.json, tokenizer_config.json) too.")
    tok_config = _read_json(path / "tokenizer_config.json", "tokenizer_config.json") \
        if (path / "tokenizer_config.json").is_file() else {}
    return HfFolder(path=path, config=config, weight_files=tuple(files), n_params=n_params, size_bytes=size,
                    stored_dtype=stored, chat_template=_chat_template(path, tok_config),
                    tokenizer_config=tok_config)


def _chat_template(path: Path, tok_config: dict[str, Any]) -> str | None:
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        by_name = {str(t.get("name")): t.get("template") for t in template if isinstance(t, dict)}
        template = by_name.get("default") or next(iter(by_name.values()), None)
    if isinstance(template, str) and template:
        return template
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    return None
