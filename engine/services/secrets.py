"""Secrets (the Hugging Face token, remote server API keys) kept in the system keyring.

A secret is never written to a file or a log by us. When the machine has no usable keyring
backend (a headless Linux box without a Secret Service, say), the secret is kept in this process's
memory for the session only and `SecretStore.persistent` is False, so front ends can say so.
"""

from __future__ import annotations

import logging

import keyring
import keyring.errors

SERVICE = "nemotron-desk"

log = logging.getLogger(__name__)


class SecretStore:
    """One place for named secrets: `hf-token`, `remote:<url>`, ..."""

    def __init__(self, service: str = SERVICE) -> None:
        self.service = service
        self._session: dict[str, str] = {}

    @property
    def persistent(self) -> bool:
        """True when secrets survive a restart (a real keyring backend is available)."""
        try:
            backend = keyring.get_keyring()
            priority = float(getattr(backend, "priority", 0))
        except Exception:  # a broken keyring configuration is "no keyring", not a crash
            return False
        return priority > 0

    @property
    def where(self) -> str:
        """A short description for the person: where the secret goes."""
        if self.persistent:
            return f"the system keyring ({type(keyring.get_keyring()).__name__})"
        return "memory for this session only (no system keyring is available)"

    def get(self, name: str) -> str | None:
        if name in self._session:
            return self._session[name]
        if not self.persistent:
            return None
        try:
            return keyring.get_password(self.service, name)
        except keyring.errors.KeyringError as exc:
            log.warning("Could not read %s from the keyring: %s", name, type(exc).__name__)
            return None

    def set(self, name: str, value: str) -> bool:
        """Store a secret. Returns True when it was saved in the keyring, False when kept for the session."""
        if self.persistent:
            try:
                keyring.set_password(self.service, name, value)
                self._session.pop(name, None)
                return True
            except keyring.errors.KeyringError as exc:
                log.warning("Could not save %s in the keyring: %s", name, type(exc).__name__)
        self._session[name] = value
        return False

    def delete(self, name: str) -> None:
        self._session.pop(name, None)
        if not self.persistent:
            return
        try:
            keyring.delete_password(self.service, name)
        except keyring.errors.PasswordDeleteError:
            pass  # nothing stored under that name
        except keyring.errors.KeyringError as exc:
            log.warning("Could not delete %s from the keyring: %s", name, type(exc).__name__)


#: The process-wide store the front ends share.
secrets = SecretStore()
