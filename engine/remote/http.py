"""RemoteHttp: talks to an OpenAI-compatible server, turning every failure into an error a person can act on.

Requests that fail because the server is busy (429, 502, 503, 504) or cannot be reached are tried
again with growing pauses (a `Retry-After` header is honoured, up to a limit) before the error is
reported. Streams are Server-Sent Events read on a helper thread, so a cancel is noticed within
50 ms even while the server is silent (a long prefill), and closing the stream closes the
connection: the server sees the disconnect and stops generating.

The API key travels only in the Authorization header; it is never logged and never part of a message.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Generator
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from engine.api import RetryPolicy
from engine.errors import EngineError

RETRY_STATUS = (429, 502, 503, 504)
_POLL_S = 0.05
_END = object()
_DEFAULT_RETRY = RetryPolicy()


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class ServerUnreachable(EngineError):
    kind = "unreachable"


class ServerAuthFailed(EngineError):
    kind = "auth"


class ServerModelMissing(EngineError):
    kind = "model_missing"


class ServerOverloaded(EngineError):
    kind = "overloaded"


class ServerTimeout(EngineError):
    kind = "timeout"


class ServerFailed(EngineError):
    kind = "remote"


class ServerRefused(EngineError):
    kind = "bad_request"


def _server_message(response: httpx.Response) -> str:
    """The server's own explanation, from OpenAI's error body or FastAPI's, else the start of the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("detail", "message", "error"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300]


def _close_when_it_comes(result: queue.Queue[tuple[bool, Any]]) -> None:
    ok, value = result.get()
    if ok:
        value.close()


class RemoteHttp:
    """One server: its base URL, the optional key, timeouts and the retry policy."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout_s: float = 120.0,
                 retry: RetryPolicy = _DEFAULT_RETRY) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.retry = retry
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url + "/", headers=headers,
                                    timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)))

    def close(self) -> None:
        self._client.close()

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    # -- requests --------------------------------------------------------------------------------

    def get_json(self, path: str, cancel: CancelFlag | None = None, *, what: str = "") -> Any:
        response = self._send("GET", path, None, cancel, stream=False, what=what)
        if response is None:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ServerFailed(f"{self._where(path)} did not answer with JSON.",
                               "Check that the URL points at an OpenAI-compatible API (it usually ends in /v1).",
                               ) from exc

    def try_get_json(self, url: str) -> Any:
        """An optional extra (llama.cpp's /props, say): None when the server does not have it."""
        try:
            response = self._client.get(url)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def stream(self, path: str, body: dict[str, Any], cancel: CancelFlag, *,
               what: str = "") -> Generator[dict[str, Any], None, None]:
        """Yield the JSON chunks of a streamed answer; returns at `[DONE]`, at the end, or on cancel."""
        response = self._send("POST", path, body, cancel, stream=True, what=what)
        if response is None:
            return
        lines: queue.Queue[object] = queue.Queue()

        def read() -> None:
            try:
                for line in response.iter_lines():
                    lines.put(line)
                lines.put(_END)
            except BaseException as exc:  # handed to the generating thread, which decides
                lines.put(exc)

        reader = threading.Thread(target=read, name="remote-stream", daemon=True)
        reader.start()
        try:
            while not cancel.is_set():
                try:
                    item = lines.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    if cancel.is_set():
                        return
                    raise self._transport_error(item, path) from item
                chunk = self._parse_event(str(item), path)
                if chunk is _END:
                    return
                if isinstance(chunk, dict):
                    yield chunk
        finally:
            response.close()  # the server sees the connection go and stops generating

    # -- internals -------------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: dict[str, Any] | None, cancel: CancelFlag | None, *,
              stream: bool, what: str) -> httpx.Response | None:
        pause = self.retry.first_pause_s
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                request = self._client.build_request(method, path, json=body)
                response = self._send_once(request, stream, cancel)
                if response is None:
                    return None  # cancelled while waiting for the answer to start
            except httpx.TransportError as exc:
                # Not connected, or a kept-alive connection the server had closed meanwhile ("Server
                # disconnected without sending a response"): nothing was answered, so ask again.
                if last or not isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError)):
                    raise self._transport_error(exc, path) from exc
                wait = pause
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                response.close()
                if last or response.status_code not in RETRY_STATUS:
                    raise self._status_error(response, path, what, attempt)
                wait = self._retry_after(response, pause)
            if not self._sleep(wait, cancel):
                return None
            pause *= 2
        return None  # not reached: the last attempt returns or raises

    def _send_once(self, request: httpx.Request, stream: bool, cancel: CancelFlag | None) -> httpx.Response | None:
        """Send on a helper thread, so a cancel is noticed while a busy server has not answered yet
        (a long prefill, a queue). A cancelled request's response is closed as soon as it arrives."""
        if cancel is None:
            return self._client.send(request, stream=stream)
        result: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)

        def send() -> None:
            try:
                result.put((True, self._client.send(request, stream=stream)))
            except BaseException as exc:  # handed to the waiting thread
                result.put((False, exc))

        threading.Thread(target=send, name="remote-send", daemon=True).start()
        while True:
            try:
                ok, value = result.get(timeout=_POLL_S)
            except queue.Empty:
                if cancel.is_set():
                    threading.Thread(target=_close_when_it_comes, args=(result,), daemon=True).start()
                    return None
                continue
            if not ok:
                raise value
            response: httpx.Response = value
            return response

    def _retry_after(self, response: httpx.Response, pause: float) -> float:
        try:
            asked = float(response.headers.get("retry-after", ""))
        except ValueError:
            return pause
        return max(0.0, min(asked, self.retry.longest_pause_s))

    @staticmethod
    def _sleep(seconds: float, cancel: CancelFlag | None) -> bool:
        """Pause; False when cancelled meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                return False
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        return not (cancel is not None and cancel.is_set())

    def _where(self, path: str) -> str:
        return f"The server at {self.base_url}" if path == "models" else f"{self.base_url}/{path}"

    def _parse_event(self, line: str, path: str) -> object:
        if not line.startswith("data:"):
            return None  # comments (": ping"), event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return _END
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise ServerFailed(f"The server sent something that is not JSON: {data[:120]!r}.",
                               "Check that the URL points at an OpenAI-compatible API.") from exc
        if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
            message = chunk["error"].get("message") or "no message"
            raise ServerFailed(f"The server failed while answering: {message}", "Try again.")
        return chunk

    def _transport_error(self, exc: BaseException, path: str) -> EngineError:
        if isinstance(exc, httpx.TimeoutException):
            phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
            return ServerTimeout(
                f"The server at {self.base_url} did not {phase} within {self.timeout_s:g} s.",
                "It may be busy or still loading the model: try again in a moment. "
                "Check the address if it never answers.")
        if isinstance(exc, httpx.ConnectError):
            return ServerUnreachable(
                f"Cannot reach the server at {self.base_url} ({exc or 'connection failed'}).",
                "Check the address and port, that the server is running, and that this machine may reach it "
                f"(try: curl {self.base_url}/models).")
        if isinstance(exc, httpx.HTTPError):
            return ServerFailed(f"The connection to {self.base_url} broke: {exc.__class__.__name__}: {exc}.",
                                "Try again; if it repeats, check the network and the server's log.")
        return ServerFailed(f"Reading from {self.base_url} failed: {exc.__class__.__name__}: {exc}.", "Try again.")

    def _status_error(self, response: httpx.Response, path: str, what: str, attempts: int) -> EngineError:
        status, said = response.status_code, _server_message(response)
        detail = f" The server said: {said}" if said else ""
        if status in (401, 403):
            return ServerAuthFailed(
                f"The server at {self.base_url} refused the API key (HTTP {status}).{detail}",
                "Enter the right key in Model ▸ Connect to a server…, or pass --api-key "
                "(or set NEMOTRON_DESK_API_KEY).")
        if status == 404:
            if path == "models":
                return ServerFailed(f"There is no OpenAI-compatible API at {self.base_url} (HTTP 404).",
                                    "Check the URL: it usually ends in /v1, e.g. http://gpu-box:8000/v1.")
            if path == "completions":
                return ServerModelMissing(
                    f"The server refused {self.base_url}/completions (HTTP 404).{detail}",
                    "On this server the reasoning budget and thinking switch continue the text through "
                    "/v1/completions: turn the budget off, or use a server that offers it (vLLM, SGLang, NIM).")
            return ServerModelMissing(f"The server has no {what or path} (HTTP 404).{detail}",
                                      "Pick one of the models the server lists (Test connection lists them).")
        if status in RETRY_STATUS:
            return ServerOverloaded(
                f"The server at {self.base_url} is overloaded (HTTP {status}), still after {attempts} tries.{detail}",
                "Try again in a minute, or ask whoever runs the server about its capacity.")
        if status < 500:
            return ServerRefused(f"The server refused the request (HTTP {status}).{detail}",
                                 "Change the setting it names, or turn it off.")
        return ServerFailed(f"The server failed (HTTP {status}).{detail}",
                            "Try again; if it repeats, the server's log says why.")
