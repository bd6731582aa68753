#!/usr/bin/env bash
# The GPU run (device machine, one H200): full-size architecture with random Q4_0 weights through
# llama.cpp CUDA, our loop against the bare llama-cpp-python loop, and the engine checks.
# Needs, in .whl/: llama_cuda.tar.xz (the llama_cpp package of a CUDA build of llama-cpp-python
# 0.3.36 for sm_90, made on the dev machine: -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90
# -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_CUDA_NO_VMM=ON, its .so files de-duplicated), and the
# gguf and diskcache wheels.
set -euo pipefail
mkdir -p /tmp/site
tar xJf .whl/llama_cuda.tar.xz -C /tmp/site
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
for lib in libcublas.so.13 libcudart.so.13; do
    found=$(find / -name "$lib" -not -path '/proc/*' 2>/dev/null | head -n 1 || true)
    echo "$lib: ${found:-not found}"
    export LD_LIBRARY_PATH=$(dirname "$found"):${LD_LIBRARY_PATH:-}
done
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
python3 -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__, "GPU offload:", llama_cpp.llama_supports_gpu_offload())'
python3 -m tests.gpu.full_size_gguf /tmp/full.gguf
bench() { python3 -m app.cli.main bench -m /tmp/full.gguf --ctx 16384 "$@" 2>&1 | grep -v '^llama_kv_cache'; }
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    bench --prompt-tokens 2048 --gen-tokens 256 --rounds 4
    bench --prompt-tokens 8192 --gen-tokens 256 --rounds 2
fi
python3 -m tests.gpu.engine_checks /tmp/full.gguf 2>&1 | grep -v '^llama_kv_cache'
python3 -m app.cli.main chat -m /tmp/full.gguf --ctx 16384 -p "Why is the sky blue?" --budget 32 --max-tokens 200 --seed 3 2>&1 | tail -c 600
