#!/usr/bin/env bash
# The torch backend's GPU run (device machine, one H200): the full-size architecture with random
# bfloat16 weights as a Hugging Face folder on /dev/shm, then tests/gpu/torch_h200.py's figures and
# one `nemotron-desk chat` through the worker process on that folder.
# Needs, in .whl-torch/: the transformers, accelerate, huggingface_hub, tokenizers and gguf wheels this
# repo is tested with (the device has no package index), installed over its own.
set -uo pipefail
mkdir -p /tmp/site
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl-torch/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc; free -g | head -2
df -h /dev/shm /tmp | tail -2
python3 -c 'import importlib.util as u; print({m: bool(u.find_spec(m)) for m in ("mamba_ssm", "causal_conv1d", "flash_attn")})'
out=/dev/shm/nemotron-bf16
timeout "${TORCH_RUN_S:-420}" python3 -m tests.gpu.torch_h200 "$out" --keep 2>&1 | grep -v "^USDT"
echo "--- nemotron-desk chat through the worker process ---"
timeout "${CHAT_S:-150}" python3 -m app.cli.main chat -m "$out" --ctx 16384 -p "Why is the sky blue?" \
    --budget 32 --max-tokens 120 --seed 3 --json 2>&1 | python3 -c '
import json, sys
kinds = {}
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        print(line.rstrip()); continue
    kinds[e["event"]] = kinds.get(e["event"], 0) + 1
    if e["event"] in ("ModelInfo", "ReasoningEnded", "Usage", "Finished", "Error"):
        print(e)
print("events:", kinds)'
rm -rf "$out"
