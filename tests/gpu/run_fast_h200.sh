#!/usr/bin/env bash
# The fast decode path's GPU run (device machine, one H200): tests/gpu/fast_h200.py's sections, logs
# under $OUT. Uses the device's own torch, Triton and transformers; wheels in whl/ go in first.
#   bash tests/gpu/run_fast_h200.sh [SECTIONS]     (default: check,sweep,step,prepare)
set -uo pipefail
# gguf and platformdirs (the fixture and the engine need them; the device image lacks them) as wheels
# in whl/, when the caller carried them
if ls whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
python3 -c 'import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)'
timeout "${FAST_RUN_S:-540}" python3 -m tests.gpu.fast_h200 "${OUT:-/tmp/out}" --only "${1:-check,sweep,step,product,prepare}" 2>&1 \
    | grep -v "^USDT" | tee "${OUT:-/tmp/out}/fast_h200.log"
