"""The models on this machine: verified downloads in the Hugging Face cache, and imported files.

Downloads are found by scanning the cache (huggingface_hub's scan_cache_dir), so a model another tool
fetched is listed too; only complete, placed files are there (partial ones are `.incomplete` blobs,
which the scan does not list). Imports are a small JSON list of paths in the app's data folder: a
GGUF file (checked with our header reader) or a Hugging Face folder of a nemotron_h model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import scan_cache_dir
from huggingface_hub.errors import CacheNotFound

from engine.errors import InvalidRequest, ModelLoadError
from engine.formats.gguf import read_gguf_metadata
from engine.formats.hf_folder import read_hf_folder
from engine.services.hub.cache import RepoCache
from engine.services.hub.catalog import LLAMA_CPP, TORCH, quant_of

IMPORTS_FILE = "imported-models.json"
TORCH_MODEL_TYPES = ("nemotron_h",)


@dataclass(frozen=True)
class LocalModel:
    id: str  # `org/name:QUANT` for cache models, the path for imports
    name: str
    path: Path  # what to load: the (first) GGUF file, or the folder
    backend: str
    size_bytes: int
    origin: str  # "downloaded" (Hugging Face cache) or "imported"
    files: tuple[Path, ...] = ()
    repo: str = ""
    commit: str = ""
    missing: bool = False  # an imported path that is gone


class Library:
    def __init__(self, cache_dir: Path, data_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.imports_path = Path(data_dir) / IMPORTS_FILE

    # -- listing ------------------------------------------------------------------------------

    def models(self) -> list[LocalModel]:
        return self.downloaded() + self.imported()

    def downloaded(self) -> list[LocalModel]:
        try:
            info = scan_cache_dir(self.cache_dir)
        except CacheNotFound:
            return []
        found: list[LocalModel] = []
        for repo in sorted(info.repos, key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
                found += _models_of_revision(repo.repo_id, rev.commit_hash, rev.snapshot_path,
                                             [(f.file_path, f.size_on_disk) for f in rev.files])
        return _unique_ids(found)

    def imported(self) -> list[LocalModel]:
        models = []
        for raw in self._read_imports():
            path = Path(raw)
            if not path.exists():
                models.append(LocalModel(str(path), path.name, path, _backend_of(path), 0, "imported", missing=True))
                continue
            files = tuple(sorted(p for p in path.rglob("*") if p.is_file())) if path.is_dir() else (path,)
            models.append(LocalModel(str(path), path.name, path, _backend_of(path),
                                     sum(p.stat().st_size for p in files), "imported", files))
        return models

    def find(self, model_id: str) -> LocalModel:
        for m in self.models():
            if model_id in (m.id, m.name, str(m.path)):
                return m
        known = ", ".join(m.id for m in self.models()) or "none yet"
        raise InvalidRequest(f"No model {model_id!r} in the library.", f"Models here: {known}.")

    # -- changing -----------------------------------------------------------------------------

    def import_path(self, path: Path) -> LocalModel:
        """Add a GGUF file or a Hugging Face folder after checking it is a usable model."""
        path = Path(path).expanduser().resolve()
        if path.is_dir():
            _check_hf_folder(path)
        else:
            read_gguf_metadata(path)  # raises ModelLoadError with what is wrong (missing, truncated, not GGUF)
        paths = self._read_imports()
        if str(path) not in paths:
            self._write_imports([*paths, str(path)])
        return next(m for m in self.imported() if m.path == path)

    def remove(self, model: LocalModel) -> None:
        """Imports are forgotten (the file stays where the person put it); downloads are deleted."""
        if model.origin == "imported":
            self._write_imports([p for p in self._read_imports() if p != str(model.path)])
            return
        rc = RepoCache(self.cache_dir, model.repo)
        snapshot = rc.folder / "snapshots" / model.commit
        blobs = (rc.folder / "blobs").resolve()
        for f in model.files:
            blob = f.resolve() if f.is_symlink() else None
            f.unlink(missing_ok=True)
            # only our own blobs: a link planted in the cache must not make `rm` delete a file elsewhere
            if blob is not None and blob.parent == blobs and not _referenced(blob, rc.folder / "snapshots"):
                blob.unlink(missing_ok=True)
        _remove_empty_dirs(snapshot)
        if not snapshot.exists():
            for ref in (rc.folder / "refs").glob("**/*"):
                if ref.is_file() and ref.read_text().strip() == model.commit:
                    ref.unlink()
        if not any((rc.folder / "snapshots").glob("*")):
            import shutil

            shutil.rmtree(rc.folder, ignore_errors=True)

    def _read_imports(self) -> list[str]:
        try:
            data = json.loads(self.imports_path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            return []  # a damaged list is not worth a crash; imports can be added again
        return [str(p) for p in data if isinstance(p, str)]

    def _write_imports(self, paths: list[str]) -> None:
        self.imports_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.imports_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(paths, indent=1))
        os.replace(tmp, self.imports_path)


def _models_of_revision(repo: str, commit: str, snapshot: Path,
                        files: list[tuple[Path, int]]) -> list[LocalModel]:
    ggufs: dict[str, list[tuple[Path, int]]] = {}
    for path, size in files:
        quant = quant_of(path.name)
        if quant is not None:
            ggufs.setdefault(quant, []).append((path, size))
        elif path.suffix == ".gguf" and not path.name.lower().startswith("mmproj"):
            ggufs.setdefault(path.stem, []).append((path, size))
    models = [
        LocalModel(f"{repo}:{quant}", f"{repo.split('/')[-1]} {quant}", sorted(p for p, _ in group)[0], LLAMA_CPP,
                   sum(s for _, s in group), "downloaded", tuple(sorted(p for p, _ in group)), repo, commit)
        for quant, group in sorted(ggufs.items())
    ]
    if _is_torch_folder(snapshot):
        rest = [(p, s) for p, s in files if p.suffix != ".gguf"]
        models.append(LocalModel(f"{repo}:BF16", f"{repo.split('/')[-1]}", snapshot, TORCH, sum(s for _, s in rest),
                                 "downloaded", tuple(p for p, _ in rest), repo, commit))
    return models


def _unique_ids(models: Iterable[LocalModel]) -> list[LocalModel]:
    """Two revisions of one repo give the same id: the older one gets `@commit` added."""
    seen: set[str] = set()
    out = []
    for m in models:
        if m.id in seen:
            m = LocalModel(f"{m.id}@{m.commit[:8]}", m.name, m.path, m.backend, m.size_bytes, m.origin, m.files,
                           m.repo, m.commit)
        seen.add(m.id)
        out.append(m)
    return out


def _is_torch_folder(folder: Path) -> bool:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return config.get("model_type") in TORCH_MODEL_TYPES and any(folder.glob("*.safetensors"))


def _check_hf_folder(folder: Path) -> None:
    """The torch backend's own checks (shards present and complete, tokenizer, no remote code)."""
    if not _is_torch_folder(folder):
        read_hf_folder(folder)  # says what is missing; a complete folder of another model gets the next line
        raise ModelLoadError(f"{folder} is not a Nemotron-H model (its config.json model_type is not nemotron_h).",
                             "Choose a Nemotron-3-Nano folder, or a GGUF file for other models.")
    read_hf_folder(folder)


def _backend_of(path: Path) -> str:
    return TORCH if path.is_dir() else LLAMA_CPP


def _referenced(blob: Path, snapshots: Path) -> bool:
    return any(p.is_symlink() and p.resolve() == blob for p in snapshots.rglob("*"))


def _remove_empty_dirs(folder: Path) -> None:
    if not folder.is_dir():
        return
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()
