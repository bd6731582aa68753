"""Download speed of our downloader against plain huggingface_hub, both from the fake Hub on 127.0.0.1.

Run by hand: `python -m tests.engine.services.hub.bench_download [MB]`. Both fetch the same LFS file into a fresh
cache; ours also hashes while it writes (sha256), as does huggingface_hub. Loopback speed measures the
client's own overhead (copying, hashing, Python per-chunk work), not a network.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from huggingface_hub import hf_hub_download

from engine.services.hub.catalog import resolve
from engine.services.hub.download import Downloader
from tests.fixtures.fake_hub import GGUF_REPO as REPO
from tests.fixtures.fake_hub import Q4 as NAME


def main(megabytes: int = 256, rounds: int = 3) -> None:
    # the server in its own process, so it does not share the client's interpreter lock
    server = subprocess.Popen([sys.executable, "-m", "tests.fixtures.fake_hub", str(megabytes)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    results: dict[str, list[float]] = {"nemotron-desk": [], "huggingface_hub": []}
    try:
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                d = Downloader(Path(tmp) / "a", url)
                variant = resolve(d.api, "Q4_K_M")
                t = time.perf_counter()
                d.download(variant)
                results["nemotron-desk"].append(time.perf_counter() - t)
                t = time.perf_counter()
                hf_hub_download(REPO, NAME, cache_dir=Path(tmp) / "b", endpoint=url)
                results["huggingface_hub"].append(time.perf_counter() - t)
    finally:
        server.terminate()
        server.wait()
    for name, times in results.items():
        best = min(times)
        print(f"{name:16} {megabytes} MB: best {best:.2f} s = {megabytes / best:.0f} MB/s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
