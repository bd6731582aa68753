"""docs/security.md names the test behind each promise: every test it names must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests import REPO_ROOT

ROOT = REPO_ROOT


def _named_tests(text: str) -> list[tuple[str, str]]:
    """(file, test) pairs; `::test_x` right after a named file continues that file."""
    pairs: list[tuple[str, str]] = []
    current = ""
    for match in re.finditer(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", text):
        path, name = match.group(1), match.group(2)
        if path:
            current = path
        if name:
            pairs.append((current, name))
    return pairs


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_the_security_page_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    pairs = _named_tests(text)
    assert len(pairs) > 20
    missing = [f"{file}::{name}" for file, name in pairs
               if not (ROOT / file).is_file() or name not in _functions(ROOT / file)]
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"


def test_every_file_the_security_page_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    files = set(re.findall(r"`(tests/[\w/]+\.py)", text))
    assert files
    assert not [f for f in files if not (ROOT / f).is_file()]
