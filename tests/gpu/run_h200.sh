#!/usr/bin/env bash
# The GPU run (device machine, one H200): full-size architecture with random Q4_0 weights through
# llama.cpp CUDA, our loop against the bare llama-cpp-python loop, and the engine checks.
# Needs, in .whl/: a CUDA llama-cpp-python wheel built for sm_90, gguf and diskcache wheels.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
cublas=$(find / -name 'libcublas.so.13' -not -path '/proc/*' 2>/dev/null | head -n 1)
export LD_LIBRARY_PATH=$(dirname "$cublas"):${LD_LIBRARY_PATH:-}
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
python3 -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__, "GPU offload:", llama_cpp.llama_supports_gpu_offload())'
python3 -m tests.gpu.full_size_gguf /tmp/full.gguf
bench() { python3 -m app.cli.main bench -m /tmp/full.gguf --ctx 16384 "$@" 2>&1 | grep -v '^llama_kv_cache'; }
bench --prompt-tokens 2048 --gen-tokens 256 --rounds 4
bench --prompt-tokens 8192 --gen-tokens 256 --rounds 2
python3 -m tests.gpu.engine_checks /tmp/full.gguf 2>&1 | grep -v '^llama_kv_cache'
python3 -m app.cli.main chat -m /tmp/full.gguf --ctx 16384 -p "Why is the sky blue?" --budget 32 --max-tokens 200 --seed 3 2>&1 | tail -c 600
