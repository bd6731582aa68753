"""Command-line options shared by the subcommands that load a model."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from engine.api import LlamaLoadOptions, LoadSpec, TorchLoadOptions

if TYPE_CHECKING:  # the remote client (httpx) and keyring load only for --remote
    from engine.api import RemoteSpec

API_KEY_ENV = "NEMOTRON_DESK_API_KEY"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("-m", "--model", metavar="PATH",
                       help="a GGUF file (runs on llama.cpp) or a Hugging Face model folder (runs on torch); "
                            "default: the bundled demo model, SmolLM2-135M-Instruct; with --remote, the server's "
                            "model name (default: its only model)")
    group.add_argument("--n-gpu-layers", "--ngl", type=int, default=-1, metavar="N",
                       help="layers to offload to the GPU; -1 = all (default), 0 = CPU only")
    group.add_argument("--ctx", type=int, default=8192, metavar="TOKENS", help="context length (default 8192)")
    group.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    group.add_argument("--no-flash-attn", action="store_true", help="turn flash attention off (llama.cpp)")
    torch = parser.add_argument_group("Hugging Face folders (torch backend)")
    torch.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                       help="where to run: auto = CUDA when a GPU is visible (default)")
    torch.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"), default="auto",
                       help="weights' dtype: auto = bfloat16 on CUDA, float32 on CPU")
    torch.add_argument("--no-offload", action="store_true",
                       help="refuse to spread the weights over several GPUs or into CPU memory")
    torch.add_argument("--experts", choices=("auto", "eager", "grouped_mm", "batched_mm"), default="auto",
                       help="how the MoE experts run (transformers' experts implementation)")


def add_remote_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("remote server")
    group.add_argument("--remote", metavar="URL",
                       help="use a model on an OpenAI-compatible server (vLLM, SGLang, NIM, llama.cpp, "
                            "nemotron-desk serve), e.g. http://gpu-box:8000/v1")
    group.add_argument("--api-key", metavar="KEY",
                       help=f"the server's API key (default: ${API_KEY_ENV}, else the key saved in the "
                            "system keyring for that server)")


def remote_spec(args: argparse.Namespace) -> RemoteSpec:
    """The --remote server; raises InvalidRequest for an address that is not one."""
    from engine.api import RemoteSpec, secret_name
    from engine.services.secrets import secrets

    url = args.remote
    key = args.api_key or os.environ.get(API_KEY_ENV) or secrets.get(secret_name(url))
    return RemoteSpec(url, model=args.model or "", api_key=key)


def load_spec(args: argparse.Namespace) -> LoadSpec:
    if getattr(args, "remote", None):
        return LoadSpec(remote=remote_spec(args))
    return LoadSpec(
        model_path=args.model,
        llama=LlamaLoadOptions(n_gpu_layers=args.n_gpu_layers, n_ctx=args.ctx, n_threads=args.threads,
                               flash_attn=not args.no_flash_attn),
        torch=TorchLoadOptions(device=args.device, dtype=args.dtype, n_ctx=args.ctx,
                               allow_offload=not args.no_offload, experts=args.experts,
                               n_threads=args.threads),
    )
