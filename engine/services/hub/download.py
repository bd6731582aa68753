"""Downloads a variant into the Hugging Face cache: resumable, verified, never half-listed.

huggingface_hub answers the questions (which files, which commit, their sha256, may this token read
them); the bytes come through our own ranged GET, because huggingface_hub 2.x deletes a partial file
when a download fails. Bytes go to `blobs/<etag>.incomplete`, which survives a dropped connection, a
pause, a killed process or a restart; the next run asks for the rest with a Range header. A file is
moved to its blob name and linked into `snapshots/` only after its sha256 (LFS) or git blob id
(small files) matched what the Hub lists, so a corrupt or partial file is never offered as a model.

The endpoint is not trusted: the listing is checked before any path is built (engine/services/hub/listing.py),
every path is checked to stay in the cache (engine/services/hub/cache.py), no more bytes are written than the
listing gives, and a redirect is followed only to an http(s) address (https only, from an https
endpoint), at most MAX_REDIRECTS times, without the token once it leaves the endpoint's origin.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from filelock import FileLock, Timeout
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils._headers import build_hf_headers

from engine.errors import EngineError
from engine.services.hub.cache import RepoCache, default_cache_dir
from engine.services.hub.catalog import TORCH, Variant, resolve
from engine.services.hub.hardware import disk_free, existing_parent, gb
from engine.services.hub.listing import RemoteFile, shown

CHUNK = 1 << 20
DISK_RESERVE = 32 * 1024**2  # leave a little room so the system does not run completely dry
MAX_REDIRECTS = 5  # the Hub sends one (to its CDN); a chain longer than this is a loop or a trap


class DownloadError(EngineError):
    kind = "download"


class NotEnoughDisk(DownloadError):
    kind = "disk"


class AuthRequired(DownloadError):
    """The repo is gated or private: a token with access is needed. `had_token`: one was sent."""

    kind = "auth"

    def __init__(self, message: str, action: str, repo: str, had_token: bool) -> None:
        super().__init__(message, action)
        self.repo = repo
        self.had_token = had_token


class VerificationFailed(DownloadError):
    kind = "corrupt"


class UnsafeRedirect(DownloadError):
    """The endpoint sent a download somewhere it must not go (another scheme, https to plain http, a loop)."""

    kind = "untrusted_hub"

    def __init__(self, endpoint: str, target: str, reason: str) -> None:
        super().__init__(f"The Hub at {endpoint} redirected a download to {shown(target)}: {reason}. This endpoint "
                         "is not trustworthy: the download was refused and nothing was written.",
                         "Download from the official Hub (unset HF_ENDPOINT, leave out --endpoint), or ask "
                         "whoever runs that endpoint to fix it.")


class DownloadStopped(Exception):
    """Paused or cancelled by the person; a pause keeps the partial files, a cancel deletes them."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("cancelled" if cancelled else "paused")
        self.cancelled = cancelled


class _Retryable(Exception):
    pass


class _TooLong(Exception):
    """The server sent more bytes than the listing gives for the file."""


@dataclass(frozen=True)
class Progress:
    file: str
    file_index: int  # 1-based
    file_count: int
    done: int  # bytes of the whole variant that are on disk
    total: int
    speed: float  # bytes per second, over the last few seconds
    eta_s: float | None
    note: str = ""  # "checking 2 GB already fetched", "retrying in 2 s: connection dropped", "verifying"

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


class Control:
    """Set from any thread; the download checks it between chunks."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.cancelled = False

    def pause(self) -> None:
        self._stop.set()

    def cancel(self) -> None:
        self.cancelled = True
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        if self._stop.is_set():
            raise DownloadStopped(self.cancelled)

    def sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise DownloadStopped(self.cancelled)


ProgressCallback = Callable[[Progress], None]


class _Meter:
    """Bytes done, speed over a sliding window, throttled reports."""

    WINDOW_S = 4.0

    def __init__(self, total: int, callback: ProgressCallback | None, file_count: int) -> None:
        self.total, self.callback, self.file_count = total, callback, file_count
        self.done = 0
        self.file, self.index = "", 0
        self._samples: deque[tuple[float, int]] = deque()
        self._last_report = 0.0

    def speed(self) -> float:
        now = time.monotonic()
        while self._samples and now - self._samples[0][0] > self.WINDOW_S:
            self._samples.popleft()
        if not self._samples:
            return 0.0
        t0, d0 = self._samples[0]
        return (self.done - d0) / (now - t0) if now - t0 > 0.2 else 0.0

    def add(self, n: int, fetched: bool = True) -> None:
        if fetched and not self._samples:
            self._samples.append((time.monotonic(), self.done))
        self.done += n
        if fetched:
            self._samples.append((time.monotonic(), self.done))
        if time.monotonic() - self._last_report > 0.1:
            self.report()

    def report(self, note: str = "") -> None:
        self._last_report = time.monotonic()
        if self.callback is None:
            return
        speed = self.speed()
        eta = (self.total - self.done) / speed if speed > 0 else None
        self.callback(Progress(self.file, self.index, self.file_count, self.done, self.total, speed, eta, note))


def _git_blob_hasher(size: int) -> Any:
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % size)
    return h


class Downloader:
    """Fetches variants into `cache_dir` (default: the Hugging Face cache) from `endpoint` (default: HF_ENDPOINT)."""

    def __init__(
        self,
        cache_dir: Path | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        *,
        retries: int = 8,
        backoff_s: float = 1.0,
        free_space: Callable[[Path], int] = disk_free,
        timeout_s: float = 30.0,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.api = HfApi(endpoint=endpoint, token=token)
        self.endpoint = self.api.endpoint
        self.token = token
        self.retries, self.backoff_s = retries, backoff_s
        self.free_space = free_space
        self.timeout = httpx.Timeout(timeout_s, connect=10.0)

    # -- the public steps ---------------------------------------------------------------------

    def resolve(self, variant: Variant) -> Variant:
        """The variant with its real file list and commit (read from the Hub unless already known)."""
        return variant if variant.from_hub and variant.files else resolve(self.api, variant.id, self.token)

    def missing(self, variant: Variant) -> list[RemoteFile]:
        """Files not in the cache yet; files whose blob another revision holds are linked, not fetched."""
        rc = RepoCache(self.cache_dir, variant.repo)
        return [f for f in variant.files
                if not rc.has(variant.revision, f.path) and not rc.link_existing_blob(f.etag, variant.revision, f.path)]

    def check_access(self, variant: Variant) -> None:
        """Raise AuthRequired when the files need a token (a gated or private repo)."""
        if not variant.files:
            return
        url = hf_hub_url(variant.repo, variant.files[0].path, revision=variant.revision, endpoint=self.endpoint)
        try:
            get_hf_file_metadata(url, token=self.token)
        except (GatedRepoError, RepositoryNotFoundError) as exc:
            raise self._auth_error(variant.repo) from exc
        except HfHubHTTPError as exc:
            if exc.response is not None and exc.response.status_code in (401, 403):
                raise self._auth_error(variant.repo) from exc
            raise
        except Exception as exc:  # the hub client's transport (httpx, httpx2 or requests, by its version)
            if type(exc).__name__ == "TooManyRedirects":
                raise UnsafeRedirect(self.endpoint, url, "it keeps redirecting (a loop)") from None
            raise DownloadError(f"The Hub at {self.endpoint} did not answer for {variant.repo}: "
                                f"{type(exc).__name__}: {exc}.", "Check the connection and try again.") from exc

    def check_disk(self, files: list[RemoteFile], rc: RepoCache) -> None:
        needed = sum(max(0, f.size - _size(rc.incomplete(f.etag))) for f in files)
        free = self.free_space(self.cache_dir)
        if needed + DISK_RESERVE > free:
            where = existing_parent(self.cache_dir)
            raise NotEnoughDisk(
                f"Not enough disk space in {where}: the download needs {gb(needed)} more, {gb(free)} are free.",
                f"Free {gb(needed + DISK_RESERVE - free)} there, or point HF_HUB_CACHE to a disk with more room. "
                "Nothing was downloaded.")

    def download(self, variant: Variant, on_progress: ProgressCallback | None = None,
                 control: Control | None = None) -> Path:
        """Fetch what is missing, verify it, place it; return the path to load (first GGUF, or the folder)."""
        control = control or Control()
        variant = self.resolve(variant)
        rc = RepoCache(self.cache_dir, variant.repo)
        todo = self.missing(variant)
        if todo:
            self.check_disk(todo, rc)
            self.check_access(variant)
        meter = _Meter(sum(f.size for f in variant.files), on_progress, len(variant.files))
        meter.add(sum(f.size for f in variant.files if f not in todo), fetched=False)
        with httpx.Client(timeout=self.timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                          event_hooks={"request": [self.check_hop]}) as client:
            for f in todo:
                meter.file, meter.index = f.path, variant.files.index(f) + 1
                self._fetch_locked(client, rc, variant, f, meter, control)
        rc.set_ref("main", variant.revision)
        meter.report("done")
        return self.model_path(variant)

    def model_path(self, variant: Variant) -> Path:
        rc = RepoCache(self.cache_dir, variant.repo)
        if variant.backend == TORCH:
            return rc.snapshot(variant.revision, "")
        return rc.snapshot(variant.revision, variant.files[0].path)

    def check_hop(self, request: httpx.Request) -> None:
        """Every request of a download, redirects included, before it is sent (httpx calls it; the token
        itself is dropped by httpx when a redirect leaves the endpoint's origin)."""
        scheme = request.url.scheme
        if scheme not in ("http", "https"):
            raise UnsafeRedirect(self.endpoint, str(request.url), f"{scheme}: is not a web address")
        if scheme == "http" and httpx.URL(self.endpoint).scheme == "https":
            raise UnsafeRedirect(self.endpoint, str(request.url), "it leaves https for unencrypted http")

    def discard(self, variant: Variant) -> None:
        """Delete the partial files of a variant (what a cancel does)."""
        rc = RepoCache(self.cache_dir, variant.repo)
        for f in variant.files:
            rc.incomplete(f.etag).unlink(missing_ok=True)

    # -- one file -----------------------------------------------------------------------------

    def _fetch_locked(self, client: httpx.Client, rc: RepoCache, variant: Variant, f: RemoteFile,
                      meter: _Meter, control: Control) -> None:
        rc.lock(f.etag).parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(rc.lock(f.etag), timeout=2):
                if not rc.link_existing_blob(f.etag, variant.revision, f.path):  # another process finished it
                    self._fetch(client, rc, variant, f, meter, control)
                    rc.place(f.etag, variant.revision, f.path)
        except Timeout:
            raise DownloadError(f"{f.path} is being downloaded by another program right now.",
                                "Wait for that download to finish, or stop it, then try again.") from None
        except DownloadStopped as stop:
            if stop.cancelled:
                self.discard(variant)
            raise

    def _fetch(self, client: httpx.Client, rc: RepoCache, variant: Variant, f: RemoteFile,
               meter: _Meter, control: Control) -> None:
        part = rc.incomplete(f.etag)
        part.parent.mkdir(parents=True, exist_ok=True)
        if _size(part) > f.size:
            part.unlink()
        hasher = self._hash_existing(part, f, meter, control)
        offset = _size(part)
        url = hf_hub_url(variant.repo, f.path, revision=variant.revision, endpoint=self.endpoint)
        failures = 0
        while offset < f.size:
            control.check()
            try:
                restarted = self._get_range(client, url, part, offset, hasher, meter, control, variant.repo,
                                            f.size)
                if restarted:  # the server sent the whole file from byte 0: start the file over
                    hasher = hashlib.sha256() if f.sha256 else _git_blob_hasher(f.size)
                    meter.add(-offset, fetched=False)
                    offset = 0
                    continue
                if _size(part) > offset:
                    failures = 0
                offset = _size(part)
                if offset < f.size:
                    raise _Retryable("the connection ended early")
            except httpx.TooManyRedirects:
                raise UnsafeRedirect(self.endpoint, url,
                                     f"it keeps redirecting (more than {MAX_REDIRECTS} times)") from None
            except _TooLong:
                part.unlink(missing_ok=True)
                raise VerificationFailed(
                    f"The Hub sent more than the {f.size:,} bytes it lists for {f.path}; the partial file was "
                    "deleted and nothing was added to your models.",
                    "Run the download again; if this repeats, the endpoint is not trustworthy.") from None
            except (httpx.TransportError, _Retryable) as exc:
                # what arrived before the break is on disk and in the hash: continue after it
                if _size(part) > offset:
                    failures = 0
                offset = _size(part)
                failures += 1
                reason = str(exc) or type(exc).__name__
                if failures > self.retries:
                    raise DownloadError(
                        f"The download of {f.path} stopped: {reason} (tried {failures} times).",
                        f"Check the connection and run the download again: the {gb(offset)} already fetched "
                        "are kept and it resumes from there.") from exc
                wait = min(self.backoff_s * 2 ** (failures - 1), 30.0)
                meter.report(f"retrying in {wait:.0f} s: {reason}")
                control.sleep(wait)
        meter.report("verifying")
        self._verify(part, f, hasher)
        os.replace(part, rc.blob(f.etag))

    def _get_range(self, client: httpx.Client, url: str, part: Path, offset: int, hasher: Any,
                   meter: _Meter, control: Control, repo: str, size: int) -> bool:
        """Append bytes from `offset` up to `size` (the file and the hash grow together); True when the server
        ignored the range, so the file must start over."""
        headers = build_hf_headers(token=self.token)
        headers["Range"] = f"bytes={offset}-"
        headers["Accept-Encoding"] = "identity"
        with client.stream("GET", url, headers=headers) as r:
            if r.status_code in (401, 403):
                raise self._auth_error(repo)
            if r.status_code == 429 or r.status_code >= 500:
                raise _Retryable(f"the server answered {r.status_code}")
            if r.status_code == 200 and offset:
                return True
            if r.status_code == 206 and not r.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                return True
            if r.status_code not in (200, 206):
                raise DownloadError(f"The Hub answered {r.status_code} for {url}.",
                                    "Check the variant name and try again later.")
            room = size - offset
            with part.open("ab" if offset else "wb") as out:
                for chunk in r.iter_bytes():  # as the network delivers: pause reacts at once
                    if len(chunk) > room:  # never more than the listing gives: a lying server cannot fill the disk
                        raise _TooLong
                    room -= len(chunk)
                    out.write(chunk)
                    hasher.update(chunk)
                    meter.add(len(chunk))
                    if control.stopping:
                        break
            control.check()
            return False

    def _hash_existing(self, part: Path, f: RemoteFile, meter: _Meter, control: Control) -> Any:
        hasher = hashlib.sha256() if f.sha256 else _git_blob_hasher(f.size)
        if not part.exists():
            return hasher
        meter.report(f"checking the {gb(_size(part))} already fetched")
        with part.open("rb") as fh:
            while chunk := fh.read(8 * CHUNK):
                hasher.update(chunk)
                meter.add(len(chunk), fetched=False)
                control.check()
        return hasher

    def _verify(self, part: Path, f: RemoteFile, hasher: Any) -> None:
        size = _size(part)
        digest = hasher.hexdigest()
        expected = f.sha256 or f.blob_id
        if size == f.size and digest == expected:
            return
        part.unlink(missing_ok=True)
        what = (f"{size:,} bytes instead of {f.size:,}" if size != f.size
                else f"checksum {digest[:12]}… instead of {expected[:12]}…")
        raise VerificationFailed(
            f"{f.path} arrived damaged ({what}); it was deleted and nothing was added to your models.",
            "Run the download again; if this repeats, a proxy or the network is changing the data.")

    def _auth_error(self, repo: str) -> AuthRequired:
        page = f"{self.endpoint}/{repo}"
        if self.token:
            return AuthRequired(f"Your Hugging Face token has no access to {repo}.",
                                f"Accept the model's terms at {page} with that account, or enter another token.",
                                repo, True)
        return AuthRequired(f"{repo} is gated: its files need a Hugging Face token.",
                            f"Accept the model's terms at {page}, then enter a token with read access.", repo, False)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
