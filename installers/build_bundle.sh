#!/usr/bin/env bash
# Builds the one-folder app with PyInstaller: dist/nemotron-desk/ (installers/nemotron-desk.spec).
#   bash installers/build_bundle.sh            uses .venv/bin/python (bash installers/dev.sh setup makes it)
#   PYTHON=/path/to/python bash installers/build_bundle.sh
# The llama.cpp backend in the bundle is the llama-cpp-python installed in that Python: built with
# CUDA (CMAKE_ARGS="-DGGML_CUDA=on ...", see docs/installers.md) it is a CUDA bundle, else a CPU one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
if [ ! -x "$PY" ]; then
    echo "No Python at $PY: run 'bash installers/dev.sh setup' first, or set PYTHON." >&2
    exit 1
fi
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    echo "PyInstaller is not installed in $PY: pip install -e '.[package]' (or bash installers/dev.sh setup)." >&2
    exit 1
fi
gpu=$("$PY" -c "import llama_cpp; print('CUDA' if llama_cpp.llama_supports_gpu_offload() else 'CPU')")
echo "==> Building dist/nemotron-desk with a $gpu llama.cpp backend" >&2
start=$(date +%s)
# PYTHONPATH: this checkout's app/ and engine/, also in PyInstaller's import probes (an editable
# install elsewhere must not win).
PYTHONPATH=$ROOT "$PY" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" "$ROOT/installers/nemotron-desk.spec"
echo "==> dist/nemotron-desk: $(du -sh dist/nemotron-desk | cut -f1), built in $(( $(date +%s) - start )) s" >&2
