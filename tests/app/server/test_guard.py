"""Who may ask the server: the Host names it answers to, the bearer key, secrets kept out of `ps`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from app.cli.proctitle import redacted
from app.cli.serve import read_api_key
from app.server.guard import HostPolicy, host_name, key_matches


@pytest.mark.parametrize(("header", "name"), [
    ("localhost:8000", "localhost"), ("LocalHost.", "localhost"), ("[::1]:8000", "::1"), ("[::1]", "::1"),
    ("127.0.0.1:80", "127.0.0.1"), ("evil.example:8000", "evil.example"), ("::1", "::1"),
])
def test_host_names_lose_port_case_and_final_dot(header: str, name: str) -> None:
    assert host_name(header) == name


def test_a_loopback_bind_answers_to_loopback_names_and_addresses_only() -> None:
    policy = HostPolicy.for_bind("127.0.0.1")
    for ok in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "10.0.0.7:8000"):
        assert policy.allows(ok), ok
    for bad in ("evil.example", "localhost.evil.example", "gpu-box.lan", "", None):
        assert not policy.allows(bad), bad


def test_a_named_bind_answers_to_that_name_and_allowed_hosts_add_more() -> None:
    policy = HostPolicy.for_bind("gpu-box.lan", ["Chat.Example.Org", "other:9000"])
    for ok in ("gpu-box.lan:8000", "GPU-BOX.LAN", "chat.example.org", "other", "localhost"):
        assert policy.allows(ok), ok
    assert not policy.allows("evil.example")


@pytest.mark.parametrize("bind", ["0.0.0.0", "::"])
def test_a_wildcard_bind_answers_to_addresses_but_names_must_be_allowed(bind: str) -> None:
    """Listening everywhere, the server is reached at any of the machine's addresses; a DNS name is
    what a rebinding page uses, so names other than localhost must be listed with --allowed-host."""
    policy = HostPolicy.for_bind(bind)
    assert policy.allows("192.168.1.20:8000") and policy.allows("[fe80::1]:8000") and policy.allows("localhost")
    assert not policy.allows("my-workstation.lan:8000")
    assert HostPolicy.for_bind(bind, ["my-workstation.lan"]).allows("my-workstation.lan:8000")


def test_star_turns_the_host_check_off() -> None:
    assert HostPolicy.for_bind("0.0.0.0", ["*"]).allows("anything.example")


@pytest.mark.parametrize(("header", "ok"), [
    (b"Bearer k3y", True), (b"bearer k3y", True), (b"BEARER  k3y ", True), (b"Bearer k3y2", False),
    (b"Basic k3y", False), (b"k3y", False), (b"", False), (b"Bearer", False), (b"Bearer \xff", False),
])
def test_the_bearer_key_with_any_case_of_scheme(header: bytes, ok: bool) -> None:
    assert key_matches(header, "k3y") is ok


def test_secrets_are_redacted_from_the_title() -> None:
    argv = ["nemotron-desk", "serve", "--api-key", "K1", "--api-key=K2", "--api", "K3", "--port", "8000"]
    clean = redacted(argv)
    assert not {"K1", "K2", "K3"} & set(" ".join(clean).replace("=", " ").split())
    assert clean[-2:] == ["--port", "8000"] and clean[:3] == ["nemotron-desk", "serve", "--api-key"]
    assert redacted(["nemotron-desk", "serve", "--api-key-file", "k.txt"]) == \
        ["nemotron-desk", "serve", "--api-key-file", "k.txt"]


def _args(**kwargs: object) -> argparse.Namespace:
    return argparse.Namespace(**{"api_key": None, "api_key_file": None, **kwargs})


def test_the_key_comes_from_a_file_the_environment_or_the_option(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEMOTRON_DESK_API_KEY", raising=False)
    assert read_api_key(_args()) is None
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert read_api_key(_args(api_key_file=key_file)) == "from-file"
    monkeypatch.setenv("NEMOTRON_DESK_API_KEY", "from-env")
    assert read_api_key(_args()) == "from-env"
    assert read_api_key(_args(api_key="from-argv")) == "from-argv"
    assert read_api_key(_args(api_key_file=key_file)) == "from-file"


@pytest.mark.parametrize(("content", "words"), [(None, "cannot read"), ("\n", "is empty"), ("two words", "one line")])
def test_a_bad_key_file_is_explained(tmp_path: Path, content: str | None, words: str) -> None:
    key_file = tmp_path / "key"
    if content is not None:
        key_file.write_text(content)
    with pytest.raises(ValueError, match=words):
        read_api_key(_args(api_key_file=key_file))


def test_two_host_headers_are_refused() -> None:
    """A proxy and the server could read different ones: the guard takes no chances."""
    import asyncio

    from starlette.types import Message, Receive, Scope, Send

    from app.server.guard import RequestGuard

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def status(headers: list[tuple[bytes, bytes]]) -> int:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        guard = RequestGuard(answer, HostPolicy.for_bind("127.0.0.1"))
        await guard({"type": "http", "method": "GET", "path": "/", "headers": headers}, receive, send)
        return int(sent[0]["status"])

    assert asyncio.run(status([(b"host", b"localhost")])) == 200
    assert asyncio.run(status([(b"host", b"localhost"), (b"host", b"evil.example")])) == 400
