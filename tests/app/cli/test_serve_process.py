"""`nemotron-desk serve` as a process: SIGTERM stops it mid-answer, its worker goes with it, and a key
given on the command line is not in the process title (issue 12, items 1 and 9).

Real parts: the installed command, uvicorn, the engine worker, llama.cpp on the tiny Nemotron-H GGUF.
Linux only: process titles and children are read from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.app.cli.test_cli import ROOT, cli
from tests.app.server.live_server import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")

NAME = "tiny"
HANG_GUARD_S = 120


class Serve:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port
        self.url = f"http://127.0.0.1:{port}/v1"

    def cmdline(self, pid: int | None = None) -> str:
        return Path(f"/proc/{pid or self.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()

    def worker_pid(self) -> int:
        for entry in Path("/proc").iterdir():
            pid = int(entry.name) if entry.name.isdigit() else None
            if pid is not None and _parent(pid) == self.proc.pid and "spawn_main" in self.cmdline(pid):
                return pid
        raise AssertionError("no engine worker found")


@contextmanager
def serve(model: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Serve]:
    port = free_port()
    proc = subprocess.Popen([*cli(), "serve", "-m", str(model), "--port", str(port), "--threads", "2",
                             "--served-model-name", NAME, *args], stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if f"Serving {NAME} at" in line:
                break
        else:
            raise AssertionError(f"the server did not start (exit {proc.wait()})")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe from filling
        yield Serve(proc, port)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_stops_the_server_while_it_generates(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    """Before: uvicorn waited for the running answer (for good, when the engine was wedged)."""
    with serve(tiny_nemotron.gguf_path, "--ctx", "131072") as server:
        worker = server.worker_pid()
        streaming = threading.Event()
        outcome: dict[str, object] = {}

        def stream() -> None:  # far more tokens than any machine makes in the grace period
            body = {"model": NAME, "stream": True, "max_tokens": 120_000, "ignore_eos": True,
                    "messages": [{"role": "user", "content": "Count to a million."}]}
            try:
                with httpx.stream("POST", server.url + "/chat/completions", json=body,
                                  timeout=HANG_GUARD_S) as response:
                    for n, line in enumerate(response.iter_lines()):
                        if n == 10:
                            streaming.set()
                        if line == "data: [DONE]":
                            outcome["done"] = True
            except httpx.HTTPError as exc:
                outcome["cut"] = exc

        reader = threading.Thread(target=stream, daemon=True)
        reader.start()
        assert streaming.wait(HANG_GUARD_S), "the answer did not start"
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(HANG_GUARD_S)  # a hang guard: it ends within the grace period
        reader.join(HANG_GUARD_S)
        assert "done" not in outcome, "the server waited for the whole answer before stopping"
        assert server.proc.returncode is not None
        deadline = time.monotonic() + HANG_GUARD_S
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), "the engine worker outlived the server"


def test_a_key_on_the_command_line_is_not_in_the_process_title(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    secret = "k3y-on-argv-0123456789"
    with serve(tiny_nemotron.gguf_path, "--api-key", secret) as server:
        title = server.cmdline()
        assert secret not in title and "--api-key ***" in title, title
        assert httpx.get(server.url + "/models", timeout=HANG_GUARD_S).status_code == 401
        ok = httpx.get(server.url + "/models", headers={"Authorization": f"bearer {secret}"}, timeout=HANG_GUARD_S)
        assert ok.status_code == 200, ok.text
        assert httpx.get(f"http://127.0.0.1:{server.port}/openapi.json", timeout=HANG_GUARD_S).status_code == 401


def test_the_key_from_a_file_or_the_environment(tiny_nemotron, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key_file = tmp_path / "api-key"
    key_file.write_text("from-a-file\n")
    key_file.chmod(0o600)
    with serve(tiny_nemotron.gguf_path, "--api-key-file", str(key_file)) as server:
        assert "from-a-file" not in server.cmdline()
        headers = {"Authorization": "Bearer from-a-file"}
        assert httpx.get(server.url + "/models", headers=headers, timeout=HANG_GUARD_S).status_code == 200
        assert httpx.get(server.url + "/models", timeout=HANG_GUARD_S).status_code == 401
    with serve(tiny_nemotron.gguf_path, env={"NEMOTRON_DESK_API_KEY": "from-the-env"}) as server:
        headers = {"Authorization": "Bearer from-the-env"}
        assert httpx.get(server.url + "/models", headers=headers, timeout=HANG_GUARD_S).status_code == 200
        assert httpx.get(server.url + "/models", timeout=HANG_GUARD_S).status_code == 401


def test_the_port_listens_when_serving_is_printed(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    """The "Serving ... at" line comes once the port accepts connections: a client may connect at once."""
    with serve(tiny_nemotron.gguf_path) as server:
        reply = httpx.get(f"{server.url}/models", timeout=HANG_GUARD_S)  # no retry: the first try must work
        assert reply.status_code == 200


def test_a_port_in_use_is_an_error_that_says_so(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([*cli(), "serve", "-m", str(tiny_nemotron.gguf_path), "--port", str(port)],
                              capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD_S)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
