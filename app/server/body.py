"""Request bodies parsed with bounds: JSON at most MAX_NESTING levels deep, whose strings are text.

FastAPI parses a JSON body with `Request.json()`; CheckedRoute gives every route a request whose
`json()` runs `parse_body` instead (in a thread: a 32 MiB body must not stall the event loop). A
value too deep, a lone surrogate or a key that is not text is a 400 that names the place, before
pydantic or the engine sees the body. Its size is bounded earlier, by app.server.guard.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from engine.api import MAX_NESTING, check_value
from engine.errors import InvalidRequest


def parse_body(raw: bytes) -> Any:
    """The body's JSON value; HTTPException(400) when it is JSON the server will not take.

    json.JSONDecodeError passes through: FastAPI answers it as "not valid JSON" with the position.
    """
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise
    except RecursionError as exc:
        raise HTTPException(400, f"The request is nested more than {MAX_NESTING} levels deep. "
                                 "Flatten it: tool schemas and arguments rarely need ten.") from exc
    except ValueError as exc:  # not UTF-8, an integer of thousands of digits
        raise HTTPException(400, f"The body is not valid JSON: {exc}.") from exc
    return checked_json(value)


def checked_json(value: Any, where: str = "") -> Any:
    """`value` when it is within the bounds; HTTPException(400) naming the place otherwise."""
    try:
        check_value(where, value)
    except InvalidRequest as exc:
        raise HTTPException(400, f"Invalid request: {exc}") from exc
    return value


class _CheckedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = await run_in_threadpool(parse_body, await self.body())
        return self._json


class CheckedRoute(APIRoute):
    """An APIRoute whose JSON bodies go through parse_body (FastAPI's documented way to do this)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            return await handler(_CheckedRequest(request.scope, request.receive))

        return checked
