"""The standard Hugging Face cache layout, which we share with huggingface_hub and other tools.

    <cache>/models--org--name/blobs/<etag>                    the bytes (etag: sha256 for LFS files)
    <cache>/models--org--name/blobs/<etag>.incomplete         a download in progress (survives restarts)
    <cache>/models--org--name/snapshots/<commit>/<file>       a relative symlink to the blob
    <cache>/models--org--name/refs/main                       the commit `main` pointed to
    <cache>/.locks/models--org--name/<etag>.lock              one writer per blob (huggingface_hub uses it too)

A file appears under snapshots/ only after its bytes were verified, so nothing half-written is listed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from huggingface_hub import constants


def default_cache_dir() -> Path:
    """Where models go: HF_HUB_CACHE / HF_HOME as huggingface_hub reads them, else ~/.cache/huggingface/hub."""
    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE).expanduser()


class RepoCache:
    """Paths of one model repo inside a cache folder."""

    def __init__(self, cache_dir: Path, repo: str) -> None:
        self.cache_dir = Path(cache_dir)
        self.repo = repo
        self.folder = self.cache_dir / ("models--" + repo.replace("/", "--"))

    def blob(self, etag: str) -> Path:
        return self.folder / "blobs" / etag

    def incomplete(self, etag: str) -> Path:
        return self.folder / "blobs" / f"{etag}.incomplete"

    def lock(self, etag: str) -> Path:
        return self.cache_dir / ".locks" / self.folder.name / f"{etag}.lock"

    def snapshot(self, commit: str, path: str) -> Path:
        return self.folder / "snapshots" / commit / path

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
        path = self.folder / "refs" / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(commit)

    def ref(self, ref: str) -> str | None:
        path = self.folder / "refs" / ref
        return path.read_text().strip() if path.is_file() else None
