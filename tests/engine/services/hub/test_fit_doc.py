"""docs/fit.md is what docs/fit_table.py prints from the estimate the app uses (never typed by hand)."""

from __future__ import annotations

import subprocess
import sys

from tests import REPO_ROOT

ROOT = REPO_ROOT


def test_fit_doc_is_generated_from_the_estimate() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "fit_table.py")], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert (ROOT / "docs" / "fit.md").read_text() == out, "regenerate: python docs/fit_table.py > docs/fit.md"
    for size in (24, 48, 96, 128):
        assert f"| {size} GB GPU" in out
