"""The one shape of every error the server answers: OpenAI's error body, a short message, no traceback."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from engine.api import Error

#: Engine error kinds that are the request's fault or the server's state, not a failure.
_STATUS = {"bad_request": 400, "context": 400, "no_model": 503, "bad_model": 503}
_KINDS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "invalid_request_error"}


def error_body(status: int, message: str, kind: str | None = None, param: str | None = None) -> JSONResponse:
    kind = kind or _KINDS.get(status, "invalid_request_error" if status < 500 else "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status)


def engine_error(error: Error) -> JSONResponse:
    """An engine Error event as an HTTP answer: 4xx when the request was at fault, else 5xx."""
    status = _STATUS.get(error.kind, 500)
    return error_body(status, str(error), "invalid_request_error" if status < 500 else "server_error")
