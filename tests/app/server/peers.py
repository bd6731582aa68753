"""Servers written by others, started on 127.0.0.1 for the remote-engine tests.

`LlamaCppPythonServer` runs llama-cpp-python's own OpenAI-compatible server (`python -m
llama_cpp.server`) in a child process and keeps its output, so a test can read what the server did
(its access log, "Disconnected from client" when a stream is closed early).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.app.server.live_server import free_port


class LlamaCppPythonServer:
    def __init__(self, model: Path, alias: str, log: Path, n_ctx: int = 4096) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.alias = alias
        self.log_path = log
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", "2",
             "--n_gpu_layers", "0"],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, f"llama_cpp.server exited: {self.output()[-2000:]}"
            assert time.monotonic() < deadline, "llama_cpp.server did not start"
            try:
                if httpx.get(self.base_url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def requests(self, path: str) -> int:
        """How many requests for `path` the server's access log shows."""
        return self.output().count(f'"POST {path} HTTP/1.1"')

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
