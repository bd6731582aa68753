"""A real `nemotron-desk` HTTP server on 127.0.0.1 for tests: real engine worker, real uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from app.server.http import create_app
from app.server.runner import EngineRunner
from engine.api import LlamaLoadOptions, LoadSpec, ModelInfo
from engine.client import EngineClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, model: Path, name: str, api_key: str | None = None, n_ctx: int = 4096,
                 **options: Any) -> None:
        """`options` go to create_app (allowed_hosts, max_body_bytes, reasoning_format, ...)."""
        self.client = EngineClient()
        events = list(self.client.load(LoadSpec(str(model), LlamaLoadOptions(n_ctx=n_ctx, n_threads=2,
                                                                             n_gpu_layers=0))))
        assert isinstance(events[-1], ModelInfo), events
        self.runner = EngineRunner(self.client)
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        app = create_app(self.runner, [name], events[-1].n_ctx, api_key=api_key, **options)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.client.close()
