"""Reads and checks a GGUF file before llama.cpp sees it, so bad files get a clear message.

llama.cpp's own failure for a missing, truncated or foreign file is a bare "failed to load model";
this module says which of those it is and what to do.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from engine.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"

# general.file_type values (llama.cpp's llama_ftype), for display.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
    18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
    25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
    32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}


@dataclass(frozen=True)
class GgufMetadata:
    path: Path
    architecture: str
    name: str
    context_length: int
    chat_template: str
    quantization: str
    size_bytes: int
    block_count: int


class _Truncated(Exception):
    """The header ended before the parser did."""


class _HeaderReader:
    """A forward-only reader of GGUF header values (little-endian, version 2 and 3)."""

    _SCALARS: ClassVar[dict[int, str]] = {
        0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
    }

    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def read(self, n: int) -> bytes:
        data = self._f.read(n)
        if len(data) != n:
            raise _Truncated
        return data

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.read(self.scalar("<Q")).decode("utf-8", "replace")

    def value(self, vtype: int) -> Any:
        """A metadata value; arrays are skipped and reported by their length only."""
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.scalar("<I"), self.scalar("<Q")
            if etype == _STRING:
                for _ in range(count):
                    self._f.seek(self.scalar("<Q"), os.SEEK_CUR)
            elif etype in self._SCALARS:
                self._f.seek(count * struct.calcsize(self._SCALARS[etype]), os.SEEK_CUR)
            else:
                raise ValueError(f"array of unknown type {etype}")
            return _ArrayLength(count)
        if vtype not in self._SCALARS:
            raise ValueError(f"unknown value type {vtype}")
        return self.scalar(self._SCALARS[vtype])


_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class _ArrayLength:
    count: int


def _parse(f: BinaryIO) -> tuple[dict[str, Any], int]:
    """The metadata, and the file size the tensors need."""
    r = _HeaderReader(f)
    if r.read(4) != GGUF_MAGIC:
        raise ValueError("bad magic")
    version = r.scalar("<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = r.scalar("<Q"), r.scalar("<Q")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.scalar("<I"))
    data_end = 0
    for _ in range(n_tensors):
        r.string()
        dims = [r.scalar("<Q") for _ in range(r.scalar("<I"))]
        ttype, offset = r.scalar("<I"), r.scalar("<Q")
        data_end = max(data_end, offset + _tensor_bytes(ttype, dims))
    alignment = int(meta.get("general.alignment", 32))
    data_start = -(-f.tell() // alignment) * alignment
    return meta, data_start + data_end


def _tensor_bytes(ttype: int, dims: list[int]) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
    elements = 1
    for d in dims:
        elements *= d
    return elements // block * size


def read_gguf_metadata(path: str | os.PathLike[str]) -> GgufMetadata:
    """Check that `path` is a complete GGUF file and read what the app shows about it.

    Only the header is read (the vocabulary is skipped, not decoded), so this is fast on 20 GB files.
    """
    p = Path(path).expanduser()
    _check_file(p)
    size = p.stat().st_size
    try:
        with p.open("rb") as f:
            meta, needed = _parse(f)
    except _Truncated:
        raise ModelLoadError(f"{p.name} is incomplete: it ends inside its header ({size:,} bytes).",
                             "The download was interrupted: resume or repeat it.") from None
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{p.name} is not a readable GGUF file ({exc}).",
                             "The file is damaged: download it again.") from exc
    if needed > size:
        raise ModelLoadError(f"{p.name} is incomplete: {size:,} of {needed:,} bytes are there.",
                             "The download was interrupted: resume or repeat it.")
    arch = str(meta.get("general.architecture") or "")
    if not arch:
        raise ModelLoadError(f"{p.name} has no general.architecture entry.",
                             "This is not a model GGUF: choose the model file itself.")
    file_type = meta.get("general.file_type")
    return GgufMetadata(
        path=p,
        architecture=arch,
        name=str(meta.get("general.name") or p.stem),
        context_length=int(meta.get(f"{arch}.context_length") or 0),
        chat_template=str(meta.get("tokenizer.chat_template") or ""),
        quantization=_FILE_TYPES.get(int(file_type), f"type {file_type}") if file_type is not None else "unknown",
        size_bytes=size,
        block_count=int(meta.get(f"{arch}.block_count") or 0),
    )


def _check_file(p: Path) -> None:
    if not p.exists():
        raise ModelLoadError(f"No model file at {p}.", "Check the path, or download the model again.")
    if p.is_dir():
        raise ModelLoadError(f"{p} is a folder, not a GGUF file.",
                             "Choose the .gguf file inside it (Hugging Face folders need the torch backend).")
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read {p}: {exc.strerror}.",
                             "Check the file's permissions and that its disk is mounted.") from exc
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{p.name} is not a GGUF file (it does not start with 'GGUF').",
                             "Choose a .gguf model file (for example a Q4_K_M quant).")
