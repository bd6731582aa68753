"""The Nemotron-3-Nano variants people download: which repo, which files, how big, which backend.

Read from the Hub API when it answers (files, sizes, sha256), every value checked by
engine/services/hub/listing.py; otherwise a built-in list with the sizes known from public listings, so the
wizard can still show choices and fit estimates offline. A listing that fails the checks is refused
(UntrustedHub), never used, and the built-in list says why it stands in.
A variant id is `source:QUANT` (`unsloth:Q4_K_M`, `nvidia:BF16`); a bare quant means the unsloth repo.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from huggingface_hub import HfApi

from engine.errors import InvalidRequest
from engine.services.hub import listing
from engine.services.hub.listing import RemoteFile, UntrustedHub

log = logging.getLogger(__name__)

GIB = 1024**3
GB = 1000**3

LLAMA_CPP = "llama.cpp"
TORCH = "torch"

#: source name -> Hub repository. "nvidia" is the BF16 safetensors folder for the torch backend.
SOURCES: dict[str, str] = {
    "unsloth": "unsloth/Nemotron-3-Nano-30B-A3B-GGUF",
    "ggml-org": "ggml-org/Nemotron-Nano-3-30B-A3B-GGUF",
    "bartowski": "bartowski/nvidia_Nemotron-3-Nano-30B-A3B-GGUF",
    "nvidia": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
}
DEFAULT_SOURCE = "unsloth"
TORCH_SOURCE = "nvidia"

_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
_QUANT = re.compile(r"(?:^|[-_.])((?:UD-)?(?:I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32|MXFP4(?:_MOE)?))$", re.IGNORECASE)


@dataclass(frozen=True)
class Variant:
    source: str
    repo: str
    quant: str
    backend: str
    size_bytes: int
    files: tuple[RemoteFile, ...] = ()
    revision: str = "main"  # a commit sha once read from the Hub
    gated: bool = False
    from_hub: bool = False  # False: the built-in list (sizes from public listings, files not known yet)

    @property
    def id(self) -> str:
        return f"{self.source}:{self.quant}"

    @property
    def label(self) -> str:
        kind = "safetensors" if self.backend == TORCH else "GGUF"
        return f"{self.quant} {kind} ({self.source})"


FALLBACK: tuple[Variant, ...] = (
    Variant("unsloth", SOURCES["unsloth"], "Q4_0", LLAMA_CPP, int(17.0 * GIB)),
    Variant("unsloth", SOURCES["unsloth"], "IQ4_XS", LLAMA_CPP, int(18.2 * GB)),
    Variant("unsloth", SOURCES["unsloth"], "Q4_K_M", LLAMA_CPP, int(22.8 * GIB)),
    Variant("unsloth", SOURCES["unsloth"], "Q5_K_M", LLAMA_CPP, int(24.4 * GIB)),
    Variant("nvidia", SOURCES["nvidia"], "BF16", TORCH, 63 * GB),
)


@dataclass(frozen=True)
class Catalog:
    variants: tuple[Variant, ...]
    online: bool
    problems: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()  # listings refused as untrustworthy: what was wrong, for the person to read

    def find(self, variant_id: str) -> Variant:
        source, quant = parse_id(variant_id)
        for v in self.variants:
            if v.source == source and v.quant.upper() == quant.upper():
                return v
        known = ", ".join(v.id for v in self.variants)
        raise InvalidRequest(f"There is no variant {variant_id!r}.", f"Choose one of: {known}.")


def parse_id(variant_id: str) -> tuple[str, str]:
    source, _, quant = variant_id.rpartition(":")
    if not source:
        source = TORCH_SOURCE if quant.upper() in ("BF16-SAFETENSORS", "SAFETENSORS") else DEFAULT_SOURCE
        quant = "BF16" if source == TORCH_SOURCE else quant
    if source not in SOURCES:
        raise InvalidRequest(f"Unknown source {source!r} in {variant_id!r}.", f"Use one of: {', '.join(SOURCES)}.")
    return source, quant


def quant_of(filename: str) -> str | None:
    """`Nemotron-3-Nano-30B-A3B-UD-Q4_K_XL-00001-of-00002.gguf` -> `UD-Q4_K_XL`; None if not a model GGUF."""
    name = filename.rsplit("/", 1)[-1]
    if not name.lower().endswith(".gguf") or name.lower().startswith("mmproj"):
        return None
    match = _QUANT.search(_SHARD.sub("", name[: -len(".gguf")]))
    return match.group(1).upper() if match else None


def _model_info(api: HfApi, repo: str, token: str | bool | None) -> Any:
    try:
        return api.model_info(repo, files_metadata=True, token=token)
    except (KeyError, TypeError, AttributeError) as exc:  # the hub client could not even parse the listing
        raise UntrustedHub(f"a model listing for {repo}", f"{type(exc).__name__}: {exc}",
                           "is malformed (the Hugging Face client cannot read it)", api.endpoint) from None


def variants_of_repo(api: HfApi, source: str, token: str | bool | None = None) -> list[Variant]:
    """Every variant one repo offers, read from the Hub (raises the hub client's errors, and UntrustedHub
    for a listing whose names, commit, digests or sizes fail the checks)."""
    repo = SOURCES[source]
    info = _model_info(api, repo, token)
    files = listing.checked_files(getattr(info, "siblings", None), api.endpoint)
    sha = listing.commit(getattr(info, "sha", None), api.endpoint)
    gated = bool(getattr(info, "gated", False))
    if source == TORCH_SOURCE:
        return [Variant(source, repo, "BF16", TORCH, sum(f.size for f in files), tuple(files), sha, gated, True)]
    groups: dict[str, list[RemoteFile]] = {}
    for f in files:
        quant = quant_of(f.path)
        if quant:
            groups.setdefault(quant, []).append(f)
    return [
        Variant(source, repo, q, LLAMA_CPP, sum(f.size for f in fs), tuple(sorted(fs, key=lambda f: f.path)),
                sha, gated, True)
        for q, fs in groups.items()
    ]


def load_catalog(api: HfApi, sources: tuple[str, ...] = tuple(SOURCES), token: str | bool | None = None) -> Catalog:
    """The variants of all sources; a source the Hub does not answer for falls back to the built-in list."""
    found: list[Variant] = []
    problems: list[str] = []
    refused: list[str] = []
    online = False
    for source in sources:
        try:
            found += variants_of_repo(api, source, token)
            online = True
        except UntrustedHub as exc:
            log.warning("Refused the listing of %s: %s", source, exc.message)
            problems.append(f"{SOURCES[source]}: refused")
            refused.append(exc.message)
            found += [v for v in FALLBACK if v.source == source]
        except Exception as exc:  # offline, gated listing, a proxy page...: none of them should stop the list
            log.info("Hub did not answer for %s: %s", source, exc)
            problems.append(f"{SOURCES[source]}: {type(exc).__name__}")
            found += [v for v in FALLBACK if v.source == source]
    found.sort(key=lambda v: (v.backend != LLAMA_CPP, list(SOURCES).index(v.source), v.size_bytes))
    return Catalog(tuple(found), online, tuple(problems), tuple(refused))


def resolve(api: HfApi, variant_id: str, token: str | bool | None = None) -> Variant:
    """The variant with its files and commit, read from the Hub now (downloads need the real list)."""
    source, quant = parse_id(variant_id)
    variants = variants_of_repo(api, source, token)
    for v in variants:
        if v.quant.upper() == quant.upper():
            return v
    known = ", ".join(v.id for v in variants) or "none"
    raise InvalidRequest(f"{SOURCES[source]} has no {quant} files.", f"Variants there: {known}.")
