"""Reads and checks a GGUF file before llama.cpp sees it, so bad files get a clear message.

llama.cpp's own failure for a missing, truncated or foreign file is a bare "failed to load model",
and for some damaged headers it aborts the whole process (an assertion on the layer or expert
counts) or loads a model that never answers (a context length past 2**31). So every header field
is checked here, against the file's size and against what llama.cpp can use: counts and lengths
before anything is read or allocated, value types, tensor shapes and offsets, the hyperparameters
llama.cpp asserts on, and the chat template (it must compile). Every failure is a ModelLoadError
that names the field and says what to do; nothing else leaves this module for a damaged file.
"""

from __future__ import annotations

import math
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

#: Longer than any real model's context (the longest are ~10M tokens), far below llama.cpp's int32 limits.
MAX_CONTEXT_LENGTH = 1 << 27
#: llama.cpp's LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS: past these it aborts the process.
MAX_LAYERS = 512
MAX_EXPERTS = 512
#: GGUF keys are at most 65535 bytes; tensor names fit ggml's 64-byte name field.
_MAX_KEY_BYTES = 65535
_MAX_TENSOR_NAME_BYTES = 63
#: String values that are read (not skipped); tokenizer.huggingface.json can be several MB.
_MAX_STRING_BYTES = 64 * 2**20
_MAX_DIMS = 4
#: No GGUF file is larger (split models come in parts of tens of GB).
_MAX_FILE_BYTES = 1 << 40

_DOWNLOAD_AGAIN = "The file is damaged or was written by a broken converter: download it again, or choose another file."
_RESUME = "The download was interrupted: resume or repeat it."

# The integer hyperparameters llama.cpp reads for every architecture, with the range a model can have.
# Per-layer arrays (feed-forward sizes, head counts) are not range-checked.
_HYPERPARAMETERS: dict[str, tuple[int, int]] = {
    "context_length": (1, MAX_CONTEXT_LENGTH),
    "block_count": (1, MAX_LAYERS),
    "embedding_length": (1, 1 << 20),
    "feed_forward_length": (0, 1 << 24),
    "attention.head_count": (0, 1 << 16),
    "attention.head_count_kv": (0, 1 << 16),
    "attention.key_length": (0, 1 << 16),
    "attention.value_length": (0, 1 << 16),
    "rope.dimension_count": (0, 1 << 16),
    "vocab_size": (1, 1 << 24),
    "expert_count": (0, MAX_EXPERTS),
    "expert_used_count": (0, MAX_EXPERTS),
    "expert_group_count": (0, MAX_EXPERTS),
    "expert_group_used_count": (0, MAX_EXPERTS),
}
_REQUIRED = ("context_length", "block_count")
_ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")


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
    #: The generation defaults the file declares (general.sampling.temp / .top_p), None where it does not.
    temperature: float | None = None
    top_p: float | None = None


class _Truncated(Exception):
    """The file ended inside the header; `field` is what was being read."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class _Damaged(Exception):
    """A header field that cannot be right; the text names the field and what is wrong with it."""


_STRING, _ARRAY = 8, 9
_TYPE_NAMES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool", 8: "string",
               9: "array", 10: "u64", 11: "i64", 12: "f64"}
_INTEGER_TYPES = frozenset([0, 1, 2, 3, 4, 5, 10, 11])


@dataclass(frozen=True)
class _Value:
    """A metadata value with its GGUF type; arrays are skipped and kept by element type and length."""

    type: int
    value: Any
    element_type: int | None = None


class _HeaderReader:
    """A forward-only reader of GGUF header values (little-endian, version 2 and 3) that knows the file size.

    Every count and length is checked against what is left of the file before it is used, so a damaged
    header can neither make this allocate nor loop more than the file's own size allows.
    """

    _SCALARS: ClassVar[dict[int, str]] = {
        0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
    }

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._size = size

    def left(self) -> int:
        return self._size - self._f.tell()

    def read(self, n: int, field: str) -> bytes:
        if n > self.left():
            raise _Truncated(field)
        data = self._f.read(n)
        if len(data) != n:
            raise _Truncated(field)
        return data

    def skip(self, n: int, field: str) -> None:
        if n > self.left():
            raise _Truncated(field)
        self._f.seek(n, os.SEEK_CUR)

    def scalar(self, fmt: str, field: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), field))[0]

    def count(self, field: str, min_bytes_each: int) -> int:
        """A u64 count of things that take at least `min_bytes_each` bytes each in the rest of the file.

        A count no file could hold is damage; one this file cannot hold is read until the file ends
        (a cut download): either way nothing is allocated for it, and each step consumes bytes.
        """
        n: int = self.scalar("<Q", field)
        if n * min_bytes_each > _MAX_FILE_BYTES:
            raise _Damaged(f"{field} is {n:,}, more than any file can hold")
        return n

    def string_bytes(self, field: str, limit: int) -> bytes:
        n: int = self.scalar("<Q", f"the length of {field}")
        if n > limit:
            raise _Damaged(f"{field} claims to be {n:,} bytes long (at most {limit:,} are expected)")
        return self.read(n, field)

    def text(self, field: str, limit: int) -> str:
        raw = self.string_bytes(field, limit)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Damaged(f"{field} is not valid UTF-8 text") from None

    def skip_string(self, field: str) -> None:
        n: int = self.scalar("<Q", f"the length of {field}")
        if n > _MAX_STRING_BYTES:
            raise _Damaged(f"{field} claims to be {n:,} bytes long (at most {_MAX_STRING_BYTES:,} are expected)")
        self.skip(n, field)

    def value(self, vtype: int, key: str, wanted: bool) -> _Value:
        """The value of `key`; `wanted` strings are decoded, others skipped. Arrays are skipped."""
        field = f"the value of '{key}'"
        if vtype == _STRING:
            if wanted:
                return _Value(vtype, self.text(field, _MAX_STRING_BYTES))
            self.skip_string(field)
            return _Value(vtype, None)
        if vtype == _ARRAY:
            etype: int = self.scalar("<I", field)
            if etype == _STRING:
                count = self.count(f"the length of the array '{key}'", 8)
                for i in range(count):
                    self.skip_string(f"item {i} of '{key}'")
            elif etype in self._SCALARS:
                count = self.count(f"the length of the array '{key}'", struct.calcsize(self._SCALARS[etype]))
                self.skip(count * struct.calcsize(self._SCALARS[etype]), field)
            elif etype == _ARRAY:
                raise _Damaged(f"'{key}' is an array of arrays, which GGUF readers do not support")
            else:
                raise _Damaged(f"'{key}' is an array of unknown type {etype}")
            return _Value(vtype, count, etype)
        if vtype not in self._SCALARS:
            raise _Damaged(f"'{key}' has unknown value type {vtype}")
        return _Value(vtype, self.scalar(self._SCALARS[vtype], field))


# -- the header ---------------------------------------------------------------------------------------


def _parse(f: BinaryIO, size: int) -> tuple[dict[str, _Value], int]:
    """The metadata, and the file size the tensors need."""
    r = _HeaderReader(f, size)
    if r.read(4, "the magic number") != GGUF_MAGIC:
        raise _Damaged("it does not start with 'GGUF'")
    version: int = r.scalar("<I", "the version")
    if version not in (2, 3):
        raise _Damaged(f"its GGUF version is {version} (this app reads versions 2 and 3)")
    n_tensors = r.count("the tensor count", 8 + 4 + 4 + 8)  # name length, dims count, type, offset
    n_kv = r.count("the metadata count", 8 + 1 + 4 + 1)  # key length, a key byte, type, a value byte
    meta = _read_metadata(r, n_kv)
    alignment = _alignment(meta)
    data_end = _read_tensor_infos(r, n_tensors, alignment)
    data_start = -(-f.tell() // alignment) * alignment
    return meta, data_start + data_end


def _wanted(key: str) -> bool:
    """String values worth decoding: ours, and what the hyperparameter checks read. The rest is skipped."""
    return key in ("general.architecture", "general.name", "tokenizer.chat_template") \
        or key.endswith(".rope.scaling.type")


def _read_metadata(r: _HeaderReader, n_kv: int) -> dict[str, _Value]:
    meta: dict[str, _Value] = {}
    for i in range(n_kv):
        key = r.text(f"the name of metadata entry {i}", _MAX_KEY_BYTES)
        if not key:
            raise _Damaged(f"metadata entry {i} has an empty name")
        if key in meta:
            raise _Damaged(f"the key '{key}' appears twice")
        meta[key] = r.value(r.scalar("<I", f"the type of '{key}'"), key, _wanted(key))
    return meta


def _alignment(meta: dict[str, _Value]) -> int:
    entry = meta.get("general.alignment")
    if entry is None:
        return 32
    if entry.type not in _INTEGER_TYPES:
        raise _Damaged(f"'general.alignment' should be an integer, not {_kind(entry)}")
    value = int(entry.value)
    if value <= 0 or value & (value - 1) or value > 1 << 30:
        raise _Damaged(f"'general.alignment' is {value:,} (it must be a power of two)")
    return value


def _read_tensor_infos(r: _HeaderReader, n_tensors: int, alignment: int) -> int:
    """Check every tensor's name, shape, type and offset; return where the last one's data ends."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    names: set[str] = set()
    data_end = 0
    for i in range(n_tensors):
        name = r.text(f"the name of tensor {i}", _MAX_TENSOR_NAME_BYTES)
        label = f"tensor '{name}'"
        if name in names:
            raise _Damaged(f"{label} appears twice")
        names.add(name)
        n_dims: int = r.scalar("<I", f"the dimension count of {label}")
        if n_dims > _MAX_DIMS:
            raise _Damaged(f"{label} has {n_dims:,} dimensions (at most {_MAX_DIMS})")
        dims = [r.scalar("<Q", f"the shape of {label}") for _ in range(n_dims)]
        ttype: int = r.scalar("<I", f"the data type of {label}")
        offset: int = r.scalar("<Q", f"the data offset of {label}")
        try:
            block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
        except (ValueError, KeyError):
            raise _Damaged(f"{label} has data type {ttype}, which this app's GGUF reader does not know") from None
        elements = 1
        for d in dims:
            elements *= d
        if elements >= 1 << 63:
            raise _Damaged(f"{label} has shape {dims}, too large for any file")
        if dims and dims[0] % block:
            raise _Damaged(f"{label}'s first dimension ({dims[0]:,}) is not a multiple of its type's block ({block})")
        if offset % alignment:
            raise _Damaged(f"{label}'s data offset ({offset:,}) is not a multiple of the alignment ({alignment})")
        data_end = max(data_end, offset + elements // block * block_bytes)
    return data_end


# -- what the app reads from it ------------------------------------------------------------------------


def read_gguf_metadata(path: str | os.PathLike[str]) -> GgufMetadata:
    """Check that `path` is a complete, sound GGUF file and read what the app shows about it.

    Only the header is read (the vocabulary is skipped, not decoded), so this is fast on 20 GB files.
    Raises ModelLoadError, naming the damaged field, for anything llama.cpp could not use.
    """
    p = Path(path).expanduser()
    _check_file(p)
    size = p.stat().st_size
    try:
        with p.open("rb") as f:
            meta, needed = _parse(f, size)
        if needed > size:
            raise ModelLoadError(f"{p.name} is incomplete: {size:,} of {needed:,} bytes are there.", _RESUME)
        return _metadata(p, size, meta)
    except _Truncated as exc:
        raise ModelLoadError(f"{p.name} is incomplete: it ends inside its header (in {exc.field}, at {size:,} "
                             "bytes).", _RESUME) from None
    except _Damaged as exc:
        raise ModelLoadError(f"{p.name} is damaged: {exc}.", _DOWNLOAD_AGAIN) from None
    except OSError as exc:
        raise ModelLoadError(f"Cannot read {p}: {exc.strerror or exc}.",
                             "Check the file's permissions and that its disk is mounted.") from exc


def _metadata(p: Path, size: int, meta: dict[str, _Value]) -> GgufMetadata:
    arch = _text(meta, "general.architecture")
    if not arch:
        raise ModelLoadError(f"{p.name} has no general.architecture entry.",
                             "This is not a model GGUF: choose the model file itself.")
    _check_hyperparameters(meta, arch)
    template = _text(meta, "tokenizer.chat_template")
    if template:
        from engine.generate.templates.sandbox import compile_template

        compile_template(template)  # raises ModelLoadError: the template does not parse, or is absurdly long
    file_type = _integer(meta, "general.file_type")
    return GgufMetadata(
        path=p,
        architecture=arch,
        name=_text(meta, "general.name") or p.stem,
        context_length=_integer(meta, f"{arch}.context_length") or 0,
        chat_template=template,
        quantization=_FILE_TYPES.get(file_type, f"type {file_type}") if file_type is not None else "unknown",
        size_bytes=size,
        block_count=_integer(meta, f"{arch}.block_count") or 0,
        temperature=_number(meta, "general.sampling.temp"),
        top_p=_number(meta, "general.sampling.top_p"),
    )


def _text(meta: dict[str, _Value], key: str) -> str:
    entry = meta.get(key)
    if entry is None:
        return ""
    if entry.type != _STRING:
        raise _Damaged(f"'{key}' should be text, not {_kind(entry)}")
    return str(entry.value)


def _integer(meta: dict[str, _Value], key: str) -> int | None:
    entry = meta.get(key)
    if entry is None:
        return None
    if entry.type not in _INTEGER_TYPES:
        raise _Damaged(f"'{key}' should be an integer, not {_kind(entry)}")
    return int(entry.value)


def _number(meta: dict[str, _Value], key: str) -> float | None:
    """A numeric value, or None where it is absent or not a finite number (a default, never an error)."""
    entry = meta.get(key)
    if entry is None or entry.type not in (*_INTEGER_TYPES, 6, 12):
        return None
    value = float(entry.value)
    return value if math.isfinite(value) else None


def _kind(entry: _Value) -> str:
    """What a value is, for a message: "text", "a number of type f32", "an array of 3 text values"."""
    if entry.type == _ARRAY and entry.element_type is not None:
        element = "text" if entry.element_type == _STRING else _TYPE_NAMES.get(entry.element_type, "?")
        return f"an array of {entry.value:,} {element} values"
    if entry.type == _STRING:
        return "text"
    return f"a number of type {_TYPE_NAMES.get(entry.type, entry.type)}" if entry.type != 7 else "a true/false value"


def _check_hyperparameters(meta: dict[str, _Value], arch: str) -> None:
    """The ranges of the hyperparameters every architecture has, and the expert counts' relations
    that llama.cpp asserts on (a failed assertion ends the whole process, not just the load)."""
    values: dict[str, int] = {}
    for name, (low, high) in _HYPERPARAMETERS.items():
        key = f"{arch}.{name}"
        entry = meta.get(key)
        if entry is None:
            if name in _REQUIRED:
                raise _Damaged(f"it has no '{key}' entry, which llama.cpp needs")
            continue
        if entry.type == _ARRAY and entry.element_type in _INTEGER_TYPES and name not in _REQUIRED:
            continue  # per-layer values (feed-forward sizes, head counts)
        value = _integer(meta, key)
        assert value is not None
        if not low <= value <= high:
            raise _Damaged(f"'{key}' is {value:,} (a model has {low:,} to {high:,})")
        values[name] = value
    experts, used = values.get("expert_count", 0), values.get("expert_used_count", 0)
    groups, groups_used = values.get("expert_group_count", 0), values.get("expert_group_used_count", 0)
    if used > experts or (experts > 0) != (used > 0):
        raise _Damaged(f"'{arch}.expert_used_count' is {used:,} with {experts:,} experts")
    if experts == 0 and groups:
        raise _Damaged(f"'{arch}.expert_group_count' is {groups:,} with no experts")
    if experts and (groups >= experts or (groups > 1 and (experts % groups or not 0 < groups_used < groups))):
        raise _Damaged(f"the expert groups ({groups:,}, {groups_used:,} used) do not divide the {experts:,} experts")
    scaling = _text(meta, f"{arch}.rope.scaling.type")
    if scaling and scaling not in _ROPE_SCALING_TYPES:
        raise _Damaged(f"'{arch}.rope.scaling.type' is '{scaling[:40]}' "
                       f"(llama.cpp knows {', '.join(_ROPE_SCALING_TYPES)})")


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
