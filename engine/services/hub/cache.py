"""The standard Hugging Face cache layout, which we share with huggingface_hub and other tools.

    <cache>/models--org--name/blobs/<etag>                    the bytes (etag: sha256 for LFS files)
    <cache>/models--org--name/blobs/<etag>.incomplete         a download in progress (survives restarts)
    <cache>/models--org--name/snapshots/<commit>/<file>       a relative symlink to the blob
    <cache>/models--org--name/refs/main                       the commit `main` pointed to
    <cache>/.locks/models--org--name/<etag>.lock              one writer per blob (huggingface_hub uses it too)

A file appears under snapshots/ only after its bytes were verified, so nothing half-written is listed.

Every path is built from checked parts (engine/services/hub/listing.py: a safe repo id, file name, commit and
blob name) and then resolved, symbolic links followed, and refused (UnsafePath) unless it stays inside
the cache folder: a link planted in the cache cannot lead a write elsewhere either.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from huggingface_hub import constants

from engine.errors import EngineError
from engine.services.hub import listing


class UnsafePath(EngineError):
    """A path in the cache resolves outside it (through a symbolic link)."""

    kind = "unsafe_path"


def default_cache_dir() -> Path:
    """Where models go: HF_HUB_CACHE / HF_HOME as huggingface_hub reads them, else ~/.cache/huggingface/hub."""
    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE).expanduser()


class RepoCache:
    """Paths of one model repo inside a cache folder."""

    def __init__(self, cache_dir: Path, repo: str) -> None:
        self.cache_dir = Path(cache_dir)
        self.repo = listing.repo_id(repo)
        self.folder = self.cache_dir / ("models--" + repo.replace("/", "--"))

    def blob(self, etag: str) -> Path:
        return self.inside(self.folder / "blobs" / listing.etag(etag))

    def incomplete(self, etag: str) -> Path:
        return self.inside(self.folder / "blobs" / f"{listing.etag(etag)}.incomplete")

    def lock(self, etag: str) -> Path:
        return self.inside(self.cache_dir / ".locks" / self.folder.name / f"{listing.etag(etag)}.lock")

    def snapshot(self, commit: str, path: str) -> Path:
        """snapshots/<commit>/<path>; `path` "" is the snapshot folder itself."""
        folder = self.folder / "snapshots" / listing.commit(commit)
        return self.inside(folder / listing.file_name(path) if path else folder)

    def inside(self, path: Path) -> Path:
        """`path`, after checking that it resolves (links followed) to a place inside the cache folder."""
        root = os.path.realpath(self.cache_dir)
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            raise UnsafePath(
                f"{path} leads outside the cache folder {root} (to {real}), through a symbolic link; "
                "nothing was written there.",
                "Remove that link from the cache, or set HF_HUB_CACHE to the folder where models should go.")
        return path

    def has(self, commit: str, path: str) -> bool:
        """The file is in the cache for this commit (placed by us, huggingface_hub or another tool)."""
        return self.snapshot(commit, path).is_file()

    def place(self, etag: str, commit: str, path: str) -> Path:
        """Link snapshots/<commit>/<path> to the blob; copy where the system has no symlinks."""
        target = self.snapshot(commit, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = self.blob(etag)
        if target.is_symlink() or target.exists():
            target.unlink()
        try:
            target.symlink_to(os.path.relpath(blob, target.parent))
        except OSError:  # Windows without developer mode: huggingface_hub moves the blob instead, so do we
            shutil.move(blob, target)
        return target

    def link_existing_blob(self, etag: str, commit: str, path: str) -> bool:
        """A blob another revision already holds is linked, not downloaded again."""
        if self.blob(etag).is_file():
            self.place(etag, commit, path)
            return True
        return False

    def set_ref(self, ref: str, commit: str) -> None:
        path = self.inside(self.folder / "refs" / listing.file_name(ref))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(listing.commit(commit))

    def ref(self, ref: str) -> str | None:
        path = self.inside(self.folder / "refs" / listing.file_name(ref))
        return path.read_text().strip() if path.is_file() else None
