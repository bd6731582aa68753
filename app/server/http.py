"""The OpenAI-compatible HTTP API (FastAPI): /v1/models, /v1/chat/completions, /v1/completions.

Reasoning comes back the way vLLM with the model's reasoning parser returns it (`reasoning_content`,
and `reasoning`), apart from the content; with reasoning format "none" it stays in the content with
its markers, as a server without a reasoning parser returns it. Tool calls come as OpenAI `tool_calls`.
Errors use OpenAI's error body. Bad input is a 4xx with a message naming the problem; only a failing
engine gives a 5xx, and no answer ever holds a traceback (an unexpected exception is a short 500; its
traceback goes to the log).

A running generation takes one control request, a Nemotron Desk extension: `POST
/v1/chat/completions/{id}/answer_now` (or `/v1/completions/{id}/answer_now`), where id is the
response id its stream carries. It ends the reasoning at the next token boundary by feeding the
closing sequence, and the model goes on to answer in the same stream. 404 for an id that is not
running (unknown or finished).

Every request passes app.server.guard first (Host name, API key, body size); JSON bodies are parsed
with the bounds of app.server.body (depth, text).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.server.body import CheckedRoute
from app.server.convert import ChunkMaker, chat_request, completion_request, full_response, usage_json
from app.server.errors import engine_error, error_body
from app.server.guard import MAX_BODY_BYTES, HostPolicy, RequestGuard
from app.server.runner import EngineRunner
from app.server.schema import ChatCompletionRequest, CompletionRequest
from engine.api import EngineEvent, Error, Finished, GenerationRequest, Usage
from engine.errors import InvalidRequest


@dataclass
class Served:
    """The names the server answers to and the context it states: the app's API switch changes them
    when another model is loaded (`app.state.served`)."""

    names: list[str]
    n_ctx: int


def create_app(runner: EngineRunner, model_names: list[str], n_ctx: int, api_key: str | None = None, *,
               bound_host: str = "127.0.0.1", allowed_hosts: Iterable[str] = (),
               max_body_bytes: int = MAX_BODY_BYTES, on_shutdown: Callable[[], None] | None = None,
               reasoning_format: str = "split") -> FastAPI:
    """The app. `on_shutdown` runs when the server stops (serve ends its engine there, at once).

    `reasoning_format` "split" returns the reasoning apart (vLLM with a reasoning parser); "none"
    leaves it in `content` with its markers (a server without one); a request may choose its own.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="Nemotron Desk", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.router.route_class = CheckedRoute
    app.add_middleware(RequestGuard, hosts=HostPolicy.for_bind(bound_host, allowed_hosts), api_key=api_key,
                       max_body_bytes=max_body_bytes)
    app.state.runner = runner
    served = app.state.served = Served(list(model_names), n_ctx)
    _install_error_handlers(app)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        created = int(time.time())
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "nemotron-desk",
             "max_model_len": served.n_ctx}
            for name in served.names]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest, request: Request) -> Any:
        if (refusal := _check_model(body.model, served.names)) is not None:
            return refusal
        return await _respond(runner, request, chat_request(body, served.n_ctx, reasoning_format),
                              ChunkMaker(body.model, chat=True),
                              body.stream, body.stream_options is not None and body.stream_options.include_usage,
                              body.include_reasoning)

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> Any:
        if (refusal := _check_model(body.model, served.names)) is not None:
            return refusal
        return await _respond(runner, request, completion_request(body), ChunkMaker(body.model, chat=False),
                              body.stream, body.stream_options is not None and body.stream_options.include_usage)

    @app.post("/v1/chat/completions/{completion_id}/answer_now")
    @app.post("/v1/completions/{completion_id}/answer_now")
    async def answer_now(completion_id: str) -> Any:
        if not runner.answer_now(completion_id):
            shown = completion_id if len(completion_id) <= 80 else completion_id[:80] + "…"
            return error_body(404, f"No generation {shown!r} is running (it finished, or never existed).",
                              "not_found_error", "completion_id")
        return {"id": completion_id, "object": "answer_now", "status": "requested"}

    return app


def _check_model(name: str, model_names: list[str]) -> JSONResponse | None:
    if name in model_names:
        return None
    shown = name if len(name) <= 80 else name[:80] + "…"
    return error_body(404, f"The model {shown!r} does not exist. This server serves: {', '.join(model_names)}.",
                      "not_found_error", "model")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            if err.get("type") == "json_invalid":
                problems.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
            elif err.get("type") in ("model_attributes_type", "dict_type") and not where:
                problems.append("the body must be a JSON object (sent with Content-Type: application/json)")
            elif err.get("type") == "extra_forbidden":
                problems.append(f"unknown field '{where}' (not supported by this server)")
            else:
                problems.append(f"{where or 'body'}: {err.get('msg')}")
        return error_body(400, "Invalid request: " + "; ".join(problems) + ".")

    @app.exception_handler(InvalidRequest)
    async def bad_request(request: Request, exc: InvalidRequest) -> JSONResponse:
        return error_body(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_body(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's ServerErrorMiddleware sends this answer, then re-raises: uvicorn logs the traceback.
        return error_body(500, f"The server failed unexpectedly ({exc.__class__.__name__}). The details are in "
                               "the server's log; please report them. Try the request again.")


async def _respond(runner: EngineRunner, request: Request, gen: GenerationRequest, maker: ChunkMaker,
                   stream: bool, include_usage: bool, include_reasoning: bool = True) -> Any:
    events = runner.events(gen, maker.id)
    first = await anext(events)  # waited for here, so an immediate Error can still be an HTTP status
    if isinstance(first, Error):
        await events.aclose()
        return engine_error(first)
    if stream:
        return StreamingResponse(_sse(maker, first, events, include_usage, include_reasoning),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    return await _collect(request, maker, first, events, include_reasoning)


async def _sse(maker: ChunkMaker, first: EngineEvent, events: AsyncGenerator[EngineEvent, None],
               include_usage: bool, include_reasoning: bool) -> AsyncIterator[str]:
    def line(obj: dict[str, Any]) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    if maker.chat:
        yield line(maker.first())
    usage: Usage | None = None
    try:
        event: EngineEvent | None = first
        while event is not None:
            if isinstance(event, Usage):
                usage = event
            elif isinstance(event, Finished):
                yield line(maker.last(event.reason))
                if include_usage and usage is not None:
                    yield line(maker.envelope([], usage=usage_json(usage)))
            elif isinstance(event, Error):
                yield line({"error": {"message": str(event), "type": "server_error", "code": 500}})
            elif (chunk := maker.delta(event, include_reasoning)) is not None:
                yield line(chunk)
            event = await anext(events, None)
        yield "data: [DONE]\n\n"
    finally:
        await events.aclose()  # a disconnected client lands here: the generation is cancelled


async def _collect(request: Request, maker: ChunkMaker, first: EngineEvent,
                   events: AsyncGenerator[EngineEvent, None], include_reasoning: bool) -> Any:
    """Gathers a whole answer, cancelling it if the client goes away meanwhile."""
    collected: list[EngineEvent] = [first]

    async def gather() -> None:
        async for event in events:
            collected.append(event)

    task = asyncio.ensure_future(gather())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                break
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await events.aclose()
    errors = [e for e in collected if isinstance(e, Error)]
    if errors:
        return engine_error(errors[0])
    usage = next((e for e in collected if isinstance(e, Usage)), None)
    finished = next((e for e in collected if isinstance(e, Finished)), None)
    if usage is None or finished is None:
        return error_body(499, "The client closed the request.")
    return full_response(maker, collected, finished.reason, usage, include_reasoning)

