"""The torch backend's fast decode path: a hand-written Nemotron-H decode step over a static hybrid
state, replayed from one CUDA graph, with Triton kernels.

`decision` says whether it can run; `decoder.FastDecoder` is what `TorchBackend` delegates to. The
step (`step`) runs with plain-torch ops (`reference`, also the CPU path the tests compare with
transformers) or the fused kernels (`kernels`); `state` is the static state, `prefill` fills it
through the model's own modules, `sampling` samples on the GPU, `graph` captures and caches.
"""
