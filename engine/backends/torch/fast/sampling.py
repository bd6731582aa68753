"""Sampling on the GPU without a sort, in a form a CUDA graph can hold, with today's distribution.

The eager path's filters (`filtered_scores`, shared with it: top-k, then top-p over the softmax of
what is left, then min-p, then the temperature) each keep the tokens whose score reaches a
threshold. The thresholds are found from the 1,024 best scores alone (a `topk`, not a sort of 131k):
top-k's is the k-th best, top-p's the score where the cumulative probability passes p, min-p's the
best score plus log(min_p). Tokens at or above the highest threshold are then drawn by inverse CDF
over the whole vocabulary with a uniform number from the request's seeded `random.Random`, so the
graph holds no generator. When a threshold lies beyond the 1,024 candidates (top_k > 1,024, or a
nucleus wider than them), the result says so and the exact eager chain runs instead. Greedy is
argmax, in the step. One difference, at ties only: a threshold keeps every token tied with the last
one top-p keeps, where the eager chain keeps whichever of them its sort happened to put first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from engine.api import SamplingParams

CANDIDATES = 1024


def filtered_scores(torch: Any, scores: Any, params: SamplingParams) -> Any:
    """The eager filter chain on float32 scores: top-k, top-p, min-p (masked to -inf); before temperature."""
    if params.top_k > 0 and params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
        drop = cumulative > params.top_p
        drop[1:] = drop[:-1].clone()  # keep the token that crosses top_p
        drop[0] = False
        scores = scores.scatter(0, order, sorted_scores.masked_fill(drop, float("-inf")))
    if params.min_p > 0.0:
        probs = torch.softmax(scores, dim=-1)
        scores = scores.masked_fill(probs < params.min_p * probs.max(), float("-inf"))
    return scores


class FastSampler:
    """A request's sampling parameters and its seeded source of uniform numbers."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng: random.Random | None = None
        if params.temperature > 0:
            self.rng = random.Random(params.seed if params.seed is not None else random.getrandbits(63))

    def close(self) -> None:
        self.rng = None


@dataclass
class GpuSampling:
    """Device buffers for one draw: params in, [token, complete] out; `plain` and `filtered` are the
    two capturable bodies (no top-k / top-p needs no candidates)."""

    torch: Any
    logits: Any
    params: Any  # float32 [temperature, top_p, top_k, min_p, u]
    result: Any  # int64 [token, 1 if the thresholds were exact]

    @classmethod
    def create(cls, torch: Any, logits: Any) -> GpuSampling:
        device = logits.device
        return cls(torch, logits, torch.zeros(5, dtype=torch.float32, device=device),
                   torch.zeros(2, dtype=torch.long, device=device))

    def load(self, params: SamplingParams, u: float) -> None:
        values = [params.temperature, params.top_p, float(params.top_k), params.min_p, u]
        self.params.copy_(self.torch.tensor(values, dtype=self.torch.float32))

    def plain(self) -> None:
        self._draw(*self._plain_threshold())

    def filtered(self) -> None:
        self._draw(*self._filtered_threshold())

    def distribution(self, params: SamplingParams) -> tuple[Any, bool]:
        """The normalised distribution a draw with `params` follows, and whether it is exact."""
        self.load(params, 0.0)
        s, threshold, top, complete = self._plain_threshold() if uses_plain(params) else self._filtered_threshold()
        weights, _ = self._weights(s, threshold, top)
        return weights / weights.sum(), bool(complete)

    def _plain_threshold(self) -> tuple[Any, Any, Any, Any]:
        s = self.logits.float()
        top = s.max()
        return s, top + self.torch.log(self.params[3]), top, self.torch.ones((), dtype=self.torch.bool,
                                                                             device=s.device)

    def _filtered_threshold(self) -> tuple[Any, Any, Any, Any]:
        torch = self.torch
        s = self.logits.float()
        _, top_p, top_k, min_p, _ = self.params.unbind()
        vals = torch.topk(s, min(CANDIDATES, s.numel())).values
        n = vals.numel()
        ranks = torch.arange(n, device=s.device)
        k_on = top_k > 0
        k_eff = torch.where(k_on, top_k.clamp(max=n), torch.full_like(top_k, n))
        in_k = ranks < k_eff
        inf = torch.full_like(vals[0], float("-inf"))
        t_k = torch.where(k_on, vals.gather(0, (k_eff - 1).long().view(1))[0], inf)
        # top-p's softmax is over what top-k left (the whole vocabulary when top-k is off)
        log_z = torch.where(k_on, torch.logsumexp(torch.where(in_k, vals, inf), 0), torch.logsumexp(s, 0))
        probs = torch.where(in_k, torch.exp(vals - log_z), torch.zeros_like(vals))
        before = torch.cat([torch.zeros_like(probs[:1]), probs.cumsum(0)[:-1]])
        n_p = ((before <= top_p) & in_k).sum()  # kept: every token whose predecessors hold <= top_p
        t_p = torch.where(top_p < 1, vals.gather(0, (n_p - 1).view(1))[0], inf)
        threshold = torch.maximum(torch.maximum(t_k, t_p), vals[0] + torch.log(min_p))
        within_k = k_on & (top_k <= n)
        complete = ~((k_on & (top_k > n)) | ((top_p < 1) & (n_p >= n) & ~within_k))
        return s, threshold, vals[0], complete

    def _weights(self, s: Any, threshold: Any, top: Any) -> tuple[Any, Any]:
        keep = s >= threshold
        return self.torch.where(keep, self.torch.exp((s - top) / self.params[0]), self.torch.zeros_like(s)), keep

    def _draw(self, s: Any, threshold: Any, top: Any, complete: Any) -> None:
        torch = self.torch
        weights, keep = self._weights(s, threshold, top)
        cdf = weights.cumsum(0)
        token = torch.searchsorted(cdf, (self.params[4] * cdf[-1]).view(1), right=True)
        last = torch.where(keep, torch.arange(s.numel(), device=s.device), -1).max()
        self.result[0:1].copy_(torch.minimum(token, last))
        self.result[1:2].copy_(complete.long().view(1))


def uses_plain(params: SamplingParams) -> bool:
    """No top-k and no top-p: the thresholds need no candidates."""
    return params.top_k == 0 and params.top_p >= 1.0


def exact_draw(torch: Any, logits: Any, params: SamplingParams, u: float) -> int:
    """The eager chain with the same uniform number: for the rare draws the candidates cannot serve."""
    scores = filtered_scores(torch, logits.float(), params)
    cdf = torch.softmax(scores / params.temperature, dim=-1).cumsum(0)
    token = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])], device=cdf.device), right=True)[0])
    return min(token, int((scores > float("-inf")).nonzero().max()))
