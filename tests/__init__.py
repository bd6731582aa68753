"""The test suite, laid out like the code it tests (tests/engine/..., tests/app/...)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
