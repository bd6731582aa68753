"""`nemotron-desk models` (list, rm, import) and `nemotron-desk download VARIANT`.

Downloads show a progress bar on stderr; Ctrl-C (or SIGTERM) pauses and keeps the partial file, and
running the same command again resumes it. The Hub endpoint is HF_ENDPOINT or --endpoint (tests use
a local server); models go to the Hugging Face cache (HF_HUB_CACHE) or --cache-dir.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from app.failures import describe
from app.paths import data_dir
from engine.errors import EngineError
from engine.services.hub.hardware import gb

if TYPE_CHECKING:  # huggingface_hub, httpx and keyring load when a models command runs, not at every start
    from engine.services.hub.download import Downloader, Progress
    from engine.services.hub.library import Library

TOKEN_NAME = "hf-token"


def add_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="list, remove or import the models on this machine")
    _hub_options(models)
    msub = models.add_subparsers(dest="models_command", metavar="ACTION")
    rm = msub.add_parser("rm", help="remove a model (downloads are deleted; imports are forgotten)")
    rm.add_argument("model_id", metavar="ID", help="the ID `nemotron-desk models` shows")
    imp = msub.add_parser("import", help="add a GGUF file or a Hugging Face model folder you already have")
    imp.add_argument("path", type=Path)
    models.set_defaults(run=run_models)

    dl = sub.add_parser("download", help="download a Nemotron variant (resumable; Ctrl-C pauses)")
    dl.add_argument("variant", nargs="?", metavar="VARIANT",
                    help="e.g. Q4_K_M, unsloth:Q4_0, bartowski:Q5_K_M, nvidia:BF16; leave out to list them")
    dl.add_argument("--ask-token", action="store_true",
                    help="ask for a Hugging Face token (gated repos) and keep it in the system keyring")
    dl.add_argument("--context", type=int, default=32768, help="context length for the fit estimate")
    _hub_options(dl)
    dl.set_defaults(run=run_download)


def _hub_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", default=os.environ.get("HF_ENDPOINT"),
                   help="Hugging Face Hub URL (default: $HF_ENDPOINT, else https://huggingface.co)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where models go (default: the Hugging Face cache, $HF_HUB_CACHE)")


def _library(args: argparse.Namespace) -> Library:
    from engine.services.hub.cache import default_cache_dir
    from engine.services.hub.library import Library

    return Library(args.cache_dir or default_cache_dir(), data_dir())


def run_models(args: argparse.Namespace) -> int:
    lib = _library(args)
    try:
        if args.models_command == "rm":
            model = lib.find(args.model_id)
            lib.remove(model)
            what = ("forgotten (the file itself stays)" if model.origin == "imported"
                    else f"deleted ({gb(model.size_bytes)})")
            print(f"{model.id}: {what}.")
            return 0
        if args.models_command == "import":
            model = lib.import_path(args.path)
            print(f"Imported {model.id} ({model.backend}, {gb(model.size_bytes)}).")
            return 0
    except EngineError as exc:
        print(f"Error: {exc.message} {exc.action}".strip(), file=sys.stderr)
        return 1
    models = lib.models()
    if not models:
        print("No models yet. Download one with `nemotron-desk download Q4_K_M`, "
              "or import a file with `nemotron-desk models import PATH`.")
        return 0
    width = max(len(m.id) for m in models)
    print(f"{'ID':<{width}}  {'BACKEND':<9}  {'SIZE':>8}  LOCATION")
    for m in models:
        size = "missing" if m.missing else gb(m.size_bytes)
        print(f"{m.id:<{width}}  {m.backend:<9}  {size:>8}  {m.path}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from engine.services.hub.cache import default_cache_dir
    from engine.services.hub.catalog import resolve
    from engine.services.hub.download import AuthRequired, Downloader, DownloadStopped
    from engine.services.secrets import secrets

    cache_dir = args.cache_dir or default_cache_dir()
    if args.ask_token:
        entered = getpass.getpass("Hugging Face token (input hidden): ").strip()
        if entered:
            saved = secrets.set(TOKEN_NAME, entered)
            print(f"Token kept in {secrets.where}." + ("" if saved else " It is not saved for later runs."),
                  file=sys.stderr)
    token = secrets.get(TOKEN_NAME) or os.environ.get("HF_TOKEN") or None
    downloader = Downloader(cache_dir, args.endpoint, token)
    if not args.variant:
        return _list_variants(downloader, cache_dir, args.context, token)
    try:
        variant = resolve(downloader.api, args.variant, token)
    except EngineError as exc:
        print(f"Error: {exc.message} {exc.action}".strip(), file=sys.stderr)
        return 1
    except Exception as exc:  # by type: the Hub did not answer (offline, proxy, DNS), or a bug (logged)
        print(f"Error: {describe(exc, f'read {args.variant} from {downloader.endpoint}')}", file=sys.stderr)
        return 1
    bar = ProgressBar(sys.stderr, variant.label)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        path = downloader.download(variant, bar.update)
    except (KeyboardInterrupt, DownloadStopped):
        bar.finish()
        print(f"Paused: {gb(bar.done)} of {gb(variant.size_bytes)} kept. Run the same command to resume.",
              file=sys.stderr)
        return 130
    except AuthRequired as exc:
        bar.finish()
        print(f"Error: {exc.message} {exc.action}\nThen run: nemotron-desk download {args.variant} --ask-token "
              f"(the token is kept in {secrets.where}).", file=sys.stderr)
        return 1
    except EngineError as exc:
        bar.finish()
        print(f"Error: {exc.message} {exc.action}".strip(), file=sys.stderr)
        return 1
    except Exception as exc:  # by type: the network or the Hub, or a bug of ours (logged): no traceback
        bar.finish()
        failure = describe(exc, "go on downloading", "run the same command again: fetched bytes are kept")
        print(f"Error: {failure}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    bar.finish()
    print(f"Verified and placed: {path}", file=sys.stderr)
    print(path)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _list_variants(downloader: Downloader, cache_dir: Path, context: int, token: str | None) -> int:
    from engine.services.hub import fit, hardware
    from engine.services.hub.catalog import SOURCES, load_catalog

    hw = hardware.detect(cache_dir)
    catalog = load_catalog(downloader.api, tuple(SOURCES), token)
    print(hw.summary())
    for refusal in catalog.refused:
        print(f"Refused: {refusal}")
    if not catalog.online:
        why = "The Hub's listings were refused" if catalog.refused else "The Hub did not answer"
        print(f"{why}: sizes below are from the built-in list.")
    for v in catalog.variants:
        est = fit.estimate(v.size_bytes, v.backend, hw.gpu_free_bytes, hw.ram_available_bytes, context)
        print(f"  {v.id:<24} {v.backend:<9} {gb(v.size_bytes):>8}  {est.headline()}")
    print("Download one with: nemotron-desk download VARIANT")
    return 0


class ProgressBar:
    """One line on a terminal (redrawn in place), or a line every few seconds when stderr is a file."""

    WIDTH = 28

    def __init__(self, out: TextIO, label: str) -> None:
        self.out, self.label = out, label
        self.tty = out.isatty()
        self.done = 0
        self._last = 0.0

    def update(self, p: Progress) -> None:
        self.done = p.done
        now = time.monotonic()
        if not self.tty and now - self._last < 2.0 and not p.note:
            return
        self._last = now
        filled = int(self.WIDTH * p.fraction)
        eta = f"ETA {_duration(p.eta_s)}" if p.eta_s is not None else "ETA --"
        line = (f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {p.fraction * 100:5.1f}%  "
                f"{gb(p.done)}/{gb(p.total)}  {p.speed / 1e6:.1f} MB/s  {eta}  file {p.file_index}/{p.file_count}"
                + (f"  {p.note}" if p.note else ""))
        if self.tty:
            self.out.write("\r" + line[:200].ljust(120))
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"
