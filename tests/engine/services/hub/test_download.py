"""The downloader against a real HTTP server that speaks the Hub API (tests/fixtures/fake_hub.py),
driving the real huggingface_hub client: layout, resume, faults, gated repos, disk space, library."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, scan_cache_dir, snapshot_download

from engine.errors import ModelLoadError
from engine.formats.gguf import read_gguf_metadata
from engine.services.hub.catalog import LLAMA_CPP, TORCH, load_catalog, resolve
from engine.services.hub.download import (
    AuthRequired,
    Control,
    Downloader,
    DownloadError,
    DownloadStopped,
    NotEnoughDisk,
    Progress,
    VerificationFailed,
)
from engine.services.hub.library import Library
from tests.fixtures.fake_hub import GGUF_REPO, Q4, Q8, TORCH_REPO, FakeHub
from tests.fixtures.hub_fixtures import hub_files_fixture, hub_fixture  # noqa: F401  (fixtures)


def make(hub: FakeHub, tmp_path: Path, **kw) -> Downloader:  # type: ignore[no-untyped-def]
    kw.setdefault("retries", 4)
    kw.setdefault("backoff_s", 0.01)
    return Downloader(tmp_path / "cache", hub.url, **kw)


def library(tmp_path: Path) -> Library:
    return Library(tmp_path / "cache", tmp_path / "data")


def blobs(tmp_path: Path, repo: str = GGUF_REPO) -> list[str]:
    folder = tmp_path / "cache" / ("models--" + repo.replace("/", "--")) / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_catalog_reads_files_sizes_and_sha256_from_the_hub(hub: FakeHub) -> None:
    catalog = load_catalog(HfApi(endpoint=hub.url))
    assert catalog.online
    by_id = {v.id: v for v in catalog.variants}
    assert {"unsloth:Q4_K_M", "unsloth:Q8_0", "unsloth:BF16", "nvidia:BF16"} <= set(by_id)
    q4 = by_id["unsloth:Q4_K_M"]
    repo = hub.repos[GGUF_REPO]
    assert q4.backend == LLAMA_CPP and q4.size_bytes == len(repo.files[Q4])
    assert q4.files[0].sha256 == hashlib.sha256(repo.files[Q4]).hexdigest()
    assert len(by_id["unsloth:BF16"].files) == 2  # split GGUF: both shards, one variant
    assert by_id["nvidia:BF16"].backend == TORCH and by_id["nvidia:BF16"].gated
    # a source that does not answer is named, and the list goes on without it
    assert any("bartowski" in p for p in catalog.problems)


def test_offline_catalog_is_the_built_in_list() -> None:
    catalog = load_catalog(HfApi(endpoint="http://127.0.0.1:9"))  # nothing listens on port 9
    assert not catalog.online
    assert catalog.find("Q4_K_M").size_bytes > 20 * 1000**3
    assert catalog.find("nvidia:BF16").backend == TORCH


def test_download_lands_in_the_hf_cache_layout_that_huggingface_hub_reads(hub: FakeHub, tmp_path: Path) -> None:
    d = make(hub, tmp_path)
    seen: list[Progress] = []
    path = d.download(resolve(d.api, "Q4_K_M"), seen.append)
    data = hub.repos[GGUF_REPO].files[Q4]
    assert path.read_bytes() == data and path.is_symlink()
    assert read_gguf_metadata(path).architecture == "nemotron_h_moe"
    assert hf_hub_download(GGUF_REPO, Q4, cache_dir=tmp_path / "cache", local_files_only=True) == str(path)
    cached = scan_cache_dir(tmp_path / "cache")
    assert [r.repo_id for r in cached.repos] == [GGUF_REPO]
    assert seen[-1].done == seen[-1].total == len(data) and seen[-1].note == "done"
    models = library(tmp_path).models()
    assert [(m.id, m.backend, m.size_bytes) for m in models] == [(f"{GGUF_REPO}:Q4_K_M", LLAMA_CPP, len(data))]


def test_a_model_already_in_the_hf_cache_is_not_downloaded_again(hub: FakeHub, tmp_path: Path) -> None:
    hf_hub_download(GGUF_REPO, Q4, cache_dir=tmp_path / "cache", endpoint=hub.url)  # fetched by another tool
    gets_before = len(hub.gets(Q4))
    path = make(hub, tmp_path).download(resolve(HfApi(endpoint=hub.url), "Q4_K_M"))
    assert len(hub.gets(Q4)) == gets_before  # not one byte fetched again
    assert path.read_bytes() == hub.repos[GGUF_REPO].files[Q4]


def test_dropped_connections_resume_with_ranges(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.drop_after, hub.faults.drops = 1 << 20, 3
    notes: list[str] = []
    path = make(hub, tmp_path).download(resolve(HfApi(endpoint=hub.url), "Q8_0"), lambda p: notes.append(p.note))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.repos[GGUF_REPO].etag(Q8)
    assert hub.gets(Q8) == ["bytes=0-", "bytes=1048576-", "bytes=2097152-", "bytes=3145728-"]
    assert any(n.startswith("retrying") for n in notes)


def test_pause_keeps_the_partial_file_unlisted_and_resume_finishes(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.rate = 4e6
    d = make(hub, tmp_path)
    variant = resolve(d.api, "Q8_0")
    control = Control()

    def pause_after_a_megabyte(p: Progress) -> None:
        if p.done > 1 << 20:
            control.pause()

    with pytest.raises(DownloadStopped):
        d.download(variant, pause_after_a_megabyte, control)
    partial = [b for b in blobs(tmp_path) if b.endswith(".incomplete")]
    assert partial and library(tmp_path).models() == []  # a half-written file is never offered
    kept = (tmp_path / "cache" / f"models--{GGUF_REPO.replace('/', '--')}" / "blobs" / partial[0]).stat().st_size
    hub.faults.rate = None
    path = d.download(variant)
    assert hub.gets(Q8)[-1] == f"bytes={kept}-"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.repos[GGUF_REPO].etag(Q8)


def test_cancel_deletes_the_partial_file(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.rate = 4e6
    d = make(hub, tmp_path)
    control = Control()
    with pytest.raises(DownloadStopped):
        d.download(resolve(d.api, "Q8_0"), lambda p: control.cancel() if p.done > 1 << 19 else None, control)
    assert blobs(tmp_path) == [] and library(tmp_path).models() == []


def test_corrupted_bytes_are_caught_and_nothing_is_listed(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.corrupt = True
    with pytest.raises(VerificationFailed, match="arrived damaged") as err:
        make(hub, tmp_path).download(resolve(HfApi(endpoint=hub.url), "Q4_K_M"))
    assert "Run the download again" in err.value.action
    assert blobs(tmp_path) == []  # neither a blob nor a partial file
    assert library(tmp_path).models() == []
    assert not list((tmp_path / "cache").rglob("snapshots/*/*"))


def test_server_ignoring_range_restarts_the_file_cleanly(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.drop_after, hub.faults.drops, hub.faults.ignore_range = 1 << 20, 1, True
    path = make(hub, tmp_path).download(resolve(HfApi(endpoint=hub.url), "Q8_0"))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.repos[GGUF_REPO].etag(Q8)


def test_giving_up_after_retries_says_what_to_do_and_keeps_the_bytes(hub: FakeHub, tmp_path: Path) -> None:
    d = make(hub, tmp_path, retries=2)
    variant = resolve(d.api, "Q8_0")
    hub.faults.drop_after, hub.faults.drops = 1 << 20, 1
    control = Control()
    with pytest.raises(DownloadStopped):  # one drop (progress was made, so no give-up), then a pause
        d.download(variant, lambda p: control.pause() if "retrying" in p.note else None, control)
    hub.faults.drop_after, hub.faults.drops = 0, 100  # now every connection breaks before the first byte
    with pytest.raises(DownloadError, match="tried 3 times") as err:
        d.download(variant)
    assert "the 1 MB already fetched are kept" in err.value.action
    assert [b for b in blobs(tmp_path) if b.endswith(".incomplete")]


def test_gated_repo_needs_a_token(hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi(endpoint=hub.url)
    variant = resolve(api, "nvidia:BF16")  # listing a gated repo is public, as on the Hub
    with pytest.raises(AuthRequired) as no_token:
        make(hub, tmp_path).download(variant)
    assert not no_token.value.had_token and "gated" in no_token.value.message
    with pytest.raises(AuthRequired) as wrong:
        make(hub, tmp_path, token="hf_wrong").download(variant)
    assert wrong.value.had_token and "no access" in wrong.value.message
    assert blobs(tmp_path, TORCH_REPO) == []
    folder = make(hub, tmp_path, token=hub.token).download(variant)
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert [(m.backend, m.path) for m in library(tmp_path).models()] == [(TORCH, folder)]


def test_too_little_disk_is_refused_before_any_byte(hub: FakeHub, tmp_path: Path) -> None:
    d = make(hub, tmp_path, free_space=lambda path: 5 << 20)  # a faked free-space reading: 5 MB
    with pytest.raises(NotEnoughDisk) as err:
        d.download(resolve(d.api, "Q8_0"))
    assert "needs 8 MB more, 5 MB are free" in err.value.message and "Nothing was downloaded" in err.value.action
    assert hub.gets(Q8) == [] and blobs(tmp_path) == []


def test_library_imports_checks_and_removes(hub: FakeHub, tmp_path: Path, tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    lib = library(tmp_path)
    gguf = lib.import_path(tiny_nemotron.gguf_path)
    folder = lib.import_path(tiny_nemotron.hf_dir)
    assert (gguf.backend, folder.backend) == (LLAMA_CPP, TORCH)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(Path(tiny_nemotron.gguf_path).read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="incomplete"):
        lib.import_path(broken)
    assert len(lib.imported()) == 2
    lib.remove(gguf)
    assert Path(tiny_nemotron.gguf_path).is_file()  # forgetting an import never deletes the person's file
    assert [m.id for m in lib.imported()] == [folder.id]

    d = make(hub, tmp_path)
    q4 = d.download(resolve(d.api, "Q4_K_M"))
    d.download(resolve(d.api, "Q8_0"))
    lib.remove(lib.find(f"{GGUF_REPO}:Q8_0"))
    assert [m.id for m in lib.downloaded()] == [f"{GGUF_REPO}:Q4_K_M"] and q4.is_file()
    assert len([b for b in blobs(tmp_path)]) == 1
    lib.remove(lib.find(f"{GGUF_REPO}:Q4_K_M"))
    assert lib.downloaded() == [] and not (tmp_path / "cache" / f"models--{GGUF_REPO.replace('/', '--')}").exists()


def test_the_fake_hub_serves_huggingface_hubs_own_snapshot_download(hub: FakeHub, tmp_path: Path) -> None:
    """The server is faithful enough for the hub client's whole-repo path (info, tree, HEAD, GET)."""
    folder = Path(snapshot_download(TORCH_REPO, cache_dir=tmp_path / "cache", endpoint=hub.url, token=hub.token))
    assert (folder / "config.json").read_bytes() == hub.repos[TORCH_REPO].files["config.json"]
    models = library(tmp_path).models()  # and what it placed is in our library, for the torch backend
    assert [(m.backend, m.path) for m in models] == [(TORCH, folder)]
