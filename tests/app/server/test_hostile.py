"""The server against hostile and broken requests (issue 12): each answer is a 4xx with a JSON error
that names the problem, nothing wedges the engine, and a normal request still answers afterwards.

Real parts: uvicorn on 127.0.0.1, the engine worker, llama.cpp on the tiny Nemotron-H GGUF. Every
request has a timeout that only guards against a hang (the bugs fixed here hung for good).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.app.server.live_server import LiveServer

TINY = "tiny-nemotron"
KEY = "s3cret"
HANG_GUARD_S = 120
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
NORMAL = {"model": TINY, "messages": QUESTION, "max_tokens": 4, "seed": 1}


@pytest.fixture(scope="module")
def server(tiny_nemotron) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    live = LiveServer(tiny_nemotron.gguf_path, TINY, allowed_hosts=["gpu-box.lan"])
    yield live
    live.close()


@pytest.fixture(scope="module")
def keyed(tiny_nemotron) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    live = LiveServer(tiny_nemotron.gguf_path, TINY, api_key=KEY)
    yield live
    live.close()


def post(server: LiveServer, body: Any, path: str = "/chat/completions", **kwargs: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(server.base_url + path, content=body, timeout=HANG_GUARD_S,
                          headers={"Content-Type": "application/json", **kwargs.pop("headers", {})}, **kwargs)
    return httpx.post(server.base_url + path, json=body, timeout=HANG_GUARD_S, **kwargs)


def assert_json_error(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message: str = response.json()["error"]["message"]
    for word in words:
        assert word in message, message
    assert "Traceback" not in response.text and ".py" not in response.text
    return message


def assert_still_answers(server: LiveServer) -> None:
    reply = post(server, NORMAL)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["finish_reason"] in ("stop", "length")


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        value = {"type": "object", "properties": {"a": value}}
    return value


# -- 1: depth --------------------------------------------------------------------------------------


def test_deep_tool_parameters_are_a_400_and_the_engine_keeps_answering(server: LiveServer) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": nested(300)}}]  # ~600 levels
    assert_json_error(post(server, {**NORMAL, "tools": tools}), 400, "nested more than 64 levels", "tools[0]")
    assert_still_answers(server)


def test_deep_tool_call_arguments_in_a_string_are_a_400(server: LiveServer) -> None:
    for levels in (600, 5000):  # pickle fails past ~500; json.loads itself past ~1000
        arguments = '{"a":' * levels + "1" + "}" * levels
        history = [QUESTION[0], {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
        assert_json_error(post(server, {**NORMAL, "messages": history}), 400, "nested more than 64 levels")
    assert_still_answers(server)


def test_a_body_nested_past_the_parser_is_a_400(server: LiveServer) -> None:
    body = b'{"model": "tiny-nemotron", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_json_error(post(server, body), 400, "nested more than 64 levels")
    assert_still_answers(server)


# -- 4: Host ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "localhost.attacker.example",
                                  "127.0.0.1.nip.io:{port}", ""])
def test_a_foreign_host_name_is_refused(server: LiveServer, host: str) -> None:
    response = httpx.get(server.base_url + "/models", headers={"Host": host.format(port=server.port)},
                         timeout=HANG_GUARD_S)
    assert_json_error(response, 400, "does not answer to the host name", "--allowed-host")


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST", "127.0.0.1:{port}", "[::1]:{port}",
                                  "192.168.1.20:{port}", "gpu-box.lan:{port}", "localhost."])
def test_own_names_addresses_and_allowed_hosts_are_answered(server: LiveServer, host: str) -> None:
    response = httpx.get(server.base_url + "/models", headers={"Host": host.format(port=server.port)},
                         timeout=HANG_GUARD_S)
    assert response.status_code == 200, response.text


def test_the_host_check_comes_before_the_key(keyed: LiveServer) -> None:
    response = httpx.get(keyed.base_url + "/models", timeout=HANG_GUARD_S,
                         headers={"Host": "attacker.example", "Authorization": f"Bearer {KEY}"})
    assert_json_error(response, 400, "host name")


# -- 5: size ----------------------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(server: LiveServer) -> None:
    """A Content-Length of 100 GB and no body at all: the answer comes at once, or this would wait."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD_S) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (100 * 2**30))
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"application/json" in head.lower()
    assert "32 MiB" in json.loads(body)["error"]["message"]


def test_a_streamed_body_is_cut_at_the_limit(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    live = LiveServer(tiny_nemotron.gguf_path, TINY, max_body_bytes=2**20)
    try:
        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it arrives
            yield b'{"model": "tiny-nemotron", "messages": [{"role": "user", "content": "'
            for _ in range(9):
                yield b"x" * 2**17
            yield b'"}]}'

        response = httpx.post(live.base_url + "/chat/completions", content=chunks(), timeout=HANG_GUARD_S,
                              headers={"Content-Type": "application/json"})
        assert_json_error(response, 413, "1 MiB")
        assert_still_answers(live)
    finally:
        live.close()


# -- 7: text that is not Unicode, and unexpected failures ---------------------------------------------


def test_a_lone_surrogate_is_a_400_naming_the_field(server: LiveServer) -> None:
    body = b'{"model": "tiny-nemotron", "max_tokens": 4, "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    assert_json_error(post(server, body), 400, "messages[0].content", "surrogate")
    raw = b'{"model": "tiny-nemotron", "max_tokens": 4, "prompt": "\\udfff"}'
    assert_json_error(post(server, raw, "/completions"), 400, "prompt", "surrogate")
    key = b'{"model": "tiny-nemotron", "messages": [{"role": "user", "content": "hi"}], ' \
          b'"chat_template_kwargs": {"\\ud800": 1}}'
    assert_json_error(post(server, key), 400, "surrogate")
    assert_still_answers(server)


def test_an_unexpected_exception_is_a_short_500_without_a_traceback(server: LiveServer) -> None:
    app = server.server.config.app

    def fail() -> None:  # a route added for this test only: any bug in a handler behaves the same
        raise RuntimeError("/opt/secret/install/path/module.py went wrong")

    app.add_api_route("/v1/test-failure", fail, methods=["GET"])
    response = httpx.get(server.base_url + "/test-failure", timeout=HANG_GUARD_S)
    message = assert_json_error(response, 500, "RuntimeError", "log")
    assert "/opt/secret" not in message


# -- 9: the key covers every route -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/openapi.json", "/v1/models", "/nowhere", "/docs"])
def test_every_route_needs_the_key(keyed: LiveServer, path: str) -> None:
    url = f"http://127.0.0.1:{keyed.port}{path}"
    assert_json_error(httpx.get(url, timeout=HANG_GUARD_S), 401, "API key")


def test_openapi_is_served_with_the_key(keyed: LiveServer) -> None:
    response = httpx.get(f"http://127.0.0.1:{keyed.port}/openapi.json", timeout=HANG_GUARD_S,
                         headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200 and "/v1/chat/completions" in response.json()["paths"]


# -- 11: a worker that died while idle ----------------------------------------------------------------


def test_the_next_request_restarts_a_worker_that_died_idle(server: LiveServer) -> None:
    assert_still_answers(server)
    pid = server.client.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + HANG_GUARD_S
    while server.client.worker_pid == pid:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert_still_answers(server)
    assert server.client.worker_pid not in (None, pid)


# -- 12: booleans and the bearer scheme ---------------------------------------------------------------


@pytest.mark.parametrize(("extra", "field"), [
    ({"chat_template_kwargs": {"enable_thinking": "false"}}, "chat_template_kwargs.enable_thinking"),
    ({"chat_template_kwargs": {"enable_thinking": 0}}, "chat_template_kwargs.enable_thinking"),
    ({"stream": "true"}, "stream"),
    ({"include_reasoning": "no"}, "include_reasoning"),
    ({"ignore_eos": 1}, "ignore_eos"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"max_tokens": True}, "max_tokens"),
    ({"logprobs": True}, "logprobs"),
])
def test_booleans_are_booleans(server: LiveServer, extra: dict[str, Any], field: str) -> None:
    assert_json_error(post(server, {**NORMAL, **extra}), 400, field)


def test_thinking_off_as_a_real_boolean_still_works(server: LiveServer) -> None:
    reply = post(server, {**NORMAL, "max_tokens": 8, "chat_template_kwargs": {"enable_thinking": False}})
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(keyed: LiveServer, scheme: str) -> None:
    response = httpx.get(keyed.base_url + "/models", headers={"Authorization": f"{scheme} {KEY}"},
                         timeout=HANG_GUARD_S)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("authorization", [f"Basic {KEY}", f"Bearer {KEY}x", f"Bearer{KEY}", "bearer", KEY])
def test_wrong_keys_and_schemes_are_still_401(keyed: LiveServer, authorization: str) -> None:
    response = httpx.get(keyed.base_url + "/models", headers={"Authorization": authorization},
                         timeout=HANG_GUARD_S)
    assert_json_error(response, 401, "API key")


def test_errors_in_a_stream_are_json_too(server: LiveServer) -> None:
    body = {**NORMAL, "stream": True, "messages": [{"role": "user", "content": "blue sky " * 5000}]}
    response = post(server, body)
    assert_json_error(response, 400, "context")
    json.loads(response.text)


def test_cross_site_requests_get_no_cors_and_text_plain_is_refused(server: LiveServer) -> None:
    """What a page on another origin could send without a preflight (a 'simple' request)."""
    origin = {"Origin": "http://attacker.example"}
    preflight = httpx.options(server.base_url + "/chat/completions", timeout=HANG_GUARD_S, headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert "access-control-allow-origin" not in preflight.headers
    simple = httpx.post(server.base_url + "/chat/completions", content=json.dumps(NORMAL), timeout=HANG_GUARD_S,
                        headers={**origin, "Content-Type": "text/plain"})
    assert_json_error(simple, 400, "Content-Type: application/json")
    assert "access-control-allow-origin" not in simple.headers
