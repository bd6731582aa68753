"""What an OpenAI-compatible server offers, asked from the app (the Connect dialog), never the worker."""

from __future__ import annotations

from engine.api import RemoteSpec
from engine.remote.http import RemoteHttp


def list_models(spec: RemoteSpec) -> list[str]:
    """The model names a server offers (its /v1/models), for a person to pick from. Raises EngineError."""
    http = RemoteHttp(spec.base_url, spec.api_key, timeout_s=spec.timeout_s, retry=spec.retry)
    try:
        listing = http.get_json("models")
    finally:
        http.close()
    data = listing.get("data", []) if isinstance(listing, dict) else []
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
