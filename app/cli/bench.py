"""`nemotron-desk bench`: time to first token, prefill and decode speed of a model.

Runs in this process (no worker) so that the engine's own generation loop is what is measured, and,
unless --no-compare, the runtime's own loop on the same loaded model, alternating: llama-cpp-python's
`Llama.generate` for a GGUF, plain transformers `model.generate()` for a Hugging Face folder.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.cli.options import add_model_options, load_spec
from engine.api import Error, ModelInfo
from engine.client.bench import BenchFigures, InProcessSession, compare, longest_run, medians


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure time to first token, prefill and decode speed")
    add_model_options(p)
    p.add_argument("--prompt-tokens", type=int, default=512, metavar="N")
    p.add_argument("--gen-tokens", type=int, default=128, metavar="N")
    p.add_argument("--rounds", type=int, default=3, metavar="N")
    p.add_argument("--no-compare", action="store_true",
                   help="skip the runtime's own loop (bare llama-cpp-python / plain generate())")
    p.set_defaults(run=run)


def _row(f: BenchFigures) -> str:
    return (f"{f.loop:<24} {f.time_to_first_token_s * 1000:>10.1f} {f.prefill_tokens_per_s:>12.1f} "
            f"{f.decode_tokens_per_s:>11.1f}")


def run(args: argparse.Namespace) -> int:
    if args.prompt_tokens < 1 or args.gen_tokens < 2 or args.rounds < 1:
        print("Error: --prompt-tokens must be ≥ 1, --gen-tokens ≥ 2 and --rounds ≥ 1.", file=sys.stderr)
        return 2
    session = InProcessSession()
    info = None
    for event in session.load(load_spec(args)):
        if isinstance(event, Error):
            print(f"Error: {event.message}\n{event.action}", file=sys.stderr)
            return 1
        if isinstance(event, ModelInfo):
            info = event
    assert info is not None and session.backend is not None
    need = longest_run(args.prompt_tokens, args.gen_tokens, args.rounds)
    if need > session.backend.n_ctx:
        print(f"Error: the runs reach {need} tokens (each starts past where the last ended, so no run reuses "
              f"another's sequence lengths), more than the {session.backend.n_ctx}-token context. Raise --ctx.",
              file=sys.stderr)
        return 2
    print(f"model: {info.name} [{info.architecture}, {info.quantization}, {info.size_bytes / 2**20:.0f} MiB] "
          f"backend {info.backend}, GPU layers {info.n_gpu_layers}, context {info.n_ctx}")
    if info.device or info.kernels:
        print(f"runs on: {info.device}; {info.kernels}")
    for note in info.notes:
        print(f"note: {note}")
    print(f"prompt {args.prompt_tokens} tokens, generate {args.gen_tokens} tokens, greedy, {args.rounds} rounds")
    print(f"{'loop':<24} {'TTFT ms':>10} {'prefill t/s':>12} {'decode t/s':>11}")
    runs = []
    for figures in compare(session.backend, args.prompt_tokens, args.gen_tokens, args.rounds,
                           bare=not args.no_compare):
        runs.append(figures)
        print(_row(figures), flush=True)
    summary = medians(runs)
    print("median:")
    for figures in summary.values():
        print(_row(figures))
    if len(summary) == 2:
        ours, bare = summary.pop("engine"), next(iter(summary.values()))
        overhead_us = (1 / ours.decode_tokens_per_s - 1 / bare.decode_tokens_per_s) * 1e6
        print(f"engine decode speed / {bare.loop}: {ours.decode_tokens_per_s / bare.decode_tokens_per_s:.3f} "
              f"(prefill {ours.prefill_tokens_per_s / bare.prefill_tokens_per_s:.3f}); "
              f"engine cost per token: {overhead_us:+.0f} µs")
    session.unload()
    return 0
