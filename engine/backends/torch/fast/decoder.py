"""FastDecoder: the running sequence of the torch backend on the fast path.

It owns the static state, the step's workspace and the captured graphs, and gives the backend what
the step protocol needs: feed (a prompt through the chunked prefill, a few tokens through the
decode step one by one), the next token (greedy from the step, sampled on the GPU), snapshots of the
state and their restore, reset and close.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.api import SamplingParams
from engine.backends.torch.fast.graph import CapturedGraph, use_compile_cache
from engine.backends.torch.fast.prefill import prefill
from engine.backends.torch.fast.reference import TorchOps
from engine.backends.torch.fast.sampling import FastSampler, GpuSampling, exact_draw, uses_plain
from engine.backends.torch.fast.state import HybridState, StateSnapshot
from engine.backends.torch.fast.step import Workspace, decode_step
from engine.backends.torch.fast.weights import model_weights

#: Feeds up to this many tokens go through the decode step (the budget's closing tokens, a decoded
#: token); longer ones through the prefill. A step is milliseconds; a prefill forward costs tens.
STEP_FEED_MAX = 8


class FastDecoder:
    def __init__(self, torch: Any, model: Any, n_ctx: int, *, kernels: str, prefill_chunk: int,
                 attention_context: Callable[[], Any]) -> None:
        self.torch = torch
        self.model = model
        self.weights = model_weights(torch, model)
        shapes = self.weights.shapes
        dtype, device = self.weights.embed.dtype, self.weights.embed.device
        self.state = HybridState(torch, shapes, n_ctx, dtype, device)
        self.work = Workspace(torch, shapes, dtype, device)
        self.sampling = GpuSampling.create(torch, self.work.logits)
        self.prefill_chunk = max(1, prefill_chunk)
        self.attention_context = attention_context
        self.length = 0
        self._greedy_in_step = False  # next_token holds the argmax of the logits
        self.graphs: dict[str, CapturedGraph] = {}
        self.prepare_s = 0.0
        if kernels == "triton":
            start = time.perf_counter()
            use_compile_cache()
            from engine.backends.torch.fast.kernels import TritonOps

            self.ops: Any = TritonOps(torch, shapes, n_ctx, device, dtype)
            self._capture()
            self.prepare_s = time.perf_counter() - start
        else:
            self.ops = TorchOps(torch)

    def _capture(self) -> None:
        torch = self.torch
        with torch.inference_mode():
            self.graphs["step"] = CapturedGraph(torch, self._step_body)
            self.graphs["plain"] = CapturedGraph(torch, self.sampling.plain)
            self.graphs["filtered"] = CapturedGraph(torch, self.sampling.filtered)
            torch.cuda.synchronize()
        self.reset()  # the warm-up steps wrote into the state

    def _step_body(self) -> None:
        decode_step(self.ops, self.weights, self.state, self.work)

    def _run(self, name: str, body: Callable[[], None]) -> None:
        graph = self.graphs.get(name)
        if graph is not None:
            graph.replay()
        else:
            body()

    # -- the running sequence ----------------------------------------------------------------------

    def feed(self, tokens: Sequence[int]) -> None:
        torch = self.torch
        with torch.inference_mode():
            if len(tokens) <= STEP_FEED_MAX:
                for token in tokens:
                    self.step(int(token))
                return
            with self.attention_context():
                for start in range(0, len(tokens), self.prefill_chunk):
                    part = [int(t) for t in tokens[start:start + self.prefill_chunk]]
                    prefill(torch, self.model, self.state, part, self.length, self.work.logits)
                    self.length += len(part)
            self._greedy_in_step = False

    def step(self, token: int) -> None:
        """One decode step: the token at the current length, logits and argmax in the workspace."""
        self.work.tok_pos.copy_(self.torch.tensor([token, self.length], dtype=self.torch.long))
        self._run("step", self._step_body)
        self.length += 1
        self._greedy_in_step = True

    def greedy(self) -> int:
        if not self._greedy_in_step:
            self.ops.argmax(self.work.logits, self.work.next_token)
            self._greedy_in_step = True
        return int(self.work.next_token.item())

    def sample(self, sampler: FastSampler) -> int:
        params = sampler.params
        if params.temperature <= 0 or sampler.rng is None:
            return self.greedy()
        u = sampler.rng.random()
        sampling = self.sampling
        with self.torch.inference_mode():
            sampling.load(params, u)
            if uses_plain(params):
                self._run("plain", sampling.plain)
            else:
                self._run("filtered", sampling.filtered)
            token, complete = (int(v) for v in sampling.result.tolist())
            if not complete:
                token = exact_draw(self.torch, self.work.logits, params, u)
        return token

    def make_sampler(self, params: SamplingParams) -> FastSampler:
        return FastSampler(params)

    def logits(self) -> Any:
        return self.work.logits

    def snapshot(self) -> StateSnapshot:
        with self.torch.inference_mode():
            return self.state.snapshot(self.length, self.work.logits)

    def restore(self, snap: StateSnapshot) -> None:
        with self.torch.inference_mode():
            self.state.restore(snap, self.work.logits)
        self.length = snap.length
        self._greedy_in_step = False

    def reset(self) -> None:
        with self.torch.inference_mode():
            self.state.clear()
        self.length = 0
        self._greedy_in_step = False

    def close(self) -> None:
        self.graphs.clear()
        for name in ("state", "work", "sampling", "ops", "weights", "model"):
            setattr(self, name, None)
