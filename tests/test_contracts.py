"""The code's shape (docs/architecture.md) as import-linter contracts ([tool.importlinter] in
pyproject.toml), run here so that the test command checks them: engine never imports app or Qt, only
app.gui.qt imports PySide6, engine.generate imports neither engine.remote nor engine.services, the
front ends reach the engine only through engine.api, engine.errors, engine.client, engine.services
and engine.formats, the worker side never imports the app-side client or services, and the
conversation controller, the store and the engine jobs know no Qt."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO_ROOT

LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_contracts_hold() -> None:
    result = lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("engine/generate/loop.py", "import engine.services.secrets", "engine.generate imports neither"),
    ("app/gui/sidebar.py", "from PySide6.QtWidgets import QLabel", "only app.gui.qt imports PySide6"),
    ("app/cli/chat.py", "from engine.worker.session import EngineSession", "front ends reach the engine only"),
    ("engine/api.py", "import app.store", "engine never imports app or Qt"),
    ("engine/worker/session.py", "from engine.client import EngineClient", "the worker side never imports"),
    ("app/controller.py", "from app.gui.handoff import Handoff", "the conversation controller, the store"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    for name in ("engine", "app"):
        shutil.copytree(REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout
