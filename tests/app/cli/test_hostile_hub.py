"""`nemotron-desk download VARIANT --endpoint URL` against a hostile Hub (tests/fixtures/fake_hub.py:
attacks()), as a real process: each attack listing gets a clear refusal (rc 1, the reason, no traceback),
and nothing outside the cache folder changes (tests/fixtures/hostile_root.py walks the temporary root:
the cache, a victim folder beside it and the home folder, before and after)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO_ROOT
from tests.fixtures.fake_hub import GGUF_REPO, VICTIM_GGUF, Attack, FakeHub, HostileRepo, attacks, lying_entry
from tests.fixtures.hostile_root import HostileRoot

ROOT = REPO_ROOT
PAYLOAD = b"the attacker's bytes " * 150  # > 1 KB: listed as an LFS file with its true sha256, so it verifies
NAMES = [a.name for a in attacks(Path("/victim"), PAYLOAD)]


def cli(root: HostileRoot, hub: FakeHub, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *args, "--endpoint", hub.url], cwd=ROOT,
                          env={**root.env(hub.url), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def serve(repo: HostileRepo) -> FakeHub:
    return FakeHub({}, hostile={repo.repo_id: repo}).start()


def attack(root: HostileRoot, name: str) -> Attack:
    return next(a for a in attacks(root.victim, PAYLOAD) if a.name == name)


@pytest.mark.parametrize("name", NAMES)
def test_each_attack_listing_is_refused_and_nothing_outside_the_cache_changes(name: str, tmp_path: Path) -> None:
    root = HostileRoot(tmp_path)
    a = attack(root, name)
    hub = serve(a.repo)
    try:
        before = root.walk()
        done = cli(root, hub, "download", a.variant)
    finally:
        hub.stop()
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stderr
    assert a.refusal in done.stderr, done.stderr
    assert "not trustworthy" in done.stderr and "nothing was written" in done.stderr
    assert "Verified and placed" not in done.stderr and done.stdout == ""
    assert root.changes(before) == []
    assert (root.victim / VICTIM_GGUF).read_bytes().startswith(b"GGUF the person's own model")


def test_an_honest_listing_through_the_same_hub_downloads(tmp_path: Path) -> None:
    """The control: the same harness and payload with a clean listing verifies and places the file, in the
    cache only (so the refusals above are the checks at work, not a broken fake)."""
    root = HostileRoot(tmp_path)
    name = "Nemotron-3-Nano-30B-A3B-Q4_K_M.gguf"
    hub = serve(HostileRepo(GGUF_REPO, [lying_entry(name, PAYLOAD)], PAYLOAD, "ab" * 20))
    try:
        before = root.walk()
        done = cli(root, hub, "download", "Q4_K_M")
    finally:
        hub.stop()
    assert done.returncode == 0, done.stderr
    assert "Verified and placed" in done.stderr
    placed = Path(done.stdout.strip())
    assert placed.read_bytes() == PAYLOAD and placed.is_relative_to(root.cache)
    assert root.changes(before) == []


def test_the_variant_list_names_a_refused_listing(tmp_path: Path) -> None:
    root = HostileRoot(tmp_path)
    hub = serve(attack(root, "traversal").repo)
    try:
        done = cli(root, hub, "download")
    finally:
        hub.stop()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "not trustworthy" in done.stdout and "climbs out of its folder" in done.stdout
