"""`nemotron-desk download` / `models` as real processes against the fake Hub: killed at random
points, interrupted with Ctrl-C, a gated repo, a disk that is too small (a real tmpfs)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.services.hub.library import Library
from tests import REPO_ROOT
from tests.fixtures.fake_hub import GGUF_REPO, Q8, FakeHub
from tests.fixtures.hub_fixtures import hub_files_fixture, hub_fixture  # noqa: F401  (fixtures)

ROOT = REPO_ROOT
BLOBS = f"models--{GGUF_REPO.replace('/', '--')}/blobs"


def env(hub: FakeHub, tmp_path: Path, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    e.update(PYTHONPATH=str(ROOT), HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(tmp_path / "cache"),
             HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
             NEMOTRON_DESK_DATA_DIR=str(tmp_path / "data"),
             PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", **extra)
    return e


def start(hub: FakeHub, tmp_path: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "app.cli.main", *args], cwd=ROOT, env=env(hub, tmp_path, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def run(hub: FakeHub, tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *args], cwd=ROOT, env=env(hub, tmp_path, **extra),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def partial_size(tmp_path: Path) -> int:
    parts = list((tmp_path / "cache" / BLOBS).glob("*.incomplete")) if (tmp_path / "cache" / BLOBS).exists() else []
    return parts[0].stat().st_size if parts else 0


def wait_for_growth(proc: subprocess.Popen[str], tmp_path: Path, than: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while partial_size(tmp_path) <= than:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the download did not start"
        time.sleep(0.01)


@pytest.mark.slow
def test_killed_twenty_times_it_resumes_every_time_and_verifies(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.rate = 1e6  # 8 MB at 1 MB/s: every kill lands mid-file
    rng = random.Random(20)
    kept: list[int] = []
    for _ in range(20):
        proc = start(hub, tmp_path, "download", "Q8_0")
        wait_for_growth(proc, tmp_path, kept[-1] if kept else 0)
        time.sleep(rng.uniform(0, 0.4))
        proc.kill()  # SIGKILL: no handler runs, nothing is tidied up
        proc.wait()
        kept.append(partial_size(tmp_path))
        assert Library(tmp_path / "cache", tmp_path / "data").models() == []  # nothing half-written is listed
    print("bytes kept after each kill:", kept)
    assert kept == sorted(kept) and kept[-1] < len(hub.repos[GGUF_REPO].files[Q8])
    ranges = hub.gets(Q8)
    for size in kept[:-1]:
        assert f"bytes={size}-" in ranges  # the next run asked for exactly the rest
    hub.faults.rate = None
    done = run(hub, tmp_path, "download", "Q8_0")
    assert done.returncode == 0, done.stderr
    assert ranges[-1] != "bytes=0-" and hub.gets(Q8)[-1] == f"bytes={kept[-1]}-"
    path = Path(done.stdout.strip())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.repos[GGUF_REPO].etag(Q8)
    listing = run(hub, tmp_path, "models").stdout
    assert f"{GGUF_REPO}:Q8_0" in listing and "llama.cpp" in listing and str(path) in listing


def test_ctrl_c_pauses_and_the_same_command_resumes(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.rate = 2e6
    proc = start(hub, tmp_path, "download", "Q8_0")
    wait_for_growth(proc, tmp_path, 1 << 20)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Paused" in err and "Run the same command to resume" in err
    kept = partial_size(tmp_path)
    assert kept > 1 << 20
    hub.faults.rate = None
    done = run(hub, tmp_path, "download", "Q8_0")
    assert done.returncode == 0 and hub.gets(Q8)[-1] == f"bytes={kept}-"
    removed = run(hub, tmp_path, "models", "rm", f"{GGUF_REPO}:Q8_0")
    assert removed.returncode == 0 and "deleted" in removed.stdout
    assert run(hub, tmp_path, "models").stdout.startswith("No models yet")


def test_gated_repo_without_a_token_says_how_to_give_one(hub: FakeHub, tmp_path: Path) -> None:
    refused = run(hub, tmp_path, "download", "nvidia:BF16")
    assert refused.returncode == 1
    assert "is gated" in refused.stderr and "--ask-token" in refused.stderr and "Traceback" not in refused.stderr
    done = run(hub, tmp_path, "download", "nvidia:BF16", HF_TOKEN=hub.token)
    assert done.returncode == 0, done.stderr
    assert (Path(done.stdout.strip()) / "model.safetensors").is_file()
    assert hub.token not in done.stderr + done.stdout  # the token is never printed


def test_a_disk_too_small_is_refused_before_any_byte(hub: FakeHub, tmp_path: Path) -> None:
    small = tmp_path / "small-disk"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = run(hub, tmp_path, "download", "Q8_0", "--cache-dir", str(small / "models"))
        assert result.returncode == 1
        assert "Not enough disk space" in result.stderr and "Nothing was downloaded" in result.stderr
        assert hub.gets(Q8) == [] and not (small / "models").exists()
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_download_without_a_variant_lists_them_with_the_fit_here(hub: FakeHub, tmp_path: Path, tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    listing = run(hub, tmp_path, "download")
    assert listing.returncode == 0, listing.stderr
    assert "RAM:" in listing.stdout and "Disk:" in listing.stdout
    q4 = next(line for line in listing.stdout.splitlines() if "unsloth:Q4_K_M" in line)
    assert "llama.cpp" in q4 and ("fits" in q4 or "runs on the CPU" in q4 or "won't fit" in q4)
    imported = run(hub, tmp_path, "models", "import", str(tiny_nemotron.gguf_path))
    assert imported.returncode == 0 and "Imported" in imported.stdout
    assert str(tiny_nemotron.gguf_path) in run(hub, tmp_path, "models").stdout
    missing = run(hub, tmp_path, "models", "rm", "no-such-model")
    assert missing.returncode == 1 and "No model 'no-such-model'" in missing.stderr
    unknown = run(hub, tmp_path, "download", "Q2_K")
    assert unknown.returncode == 1 and "has no Q2_K files" in unknown.stderr and "unsloth:Q4_K_M" in unknown.stderr


def test_downloaded_bf16_folder_chats_on_the_torch_backend(hub: FakeHub, tmp_path: Path) -> None:
    """The torch variant end to end: a gated download into the HF cache, then a chat on that folder."""
    import json

    from tests.fixtures.fake_hub import TORCH_REPO

    got = run(hub, tmp_path, "download", "nvidia:BF16", HF_TOKEN=hub.token)
    assert got.returncode == 0, got.stderr
    (model,) = [m for m in Library(tmp_path / "cache", tmp_path / "data").models() if m.repo == TORCH_REPO]
    chat = run(hub, tmp_path, "chat", "-m", str(model.path), "-p", "Why?", "--budget", "8", "--max-tokens", "60",
               "--threads", "1", "--json")
    assert chat.returncode == 0, chat.stderr
    events = [json.loads(line) for line in chat.stdout.splitlines()]
    info = next(e for e in events if e["event"] == "ModelInfo")
    assert info["backend"] == "torch" and info["architecture"] == "nemotron_h"
    assert any(e["event"] == "ReasoningEnded" and e["by_budget"] for e in events)


def test_an_unreachable_hub_is_a_connection_problem_not_a_bug(hub: FakeHub, tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on: refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = run(hub, tmp_path, "download", "Q4_K_M", "--endpoint", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert "Check the connection" in result.stderr and "went wrong inside" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
