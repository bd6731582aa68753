"""The downloader (engine/services/hub) against a hostile Hub on 127.0.0.1 (tests/fixtures/fake_hub.py), in process:
redirects to other hosts and schemes, more bytes than listed, links planted in the cache, a variant built
by hand with a bad name, and `models rm` on a link that leads out. Each time the walk of the temporary
root (tests/fixtures/hostile_root.py) shows that nothing outside the cache folder changed."""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from engine.services.hub.cache import UnsafePath
from engine.services.hub.catalog import LLAMA_CPP, SOURCES, Variant, resolve
from engine.services.hub.download import Downloader, UnsafeRedirect, VerificationFailed
from engine.services.hub.library import Library
from engine.services.hub.listing import RemoteFile, UntrustedHub
from tests import REPO_ROOT
from tests.fixtures.fake_hub import GGUF_REPO, VICTIM_GGUF, FakeHub, FakeRepo, HostileRepo, lying_entry
from tests.fixtures.hostile_root import HostileRoot

Q4 = "Nemotron-3-Nano-30B-A3B-Q4_K_M.gguf"
PAYLOAD = b"the attacker's bytes " * 150
COMMIT = "ab" * 20
ROOT = REPO_ROOT


@pytest.fixture
def root(tmp_path: Path) -> HostileRoot:
    return HostileRoot(tmp_path)


def downloader(root: HostileRoot, hub: FakeHub, token: str | None = None) -> Downloader:
    return Downloader(root.cache, hub.url, token, retries=1, backoff_s=0.01)


def lying_hub(**kw: object) -> FakeHub:
    repo = HostileRepo(GGUF_REPO, [lying_entry(Q4, PAYLOAD)], PAYLOAD, COMMIT, **kw)  # type: ignore[arg-type]
    return FakeHub({}, hostile={GGUF_REPO: repo}).start()


def test_a_redirect_to_another_host_is_verified_and_never_carries_the_token(root: HostileRoot) -> None:
    """The Hub sends file downloads to its CDN, so another host is allowed; the token stays behind."""
    cdn = FakeHub({GGUF_REPO: FakeRepo(GGUF_REPO, {Q4: PAYLOAD})}).start()  # another port: another origin
    hub = FakeHub({}, hostile={GGUF_REPO: HostileRepo(GGUF_REPO, [cdn.repos[GGUF_REPO].sibling(Q4)],
                                                        sha=cdn.repos[GGUF_REPO].commit,
                                                        redirect=cdn.url + "{path}")}).start()
    try:
        before = root.walk()
        d = downloader(root, hub, token="hf_secret_token")
        path = d.download(resolve(d.api, "Q4_K_M", d.token))
    finally:
        hub.stop()
        cdn.stop()
    assert path.read_bytes() == PAYLOAD and path.is_relative_to(root.cache)
    assert any(auth == "Bearer hf_secret_token" for _, auth in hub.authorization)
    assert cdn.gets(Q4) and all(auth == "" for _, auth in cdn.authorization)
    assert root.changes(before) == []


@pytest.mark.parametrize(("target", "reason"), [("file:///etc/passwd", "is not a web address"),
                                                ("ftp://127.0.0.1/x.gguf", "is not a web address")])
def test_a_redirect_to_another_scheme_is_refused(root: HostileRoot, target: str, reason: str) -> None:
    hub = lying_hub(redirect=target)
    try:
        before = root.walk()
        d = downloader(root, hub)
        with pytest.raises(UnsafeRedirect, match=reason) as refused:
            d.download(resolve(d.api, "Q4_K_M"))
    finally:
        hub.stop()
    assert "not trustworthy" in refused.value.message
    assert root.changes(before) == []


@pytest.mark.parametrize("where", ["on the endpoint", "on another host"])
def test_a_redirect_loop_is_refused(root: HostileRoot, where: str) -> None:
    """On the endpoint the hub client's access check meets the loop first; on another host (where that check
    stops, as it does at the Hub's CDN) the download's own client does."""
    loop = lying_hub(redirect="/loop{path}")  # every answer redirects again, deeper
    hub = loop if where == "on the endpoint" else lying_hub(redirect=loop.url + "/loop{path}")
    try:
        d = downloader(root, hub)
        with pytest.raises(UnsafeRedirect, match="keeps redirecting") as refused:
            d.download(resolve(d.api, "Q4_K_M"))
    finally:
        hub.stop()
        if hub is not loop:
            loop.stop()
    assert ("more than 5 times" in refused.value.message) == (where == "on another host")


def test_an_https_endpoint_is_never_left_for_plain_http(root: HostileRoot) -> None:
    """No TLS server on 127.0.0.1 here, so the check the client runs on every hop is called directly."""
    d = Downloader(root.cache, "https://hub.example")
    d.check_hop(httpx.Request("GET", "https://cdn.example/blob"))  # another host over https: fine
    with pytest.raises(UnsafeRedirect, match="leaves https for unencrypted http"):
        d.check_hop(httpx.Request("GET", "http://cdn.example/blob"))


def test_more_bytes_than_listed_are_not_written(root: HostileRoot) -> None:
    """A server that keeps sending would fill the disk; the listing's size is the most that is written."""
    hub = FakeHub({}, hostile={GGUF_REPO: HostileRepo(GGUF_REPO, [lying_entry(Q4, PAYLOAD[:1500])],
                                                        PAYLOAD * 50, COMMIT)}).start()
    try:
        d = downloader(root, hub)
        with pytest.raises(VerificationFailed, match="more than the 1,500 bytes"):
            d.download(resolve(d.api, "Q4_K_M"))
    finally:
        hub.stop()
    left = [p for p in root.cache.rglob("*") if p.is_file()]
    assert all(p.stat().st_size <= 1500 for p in left) and not [p for p in left if p.suffix == ".incomplete"]


@pytest.mark.parametrize("planted", ["snapshots", "blobs"])
def test_a_link_planted_in_the_cache_does_not_lead_a_write_outside(root: HostileRoot, planted: str) -> None:
    folder = root.cache / f"models--{GGUF_REPO.replace('/', '--')}"
    link = folder / "snapshots" / COMMIT if planted == "snapshots" else folder / "blobs"
    link.parent.mkdir(parents=True)
    link.symlink_to(root.victim, target_is_directory=True)
    hub = lying_hub()
    try:
        before = root.walk()
        d = downloader(root, hub)
        with pytest.raises(UnsafePath, match="leads outside the cache folder"):
            d.download(resolve(d.api, "Q4_K_M"))
    finally:
        hub.stop()
    assert root.changes(before) == []


def test_a_variant_built_by_hand_is_checked_where_the_path_is_made(root: HostileRoot) -> None:
    """Defence in depth: a RemoteFile that did not come through the listing checks is refused by the cache."""
    bad = RemoteFile(f"../../../../victim/{VICTIM_GGUF}", len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(), "")
    variant = Variant("unsloth", SOURCES["unsloth"], "Q4_K_M", LLAMA_CPP, len(PAYLOAD), (bad,), COMMIT,
                      from_hub=True)
    hub = lying_hub()
    try:
        before = root.walk()
        with pytest.raises(UntrustedHub, match="climbs out of its folder"):
            downloader(root, hub).download(variant)
    finally:
        hub.stop()
    assert root.changes(before) == []


def test_models_rm_never_deletes_a_file_a_cache_link_points_to(root: HostileRoot) -> None:
    hub = lying_hub()
    try:
        d = downloader(root, hub)
        placed = d.download(resolve(d.api, "Q4_K_M"))
    finally:
        hub.stop()
    extra = placed.parent / "Nemotron-3-Nano-30B-A3B-Q8_0.gguf"  # planted: a link to the person's own file
    extra.symlink_to(root.victim / VICTIM_GGUF)
    library = Library(root.cache, root.data)
    before = root.walk()
    for model in library.downloaded():
        library.remove(model)
    assert library.downloaded() == []
    assert (root.victim / VICTIM_GGUF).read_bytes().startswith(b"GGUF the person's own model")
    assert root.changes(before) == []


def test_a_refused_listing_falls_back_to_the_built_in_list_and_says_why(root: HostileRoot) -> None:
    from engine.services.hub.catalog import load_catalog

    hub = FakeHub({}, hostile={GGUF_REPO: HostileRepo(GGUF_REPO, [lying_entry("/abs-Q4_K_M.gguf", PAYLOAD)],
                                                        PAYLOAD, COMMIT)}).start()
    try:
        catalog = load_catalog(HfApi(endpoint=hub.url), ("unsloth",))
    finally:
        hub.stop()
    assert not catalog.online and catalog.find("Q4_K_M").from_hub is False
    assert len(catalog.refused) == 1 and "is an absolute path" in catalog.refused[0]


def test_the_app_never_lets_the_hub_client_write_files() -> None:
    """huggingface_hub's own downloaders (snapshot_download, hf_hub_download) join the listing's commit into
    paths: with a crafted commit, snapshot_download of huggingface_hub 2.4 writes a manifest outside the cache.
    Every byte the app downloads goes through engine/services/hub/download.py instead; this keeps it that way."""
    writers = {"snapshot_download", "hf_hub_download", "HfFileSystem", "hf_hub_download_to_local_dir",
               "create_repo", "upload_file", "upload_folder"}
    found = []
    for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "engine").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ({a.name for a in node.names} if isinstance(node, ast.ImportFrom) and node.module
                     and node.module.startswith("huggingface_hub") else
                     {node.attr} if isinstance(node, ast.Attribute) else set())
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names & writers]
    assert found == []


def test_the_hostile_fake_hub_really_serves_its_lies(root: HostileRoot) -> None:
    """The fake answers any path with the payload (as the attacks need), and lists what it was given."""
    hub = lying_hub()
    try:
        body = httpx.get(f"{hub.url}/anything/../at/all.gguf").content
        info = httpx.get(f"{hub.url}/api/models/{GGUF_REPO}").json()
    finally:
        hub.stop()
    assert body == PAYLOAD and info["sha"] == COMMIT and info["siblings"][0]["rfilename"] == Q4
    assert os.listdir(root.cache) == []
