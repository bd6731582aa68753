"""Command-line options shared by the subcommands that load a model."""

from __future__ import annotations

import argparse
import os

from engine.backends.llama_cpp import LlamaLoadOptions
from engine.remote import RemoteSpec, secret_name
from engine.secrets import secrets
from engine.session import LoadSpec

API_KEY_ENV = "NEMOTRON_DESK_API_KEY"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("-m", "--model", metavar="PATH",
                       help="GGUF model file (default: the bundled demo model, SmolLM2-135M-Instruct); "
                            "with --remote, the server's model name (default: its only model)")
    group.add_argument("--n-gpu-layers", "--ngl", type=int, default=-1, metavar="N",
                       help="layers to offload to the GPU; -1 = all (default), 0 = CPU only")
    group.add_argument("--ctx", type=int, default=8192, metavar="TOKENS", help="context length (default 8192)")
    group.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    group.add_argument("--no-flash-attn", action="store_true", help="turn flash attention off")


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
    )
