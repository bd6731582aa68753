"""Command-line options shared by the subcommands that load a model."""

from __future__ import annotations

import argparse

from engine.backends.llama_cpp import LlamaLoadOptions
from engine.session import LoadSpec


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("-m", "--model", metavar="PATH",
                       help="GGUF model file (default: the bundled demo model, SmolLM2-135M-Instruct)")
    group.add_argument("--n-gpu-layers", "--ngl", type=int, default=-1, metavar="N",
                       help="layers to offload to the GPU; -1 = all (default), 0 = CPU only")
    group.add_argument("--ctx", type=int, default=8192, metavar="TOKENS", help="context length (default 8192)")
    group.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    group.add_argument("--no-flash-attn", action="store_true", help="turn flash attention off")


def load_spec(args: argparse.Namespace) -> LoadSpec:
    return LoadSpec(
        model_path=args.model,
        llama=LlamaLoadOptions(n_gpu_layers=args.n_gpu_layers, n_ctx=args.ctx, n_threads=args.threads,
                               flash_attn=not args.no_flash_attn),
    )
