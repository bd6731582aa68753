"""SecretStore against a real keyring backend class and against the machine's own (none).

This machine has no Secret Service daemon, so keyring's chosen backend is `fail.Keyring`. The
persistent path is tested with a small in-memory KeyringBackend subclass installed through
keyring's own `set_keyring` (standing in for the OS keychain the machine cannot have).
"""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from engine.services.secrets import SecretStore


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.data.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.data[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.data:
            raise keyring.errors.PasswordDeleteError(username)
        del self.data[(service, username)]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    yield
    keyring.set_keyring(previous)


def test_saved_in_the_keyring_and_read_by_a_new_store(memory_keyring: MemoryKeyring) -> None:
    store = SecretStore("test-service")
    assert store.persistent
    assert store.set("hf-token", "hf_abc") is True
    assert memory_keyring.data == {("test-service", "hf-token"): "hf_abc"}
    assert SecretStore("test-service").get("hf-token") == "hf_abc"  # survives a "restart"
    store.delete("hf-token")
    assert SecretStore("test-service").get("hf-token") is None
    store.delete("hf-token")  # deleting twice is fine


def test_without_a_keyring_the_secret_lives_for_the_session_only(no_keyring: None) -> None:
    store = SecretStore("test-service")
    assert not store.persistent
    assert "session only" in store.where
    assert store.set("remote:http://x", "key") is False
    assert store.get("remote:http://x") == "key"
    assert SecretStore("test-service").get("remote:http://x") is None  # a new process would not see it
    store.delete("remote:http://x")
    assert store.get("remote:http://x") is None
