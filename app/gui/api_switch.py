"""The local OpenAI-compatible server, switched on from the app: the same engine the window uses.

The window and the API share one engine process; requests from both take turns (EngineClient runs
one command at a time), so the model is loaded once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from engine.api import ModelInfo
from engine.client import EngineClient

REMOTE_DEFAULT_MAX_TOKENS = 8192


def served_names(model: ModelInfo) -> list[str]:
    """A remote model is named by the server's name for it; a local one by its file or folder."""
    own = model.name if model.backend == "remote" else Path(model.path).stem
    return list(dict.fromkeys([own, "nemotron-desk"]))


def served_context(model: ModelInfo) -> int:
    """A remote model's context may be unknown (0), and the API's default answer length is the
    context, so a fallback stands in."""
    return model.n_ctx or REMOTE_DEFAULT_MAX_TOKENS


class ApiServer:
    """uvicorn in a thread, serving one loaded model on 127.0.0.1."""

    def __init__(self, client: EngineClient, model: ModelInfo, port: int) -> None:
        import uvicorn  # deferred: the HTTP stack loads only when the switch is turned on

        from app.server.http import create_app
        from app.server.runner import SHUTDOWN_GRACE_S, EngineRunner

        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1"
        self.model = model
        self._app = create_app(EngineRunner(client), served_names(model), served_context(model))
        self._server = uvicorn.Server(uvicorn.Config(
            self._app, host="127.0.0.1", port=port, log_level="warning",
            # Stopping the switch during a streamed answer: give it the same grace as `serve`, then
            # close, so stop() never outlives its join.
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S))
        self._thread = threading.Thread(target=self._serve, name="api-server", daemon=True)

    def follow(self, model: ModelInfo) -> None:
        """Another model was loaded into the shared engine: serve it under its name and context."""
        self.model = model
        served = self._app.state.served
        served.names, served.n_ctx = served_names(model), served_context(model)

    def _serve(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits so when it cannot listen; start() says it
            self._server.run()

    def start(self, timeout: float = 10.0) -> str | None:
        """Start serving; None when it runs, else what went wrong and what to do."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                return (f"Could not listen on 127.0.0.1:{self.port}; another program may be using the port. "
                        "Close it, or choose another port in the Server menu.")
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
