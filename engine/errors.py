"""Errors a person can act on: every one carries what happened and what to do about it."""

from __future__ import annotations


class EngineError(Exception):
    """Base for engine failures. `kind` is a short tag front ends can switch on."""

    kind = "error"

    def __init__(self, message: str, action: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.action = action

    def __str__(self) -> str:
        return f"{self.message} {self.action}".strip()


class InvalidRequest(EngineError, ValueError):
    kind = "bad_request"


class ModelLoadError(EngineError):
    kind = "bad_model"


class ContextOverflow(EngineError):
    kind = "context"


class OutOfMemory(EngineError):
    kind = "oom"


class ChatTemplateError(EngineError):
    """The model's own chat template failed: too slow, too large, or a bug for this conversation.

    The model file is at fault, not the request, so it is tagged like a bad model."""

    kind = "bad_model"
