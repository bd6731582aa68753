"""Optional runtimes installed on demand: the torch backend (CUDA PyTorch + transformers) as wheels.

The packaged app does not carry torch (4-5 GB with CUDA). When a person asks for the torch backend,
`plan_install` works out which wheels this Python needs from the package indexes (the PyTorch CUDA
index first, then PyPI), following each wheel's declared dependencies, and says how much it will
download; `install` downloads them with progress, checks each against the index's sha256 and unpacks
them into one folder (the app puts that folder on sys.path at start: app/runtime_path.py).

It is a small resolver on purpose: pinned top-level requirements, the newest matching version of
each dependency, first come first served, and a clear error on a conflict. Both steps speak plain
HTTP(S) to a PEP 503/691 "simple" index, so tests run them against a local index of small wheels.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import io
import json
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.parser import HeaderParser
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

#: CUDA 13.0 wheels of PyTorch (x86_64 and aarch64, DGX Spark included), then PyPI for the rest.
DEFAULT_INDEXES = ("https://download.pytorch.org/whl/cu130", "https://pypi.org/simple")
# accelerate: transformers needs it for device_map (how the torch backend places the weights).
TORCH_REQUIREMENTS = ("torch>=2.9", "transformers>=5.3", "accelerate>=1.0")
_CHUNK = 1 << 20
_TIMEOUT_S = 60


class RuntimeInstallError(Exception):
    """Something a person can act on: `message` says what happened, `action` what to do."""

    def __init__(self, message: str, action: str) -> None:
        super().__init__(message)
        self.message = message
        self.action = action


@dataclass(frozen=True)
class Wheel:
    """One wheel chosen from an index."""

    project: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int  # bytes; 0 when the index did not say


@dataclass(frozen=True)
class InstallPlan:
    wheels: tuple[Wheel, ...]
    satisfied: tuple[str, ...]  # requirements already met by what the app has, e.g. "jinja2 3.1.6"

    @property
    def download_bytes(self) -> int:
        return sum(w.size for w in self.wheels)

    def describe(self) -> str:
        """What will be downloaded, for the confirmation the app shows before it starts."""
        lines = [f"{w.project} {w.version}  ({format_size(w.size)})" for w in self.wheels]
        return "\n".join([*lines, f"Total: {format_size(self.download_bytes)} to download"])


def format_size(n: int) -> str:
    """Bytes for people: 512 KB, 86 MB, 2.41 GB."""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MB"
    return f"{max(1, round(n / 2**10))} KB"


#: progress(what, done_bytes, total_bytes)
Progress = Callable[[str, int, int], None]


# -- the index ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _IndexFile:
    filename: str
    url: str
    sha256: str
    size: int
    requires_python: str
    has_metadata: bool


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def _open(url: str, accept: str | None = None, method: str = "GET") -> http.client.HTTPResponse:
    request = urllib.request.Request(url, method=method, headers={"Accept": accept} if accept else {})
    response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    return response


class PackageIndex:
    """A PEP 503 (HTML) or PEP 691 (JSON) simple index."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/"

    def files(self, project: str) -> list[_IndexFile] | None:
        """The project's files, or None when the index does not have the project."""
        page = urljoin(self.url, canonicalize_name(project) + "/")
        accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
        try:
            with _open(page, accept) as response:
                body = response.read()
                kind = response.headers.get("Content-Type", "")
                page = response.geturl()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise RuntimeInstallError(f"The package index {self.url} answered {exc.code} for {project}.",
                                      "Try again later, or check the index address.") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeInstallError(f"Cannot reach the package index {self.url}: {exc}.",
                                      "Check the internet connection and try again.") from exc
        if "json" in kind:
            return [self._from_json(page, f) for f in json.loads(body).get("files", [])]
        parser = _LinkParser()
        parser.feed(body.decode("utf-8", "replace"))
        return [self._from_html(page, link) for link in parser.links if link.get("href")]

    @staticmethod
    def _from_json(page: str, f: dict[str, object]) -> _IndexFile:
        hashes = f.get("hashes") if isinstance(f.get("hashes"), dict) else {}
        assert isinstance(hashes, dict)
        size = f.get("size")
        metadata = f.get("core-metadata", f.get("dist-info-metadata", False))
        return _IndexFile(str(f["filename"]), urljoin(page, str(f["url"])), str(hashes.get("sha256", "")),
                          size if isinstance(size, int) else 0, str(f.get("requires-python") or ""),
                          bool(metadata))

    @staticmethod
    def _from_html(page: str, link: dict[str, str | None]) -> _IndexFile:
        url, fragment = urldefrag(urljoin(page, link["href"] or ""))
        sha256 = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else ""
        metadata = link.get("data-core-metadata") or link.get("data-dist-info-metadata")
        return _IndexFile(url.rsplit("/", 1)[-1], url, sha256, 0, link.get("data-requires-python") or "",
                          bool(metadata) and metadata != "false")


# -- planning -------------------------------------------------------------------------------------

def _installed_version(project: str, target: Path) -> Version | None:
    """The version the app can already import (its own environment or the runtime folder)."""
    for path in ([str(target)], None):
        try:
            found = importlib.metadata.distribution(project) if path is None else next(
                iter(importlib.metadata.distributions(name=project, path=path)))
            return Version(found.version)
        except (importlib.metadata.PackageNotFoundError, StopIteration):
            continue
    return None


class _Resolver:
    def __init__(self, indexes: Iterable[str], target: Path, tags: list[Tag], python: Version,
                 environment: dict[str, str]) -> None:
        self.indexes = [PackageIndex(u) for u in indexes]
        self.target = target
        self.tag_rank = {tag: rank for rank, tag in enumerate(tags)}
        self.python = python
        self.environment = environment
        self.chosen: dict[str, Wheel] = {}
        self.wanted_by: dict[str, str] = {}
        self.satisfied: list[str] = []

    def resolve(self, requirements: Iterable[str]) -> InstallPlan:
        queue = [(self._parse(r, "your request"), "your request") for r in requirements]
        while queue:
            requirement, parent = queue.pop(0)
            name = canonicalize_name(requirement.name)
            if name in self.chosen:
                self._check_conflict(requirement, parent)
                continue
            have = _installed_version(name, self.target)
            if have is not None and requirement.specifier.contains(have, prereleases=True):
                if name not in {s.split()[0] for s in self.satisfied}:
                    self.satisfied.append(f"{name} {have}")
                continue
            wheel = self._choose(requirement, parent)
            self.chosen[name], self.wanted_by[name] = wheel, parent
            queue.extend((dep, f"{wheel.project} {wheel.version}") for dep in self._dependencies(wheel, requirement))
        return InstallPlan(tuple(self.chosen.values()), tuple(self.satisfied))

    @staticmethod
    def _parse(text: str, parent: str) -> Requirement:
        try:
            return Requirement(text)
        except InvalidRequirement as exc:
            raise RuntimeInstallError(f"The requirement {text!r} (from {parent}) is not valid: {exc}.",
                                      "Report this: the requirement list is part of the app.") from exc

    def _check_conflict(self, requirement: Requirement, parent: str) -> None:
        name = canonicalize_name(requirement.name)
        have = self.chosen[name]
        if not requirement.specifier.contains(have.version, prereleases=True):
            raise RuntimeInstallError(
                f"{parent} needs {requirement}, but {self.wanted_by[name]} needs {name} {have.version}.",
                "Report this with the two versions: the app's torch requirements need adjusting.")

    def _choose(self, requirement: Requirement, parent: str) -> Wheel:
        for index in self.indexes:
            files = index.files(requirement.name)
            if files is None:
                continue
            best = self._best(files, requirement.specifier)
            if best is not None:
                return best
        wanted = f"{requirement.name}{requirement.specifier}"
        system = f"Python {self.python.major}.{self.python.minor}, {next(iter(self.tag_rank)).platform}"
        if parent == "your request":
            action = "This platform may not have CUDA PyTorch wheels; see docs/installers.md for the supported ones."
        else:
            action = "Check that the package indexes are the right ones; the dependency may not exist for this system."
        raise RuntimeInstallError(f"No wheel of {wanted} (needed by {parent}) fits this system ({system}).", action)

    def _best(self, files: list[_IndexFile], specifier: SpecifierSet) -> Wheel | None:
        candidates: list[tuple[Version, int, _IndexFile]] = []
        for f in files:
            try:
                project, version, _build, tags = parse_wheel_filename(f.filename)
            except InvalidWheelFilename:
                continue  # an sdist or something else: only wheels are installed
            if not specifier.contains(version) or not f.sha256:
                continue
            if f.requires_python and not SpecifierSet(f.requires_python).contains(self.python, prereleases=True):
                continue
            ranks = [self.tag_rank[t] for t in tags if t in self.tag_rank]
            if ranks:
                candidates.append((version, -min(ranks), f))
        if not candidates:
            return None
        version, _, f = max(candidates, key=lambda c: (c[0], c[1]))
        project = parse_wheel_filename(f.filename)[0]
        return Wheel(str(project), str(version), f.filename, f.url, f.sha256, f.size or _content_length(f.url))

    def _dependencies(self, wheel: Wheel, requirement: Requirement) -> list[Requirement]:
        text = _read_metadata(wheel)
        deps = []
        for line in HeaderParser().parsestr(text).get_all("Requires-Dist") or []:
            dep = self._parse(line, wheel.project)
            extras = ["", *sorted(requirement.extras)]
            if dep.marker is None or any(dep.marker.evaluate({**self.environment, "extra": e}) for e in extras):
                deps.append(dep)
        return deps


def _content_length(url: str) -> int:
    try:
        with _open(url, method="HEAD") as response:
            return int(response.headers.get("Content-Length") or 0)
    except (urllib.error.URLError, OSError, ValueError):
        return 0


def _read_metadata(wheel: Wheel) -> str:
    """The wheel's METADATA: the index's separate copy (PEP 658: PyPI has one for every wheel), else
    read from the whole wheel (fetched twice then: once here, once to install)."""
    try:
        with _open(wheel.url + ".metadata") as response:
            return str(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError):
        pass
    data = _fetch(wheel.url)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
        if name is None:
            raise RuntimeInstallError(f"{wheel.filename} has no METADATA.", "Report this wheel to its project.")
        return archive.read(name).decode("utf-8")


def _fetch(url: str) -> bytes:
    try:
        with _open(url) as response:
            return bytes(response.read())
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeInstallError(f"Downloading {url} failed: {exc}.", "Check the connection and try again.") from exc


def plan_install(requirements: Iterable[str] = TORCH_REQUIREMENTS, target: Path | None = None,
                 indexes: Iterable[str] = DEFAULT_INDEXES, *, tags: list[Tag] | None = None,
                 environment: dict[str, str] | None = None) -> InstallPlan:
    """Which wheels to download for `requirements`, and how large they are. Raises RuntimeInstallError."""
    from packaging.markers import default_environment

    env = {k: str(v) for k, v in (environment or default_environment()).items()}
    resolver = _Resolver(indexes, target or Path("/nonexistent"), tags or list(sys_tags()),
                         Version(".".join(map(str, sys.version_info[:3]))), env)
    return resolver.resolve(requirements)


# -- installing -----------------------------------------------------------------------------------

def install(plan: InstallPlan, target: Path, progress: Progress | None = None,
            cancelled: Callable[[], bool] = lambda: False) -> None:
    """Download, verify and unpack every wheel of the plan into `target` (a site-packages folder).

    Downloads land in `target`'s parent under downloads/ and survive a failure, so a retry does not
    fetch again what was complete. Nothing goes into `target` until every wheel has been verified.
    """
    report = progress or (lambda what, done, total: None)
    downloads = target.parent / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    files = []
    done, total = 0, plan.download_bytes
    for wheel in plan.wheels:
        path = downloads / wheel.filename
        if not (path.is_file() and _sha256(path) == wheel.sha256):
            what, base = f"Downloading {wheel.filename}", done

            def step(n: int, what: str = what, base: int = base) -> None:
                report(what, base + n, total)

            _download(wheel, path, step, cancelled)
        done += wheel.size or path.stat().st_size
        files.append(path)
    staging = target.parent / (target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for i, path in enumerate(files):
        report(f"Unpacking {path.name}", i, len(files))
        _unpack(path, staging)
    target.mkdir(parents=True, exist_ok=True)
    for item in staging.iterdir():
        destination = target / item.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists():
            destination.unlink()
        item.rename(destination)
    staging.rmdir()
    shutil.rmtree(downloads, ignore_errors=True)
    report("Installed", len(files), len(files))


def _download(wheel: Wheel, path: Path, progress: Callable[[int], None], cancelled: Callable[[], bool]) -> None:
    partial = path.with_name(path.name + ".part")
    digest = hashlib.sha256()
    got = 0
    try:
        with _open(wheel.url) as response, open(partial, "wb") as out:
            while chunk := response.read(_CHUNK):
                if cancelled():
                    raise RuntimeInstallError("The download was cancelled.", "Start it again when you want it.")
                out.write(chunk)
                digest.update(chunk)
                got += len(chunk)
                progress(got)
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeInstallError(f"Downloading {wheel.filename} failed: {exc}.",
                                  "Check the connection and the free disk space, then try again.") from exc
    if digest.hexdigest() != wheel.sha256:
        partial.unlink()
        raise RuntimeInstallError(
            f"{wheel.filename} does not match the checksum the index gave (sha256 {wheel.sha256[:12]}…); "
            "it was deleted.", "Try again; if it repeats, the download is being altered on the way.")
    partial.rename(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(path: Path, target: Path) -> None:
    """A wheel is a zip laid out as site-packages; its .data/purelib and platlib go there too."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            parts = Path(member.filename).parts
            if member.is_dir() or ".." in parts or Path(member.filename).is_absolute():
                continue
            if len(parts) > 2 and parts[0].endswith(".data"):
                if parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers, data: not needed to import the package
                parts = parts[2:]
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
            mode = member.external_attr >> 16
            if mode & 0o111:
                destination.chmod(0o755)
