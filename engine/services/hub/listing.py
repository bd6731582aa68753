"""A Hub listing, checked: every value in it is validated before it becomes a path, a size or a name.

The listing comes from whatever endpoint HF_ENDPOINT or --endpoint names, so nothing in it is trusted.
A file name is joined under snapshots/<commit>/, so it must be a relative POSIX path of safe parts;
a commit names a folder, so it must be a 40-hex git sha; a digest names a blob and a lock file, so it
must be a 64-hex sha256 (LFS) or a 40-hex git blob id; a size is a whole number of bytes within
MAX_FILE_BYTES. A value that fails is refused with an UntrustedHub error that names it, before
anything is written. RepoCache checks the same values again where it builds paths.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from engine.errors import EngineError

MAX_FILE_BYTES = 1 << 40  # 1 TiB: far above the largest Nemotron file (the 63 GB BF16 folder is in shards)
MAX_FILES = 10_000
MAX_NAME_CHARS = 1024
MAX_PART_BYTES = 255  # the longest file name Linux, macOS and Windows file systems take

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Windows refuses these in names (a colon is also a drive or an alternate data stream there)
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})
# control, format (bidi overrides, zero-width), surrogate, private-use and line/paragraph separators
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


class UntrustedHub(EngineError):
    """A listing value that would write outside the cache, or that no honest Hub sends."""

    kind = "untrusted_hub"

    def __init__(self, what: str, value: object, reason: str, endpoint: str = "", of: str = "") -> None:
        where = f"The Hub at {endpoint}" if endpoint else "The Hub"
        for_file = f" for {shown(of)}" if of else ""
        super().__init__(
            f"{where} sent {what} {shown(value)}{for_file}: it {reason}. This endpoint is not trustworthy: "
            "the download was refused and nothing was written.",
            "Download from the official Hub (unset HF_ENDPOINT, leave out --endpoint), or ask whoever runs "
            "that endpoint to fix its listing.")
        self.what = what
        self.value = value


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo revision, as the Hub lists it (checked)."""

    path: str
    size: int
    sha256: str | None  # LFS files: the sha256 of the content; small git files have none
    blob_id: str  # git object id (the etag of a non-LFS file)

    @property
    def etag(self) -> str:
        """The name the Hugging Face cache gives this file's blob (what the Hub's ETag says)."""
        return self.sha256 or self.blob_id


def shown(value: object, limit: int = 120) -> str:
    """The value as a person can read it: quoted, with NUL and control characters escaped, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


# -- single values ------------------------------------------------------------------------------------

def file_name(value: object, endpoint: str = "") -> str:
    """A relative POSIX path of safe parts (refused otherwise, with the reason)."""
    reason = _file_name_problem(value)
    if reason:
        raise UntrustedHub("the file name", value, reason, endpoint)
    assert isinstance(value, str)
    return value


def _file_name_problem(value: object) -> str:
    if not isinstance(value, str):
        return f"is not text but {type(value).__name__}"
    if not value:
        return "is empty"
    if len(value) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    for ch in value:
        if ch == "\0":
            return "contains a NUL character"
        if unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            return f"contains the control or invisible character U+{ord(ch):04X}"
    if "\\" in value:
        return "contains a backslash (a Windows path separator)"
    if value.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(value):
        return "names a drive"
    return next((p for p in map(_part_problem, value.split("/")) if p), "")


def _part_problem(part: str) -> str:
    if part == "..":
        return "climbs out of its folder ('..')"
    if part in ("", "."):
        return "has an empty or '.' part"
    if len(part.encode()) > MAX_PART_BYTES:
        return f"has a part longer than {MAX_PART_BYTES} bytes"
    bad = sorted(set(part) & _WINDOWS_FORBIDDEN)
    if bad:
        return f"contains {bad[0]!r}, which Windows does not allow in file names"
    if part[-1] in ". " or part[0] == " ":
        return "has a part that starts with a space or ends with a dot or a space"
    if part.split(".")[0].lower() in _WINDOWS_DEVICES:
        return "is a Windows device name"
    return ""


def commit(value: object, endpoint: str = "") -> str:
    if isinstance(value, str) and _HEX40.fullmatch(value):
        return value.lower()
    raise UntrustedHub("the commit", value, "is not a 40-character hexadecimal git sha", endpoint)


def sha256(value: object, endpoint: str = "", of: str = "") -> str:
    if isinstance(value, str) and _HEX64.fullmatch(value):
        return value.lower()
    raise UntrustedHub("the sha256", value, "is not 64 hexadecimal characters", endpoint, of)


def blob_id(value: object, endpoint: str = "", of: str = "") -> str:
    if isinstance(value, str) and _HEX40.fullmatch(value):
        return value.lower()
    raise UntrustedHub("the git blob id", value, "is not 40 hexadecimal characters", endpoint, of)


def etag(value: object) -> str:
    """A blob name: a sha256 (LFS) or a git blob id."""
    if isinstance(value, str) and (_HEX64.fullmatch(value) or _HEX40.fullmatch(value)):
        return value.lower()
    raise UntrustedHub("a blob name", value, "is neither a sha256 nor a git blob id")


def size(value: object, endpoint: str = "", of: str = "") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UntrustedHub("the size", value, "is not a whole number of bytes", endpoint, of)
    if value < 0:
        raise UntrustedHub("the size", value, "is negative", endpoint, of)
    if value > MAX_FILE_BYTES:
        raise UntrustedHub("the size", value, "is more than 1 TiB, larger than any model file", endpoint, of)
    return value


def repo_id(value: object) -> str:
    """`org/name` (or a legacy bare `name`) of safe parts: the cache folder is named after it."""
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) in (1, 2) and all(_REPO_PART.fullmatch(p) and ".." not in p for p in parts):
        assert isinstance(value, str)
        return value
    raise UntrustedHub("the repository id", value, "is not of the form org/name")


# -- a whole listing ----------------------------------------------------------------------------------

def checked_files(siblings: object, endpoint: str = "") -> list[RemoteFile]:
    """The listing's files, every value checked; also no name twice and no name both a file and a folder."""
    if siblings is None:
        return []
    if not isinstance(siblings, list):
        raise UntrustedHub("a file list", type(siblings).__name__, "is not a list", endpoint)
    if len(siblings) > MAX_FILES:
        raise UntrustedHub("a file list of", len(siblings), f"is more than {MAX_FILES:,} files", endpoint)
    files = [_checked_file(s, endpoint) for s in siblings]
    _check_no_clashes([f.path for f in files], endpoint)
    return files


def _checked_file(sibling: object, endpoint: str) -> RemoteFile:
    path = file_name(getattr(sibling, "rfilename", None), endpoint)
    lfs = getattr(sibling, "lfs", None)
    listed = getattr(sibling, "size", None)
    n = size(listed if listed is not None else getattr(lfs, "size", None), endpoint, path)
    raw_blob = getattr(sibling, "blob_id", None)
    if lfs is None:
        return RemoteFile(path, n, None, blob_id(raw_blob, endpoint, path))
    digest = sha256(getattr(lfs, "sha256", None), endpoint, path)
    lfs_size = getattr(lfs, "size", None)
    if lfs_size is not None and size(lfs_size, endpoint, path) != n:
        raise UntrustedHub("the LFS size", lfs_size, f"differs from the listed size {n:,}", endpoint, path)
    return RemoteFile(path, n, digest, blob_id(raw_blob, endpoint, path) if raw_blob is not None else "")


def _check_no_clashes(paths: list[str], endpoint: str) -> None:
    # casefold: on the case-insensitive file systems of macOS and Windows, A.gguf and a.gguf are one file
    seen: set[str] = set()
    for path in paths:
        key = path.casefold()
        if key in seen:
            raise UntrustedHub("the file name", path, "is listed twice", endpoint)
        seen.add(key)
    for path in paths:
        parts = path.casefold().split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in seen:
                raise UntrustedHub("the file name", path, "lies inside a folder that is also listed as a file",
                                   endpoint)
