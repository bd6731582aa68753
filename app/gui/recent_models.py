"""The models this app loaded lately (local files and folders), kept in QSettings, so the model
library lists what was used even when it was opened from a file and never imported."""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.gui.qt import QSettings
from engine.api import ModelInfo

KEY = "models/recent"
KEEP = 12


@dataclass(frozen=True)
class RecentModel:
    path: str
    name: str
    backend: str


def recent_models() -> list[RecentModel]:
    """Newest first."""
    try:
        rows = json.loads(str(QSettings().value(KEY, "[]")))
    except ValueError:
        return []  # a damaged entry: the list starts again
    return [RecentModel(str(r["path"]), str(r.get("name", "")), str(r.get("backend", "")))
            for r in rows if isinstance(r, dict) and isinstance(r.get("path"), str)]


def remember_model(info: ModelInfo) -> None:
    """A model was loaded: put it first (the demo and servers are not files of the person's)."""
    if info.is_demo or info.backend == "remote":
        return
    rows = [RecentModel(info.path, info.name, info.backend),
            *(r for r in recent_models() if r.path != info.path)][:KEEP]
    _write(rows)


def forget_model(path: str) -> None:
    _write([r for r in recent_models() if r.path != path])


def _write(rows: list[RecentModel]) -> None:
    QSettings().setValue(KEY, json.dumps([r.__dict__ for r in rows]))
