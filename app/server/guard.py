"""RequestGuard: who may ask the server anything, checked before any route runs.

Three checks, in this order, for every HTTP request (every path, /openapi.json and 404s included):

1. The Host header names this server (a DNS-rebinding page reaches 127.0.0.1 under its own name,
   and its requests carry that name): see HostPolicy.
2. The API key, when one is set: `Authorization: Bearer KEY`, the scheme in any case, the key
   compared in constant time.
3. The body is at most `max_body_bytes`: a declared Content-Length over it is refused before a byte
   is read, and a body without one is counted as it arrives and refused when it passes the limit.

A pure ASGI middleware, not Starlette's BaseHTTPMiddleware: that one hides client disconnects, which
must cancel generations.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.server.errors import error_body

#: Names that always mean this machine (a rebinding attacker cannot own them).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Binds that listen on every interface.
WILDCARD_BINDS = ("0.0.0.0", "::", "")
#: The largest request body accepted: a whole 1M-token conversation as JSON fits several times over.
MAX_BODY_BYTES = 32 * 2**20


def host_name(header: str) -> str:
    """"[::1]:8000" -> "::1", "LocalHost.:80" -> "localhost": the name without port, case or final dot."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, colon, port = header.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        header = name
    return header.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPolicy:
    """The Host names this server answers to.

    Always: localhost, 127.0.0.1, ::1, and any IP address literal (a page served from some other
    origin cannot make a browser send this server's address as its Host: only a DNS name can be
    rebound). Also the name the server was bound to (`--host gpu-box.lan`) and each `--allowed-host`.
    A wildcard bind (0.0.0.0, ::) adds no name: reach it by address, or add its names with
    `--allowed-host`. `--allowed-host '*'` turns the check off (only behind a proxy that checks Host).
    """

    names: frozenset[str]
    any_name: bool = False

    @classmethod
    def for_bind(cls, bound_host: str, allowed: Iterable[str] = ()) -> HostPolicy:
        extra = [host_name(name) for name in allowed]
        names = {*LOOPBACK_NAMES, *(n for n in extra if n != "*")}
        if bound_host not in WILDCARD_BINDS:
            names.add(host_name(bound_host) if not is_ip_literal(bound_host) else bound_host.lower())
        return cls(frozenset(names), any_name="*" in extra)

    def allows(self, header: str | None) -> bool:
        if self.any_name:
            return True
        if not header:
            return False
        name = host_name(header)
        return name in self.names or is_ip_literal(name)


def key_matches(authorization: bytes, key: str) -> bool:
    """Whether an Authorization header carries `key` as a bearer token (scheme case-insensitive)."""
    scheme, _, token = authorization.strip().partition(b" ")
    # compare_digest on bytes takes the same time wherever the first difference is.
    return hmac.compare_digest(token.strip(), key.encode("utf-8")) and scheme.lower() == b"bearer"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the limit; FastAPI lets HTTPExceptions through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the server's limit of {limit // 2**20} MiB. "
                              "Send a shorter conversation, or split the work into several requests.")


class RequestGuard:
    def __init__(self, app: ASGIApp, hosts: HostPolicy, api_key: str | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.hosts = hosts
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        hosts = 0
        for name, value in scope.get("headers", []):
            hosts += name.lower() == b"host"
            headers.setdefault(name.lower(), value)  # the first, as Starlette's Request reads them
        refusal = (400, "A request must carry exactly one Host header.") if hosts > 1 else self._refusal(headers)
        if refusal is not None:
            status, message = refusal
            await error_body(status, message)(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._counting(receive), sending)
        except BodyTooLarge as exc:  # read outside a route (the routes' own handler answers first)
            if started:
                raise
            await error_body(413, str(exc.detail))(scope, receive, send)

    def _refusal(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.hosts.allows(host):
            return 400, (f"This server does not answer to the host name {host_name(host)!r}"
                         f"{'' if host else ' (no Host header)'}. Use http://127.0.0.1:PORT, or start the "
                         "server with --allowed-host NAME to serve that name.")
        if self.api_key is not None and not key_matches(headers.get(b"authorization", b""), self.api_key):
            return 401, "Missing or wrong API key. Send 'Authorization: Bearer <key>'."
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return 413, str(BodyTooLarge(self.max_body_bytes).detail)
        return None

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return counted
