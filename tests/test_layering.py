"""The engine is Qt-free and knows nothing of the app: checked on the source, import by import."""

from __future__ import annotations

import ast
from pathlib import Path

from tests import REPO_ROOT

ENGINE = REPO_ROOT / "engine"
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "app")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_never_imports_qt_or_app() -> None:
    files = sorted(ENGINE.rglob("*.py"))
    assert files, "engine/ has no Python files?"
    offenders = {
        f"{path.relative_to(ENGINE.parent)}: {name}"
        for path in files
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, f"engine/ must not import Qt or app: {sorted(offenders)}"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtCore import QObject\nimport app.cli\n")
    assert {"PySide6.QtCore", "app.cli"} <= imported_modules(bad)


def test_start_up_loads_no_optional_heavy_module() -> None:
    """Every `nemotron-desk` command and the window pay for what they import at start. The Hub
    client, httpx, keyring, the runtime installer and the ML runtimes load when a feature needs them."""
    import subprocess
    import sys

    heavy = ("httpx", "huggingface_hub", "keyring", "packaging", "engine.remote.engine", "engine.services.hub.catalog",
             "engine.services.runtime_install", "torch", "transformers", "llama_cpp")
    probe = ("import sys, app.cli.main as m; m.build_parser(); import app.gui.main_window; "
             f"print(','.join(x for x in {heavy!r} if x in sys.modules))")
    root = REPO_ROOT
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "", f"loaded at start: {out.stdout.strip()}"
