#!/usr/bin/env bash
# The fast decode path's GPU run (device machine, one H200): tests/gpu/fast_h200.py's sections, logs
# under $OUT. Uses the device's own torch, Triton and transformers.
#   bash tests/gpu/run_fast_h200.sh [SECTIONS]     (default: check,sweep,step,prepare)
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
python3 -c 'import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)'
timeout "${FAST_RUN_S:-540}" python3 -m tests.gpu.fast_h200 "${OUT:-/tmp/out}" --only "${1:-check,sweep,step,product,prepare}" 2>&1 \
    | grep -v "^USDT" | tee "${OUT:-/tmp/out}/fast_h200.log"
