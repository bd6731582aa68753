"""The torch backend: a Hugging Face folder (safetensors) run by transformers' native model classes.

For Nemotron-H that is `NemotronHForCausalLM` (transformers >= 5.3), never `trust_remote_code`. The
backend drives the model one forward at a time through the engine's step protocol and holds the
hybrid cache itself: attention K/V for the attention layers, conv and SSM states for the Mamba
layers. Prefill goes in chunks; decode feeds one token; the budget's closing tokens go through the
same cache. A snapshot is a device-side copy of that cache (tens of MiB for Nemotron: the Mamba
state is fixed-size and only six layers hold K/V), restored by copying it back.

On one CUDA GPU with Triton the decode runs on the fast path instead (engine/backends/torch/fast:
a static state and a hand-written step replayed from a CUDA graph); this module then delegates feed,
sampling and snapshots to it, and the eager code below is the fallback.

CUDA in bfloat16 by default; when one GPU is too small the weights spread over several GPUs or
spill to CPU memory through `device_map`, with a warning about speed. CPU in float32 for tests.
Heavy imports (torch, transformers) happen on load, so the rest of the engine never pays for them.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.api import LoadProgress, SamplingParams, TorchLoadOptions
from engine.backends.base import Sampler, SequenceMixin
from engine.errors import ModelLoadError, OutOfMemory
from engine.formats.hf_folder import HfFolder, layer_kinds

if TYPE_CHECKING:
    from engine.backends.torch.fast.decision import DecodePath
    from engine.backends.torch.fast.decoder import FastDecoder

GiB = 2**30


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ModelLoadError(
            "PyTorch and transformers are not installed, so Hugging Face model folders cannot run.",
            "Install them with: pip install 'nemotron-desk[torch]' (CUDA builds: see pytorch.org), "
            "or load a GGUF file with llama.cpp instead.",
        ) from exc
    # We report load progress and the kernel path ourselves; transformers' bars and per-kernel
    # fallback warnings would only reach the worker's stderr.
    tf: Any = transformers
    tf.logging.set_verbosity_error()
    tf.logging.disable_progress_bar()
    return torch, transformers


def mamba_kernels() -> dict[str, bool]:
    """Which optional fast Mamba kernel packages are importable (CUDA only)."""
    return {name: importlib.util.find_spec(name) is not None for name in ("mamba_ssm", "causal_conv1d")}


def kernel_path_label(device_type: str) -> str:
    if device_type != "cuda":
        return "PyTorch (CPU)"
    found = mamba_kernels()
    if all(found.values()):
        return "fast Mamba kernels (mamba-ssm, causal-conv1d)"
    missing = ", ".join(name.replace("_", "-") for name, ok in found.items() if not ok)
    return f"PyTorch Mamba fallback (slower; {missing} not installed)"


def available_ram() -> int:
    """Bytes of memory the OS can give us now."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def runtime_bytes(config: dict[str, Any], n_ctx: int, elem: int) -> int:
    """The cache for one sequence of n_ctx tokens: K/V on attention layers only, fixed Mamba state."""
    kinds = layer_kinds(config)
    n_attn = sum(k == "attention" for k in kinds)
    n_mamba = sum(k == "mamba" for k in kinds)
    kv_heads = int(config.get("num_key_value_heads") or config.get("num_attention_heads") or 0)
    head_dim = int(config.get("head_dim") or (int(config.get("hidden_size", 0)) //
                                                max(1, int(config.get("num_attention_heads") or 1))))
    kv = 2 * n_attn * kv_heads * head_dim * elem * n_ctx
    heads = int(config.get("mamba_num_heads") or 0)
    mamba_head_dim = int(config.get("mamba_head_dim") or 0)
    state = int(config.get("ssm_state_size") or 0)
    groups = int(config.get("n_groups") or 1)
    conv = int(config.get("conv_kernel") or 4)
    ssm = heads * mamba_head_dim * state * 4  # fp32 state
    conv_state = (heads * mamba_head_dim + 2 * groups * state) * conv * elem
    return kv + n_mamba * (ssm + conv_state)


@dataclass(frozen=True)
class Placement:
    device_type: str  # "cuda" or "cpu"
    device_map: Any
    max_memory: dict[Any, int] | None
    note: str  # what a person should know (spread over GPUs, spilled to CPU); empty when all is well


def plan_placement(weights: int, runtime: int, device_type: str, gpu_free: Sequence[int], ram_free: int,
                   allow_offload: bool) -> Placement:
    """Where the weights go, or a ModelLoadError that says why they cannot go anywhere.

    `gpu_free` lists free bytes per visible GPU. A margin of 10% plus 1 GiB per device covers
    transformers' load buffers and the forward's activations.
    """
    def usable(free: int) -> int:
        return max(0, int(free * 0.9) - GiB)

    need = weights + runtime
    if device_type == "cpu":
        if need > usable(ram_free):
            raise ModelLoadError(
                f"The model needs about {need / GiB:,.1f} GiB of memory on the CPU; "
                f"{ram_free / GiB:,.1f} GiB is free.",
                "Close other programs, use a GPU, or choose a smaller model (a GGUF quant with llama.cpp).")
        return Placement("cpu", {"": "cpu"}, None, "")
    if gpu_free and need <= usable(gpu_free[0]):
        return Placement("cuda", {"": 0}, None, "")
    gpus = sum(usable(f) for f in gpu_free)
    total_gpu = sum(gpu_free)
    if not allow_offload:
        raise ModelLoadError(
            f"The model needs about {need / GiB:,.1f} GiB; GPU 0 has {gpu_free[0] / GiB:,.1f} GiB free.",
            "Allow spreading over GPUs / CPU memory in the load settings, or choose a GGUF quant with llama.cpp.")
    if len(gpu_free) > 1 and need <= gpus:
        budget = {i: usable(f) for i, f in enumerate(gpu_free)}
        return Placement("cuda", "auto", budget,
                         f"The weights are spread over {len(gpu_free)} GPUs; each token crosses between them.")
    spill = need - gpus
    if spill > usable(ram_free):
        raise ModelLoadError(
            f"The model needs about {need / GiB:,.1f} GiB; the GPUs have {total_gpu / GiB:,.1f} GiB free and "
            f"the CPU {ram_free / GiB:,.1f} GiB.",
            "Choose a GGUF quant (Q4_K_M is about 23 GiB) with llama.cpp, or free memory.")
    budget = {i: usable(f) for i, f in enumerate(gpu_free)}
    budget_any: dict[Any, int] = dict(budget)
    budget_any["cpu"] = usable(ram_free)
    return Placement("cuda", "auto", budget_any,
                     f"{spill / GiB:,.1f} GiB of weights do not fit on the GPU and run from CPU memory: "
                     "expect generation to be many times slower. A GGUF quant with llama.cpp fits better.")


class TorchSampler:
    """Temperature, top-k, top-p and min-p on the device, with a seeded generator."""

    def __init__(self, torch: Any, params: SamplingParams, device: Any) -> None:
        self.params = params
        self.generator = None
        if params.temperature > 0:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(params.seed if params.seed is not None else random.getrandbits(63))

    def close(self) -> None:
        self.generator = None


class TorchBackend(SequenceMixin):
    """One loaded Hugging Face model and its single running sequence."""

    name = "torch"

    def __init__(self, folder: HfFolder, options: TorchLoadOptions, meter: LoadMeter | None = None) -> None:
        torch, transformers = _import_torch()
        self._torch = torch
        self.folder = folder
        self.options = options
        meter = meter or LoadMeter()

        want_cuda = options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise ModelLoadError("CUDA was asked for, but this PyTorch build sees no NVIDIA GPU.",
                                 "Install a CUDA build of PyTorch, check the driver with nvidia-smi, or use the CPU.")
        device_type = "cuda" if want_cuda else "cpu"
        if options.n_threads:
            torch.set_num_threads(max(1, options.n_threads))
        dtype_name = options.dtype if options.dtype != "auto" else ("bfloat16" if want_cuda else "float32")
        try:
            self.dtype = getattr(torch, dtype_name)
        except AttributeError as exc:
            raise ModelLoadError(f"Unknown dtype '{dtype_name}'.", "Use bfloat16, float16 or float32.") from exc
        elem = torch.tensor([], dtype=self.dtype).element_size()

        config_ctx = folder.context_length
        n_ctx = options.n_ctx if options.n_ctx > 0 else (config_ctx or 8192)
        self.n_ctx = min(n_ctx, config_ctx) if config_ctx else n_ctx
        weights = folder.n_params * elem
        runtime = runtime_bytes(folder.config, self.n_ctx, elem)
        gpu_free = [int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count())] if want_cuda else []
        self.placement = plan_placement(weights, runtime, device_type, gpu_free, available_ram(),
                                        options.allow_offload)
        self.kernels = kernel_path_label(device_type)

        start_rss = _rss()
        meter.expected = weights
        meter.measure = (lambda: sum(int(torch.cuda.memory_allocated(i)) for i in range(torch.cuda.device_count()))) \
            if device_type == "cuda" else (lambda: _rss() - start_rss)
        meter.stage = (f"Loading {folder.name} ({weights / GiB:.1f} GiB, {dtype_name}) on "
                       f"{'the GPU' if device_type == 'cuda' else 'the CPU'}")
        kwargs: dict[str, Any] = {"dtype": self.dtype, "device_map": self.placement.device_map}
        if self.placement.max_memory is not None:
            kwargs["max_memory"] = self.placement.max_memory
        if options.experts != "auto":
            kwargs["experts_implementation"] = options.experts
        self.model = self._from_pretrained(transformers, kwargs)
        self.model.eval()
        self.input_device = self.model.get_input_embeddings().weight.device
        self.logits_device = self.model.get_output_embeddings().weight.device
        self.experts = str(getattr(self.model.config, "_experts_implementation", "eager") or "eager")

        self._load_tokenizer(folder.path)
        self._forward_cache_kw = "cache" if "cache" in _forward_params(self.model) else "past_key_values"
        self._attention_context = _attention_backends(torch) if device_type == "cuda" else contextlib.nullcontext
        self._cache: Any = None
        self._tokens: list[int] = []
        self._logits: Any = None
        self._fast: FastDecoder | None = None
        self.decode_path = self._prepare_fast_path(meter)
        mamba, decode = self.kernels, self.decode_path.label
        self.kernels = f"{decode}; prefill: {mamba}" if self._fast else f"{mamba}; {decode}"

    def _prepare_fast_path(self, meter: LoadMeter) -> DecodePath:
        """Choose the decode path; on the fast one, build the static state and capture the step."""
        from engine.backends.torch.fast.decision import capture_failed, choose_decode_path, triton_available

        torch = self._torch
        path = choose_decode_path(self.options.decode, self.placement.device_type, self.placement.device_map,
                                  triton_available(), _fast_path_problem(self.model))
        if not path.fast:
            return path
        from engine.backends.torch.fast.decoder import FastDecoder

        if path.kernels == "triton":
            meter.stage = "Preparing the GPU decode step…"
        try:
            self._fast = FastDecoder(torch, self.model, self.n_ctx, kernels=path.kernels,
                                     prefill_chunk=self.options.prefill_chunk,
                                     attention_context=self._attention_context)
        except Exception as exc:  # no kernel compiler, a driver the capture fails on, too little memory
            if path.kernels != "triton":
                raise
            self._fast = None
            torch.cuda.empty_cache()
            return capture_failed(exc)
        if self._fast.prepare_s:
            return replace(path, label=f"{path.label} (prepared in {self._fast.prepare_s:.1f} s)")
        return path

    @property
    def decode_note(self) -> str:
        """What a person should know about the decode path: only that a GPU runs the slow one."""
        if self.placement.device_type != "cuda" or self._fast is not None:
            return ""
        return f"Decoding on the eager path, many times slower: {self.decode_path.reason}."

    def _from_pretrained(self, transformers: Any, kwargs: dict[str, Any]) -> Any:
        torch = self._torch
        try:
            return transformers.AutoModelForCausalLM.from_pretrained(str(self.folder.path), trust_remote_code=False,
                                                                     **kwargs)
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            raise ModelLoadError("The GPU ran out of memory while loading the weights.",
                                 "Close other GPU programs, lower the context, or use a GGUF quant.") from exc
        except (ValueError, OSError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"transformers could not load {self.folder.name}: {exc}",
                                 "Check that the folder is a complete download of a supported model; "
                                 "a newer transformers may be needed for new architectures.") from exc

    def _load_tokenizer(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self._tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:
            raise ModelLoadError(f"tokenizer.json in {path.name} cannot be read: {exc}",
                                 "Download the model's tokenizer files again.") from exc
        added = self._tok.get_added_tokens_decoder()
        self.special_tokens = tuple(t.content for t in added.values() if t.special and t.content.strip())
        self._special_ids = {i for i, t in added.items()}
        byte_level = "ByteLevel" in str(self._tok.decoder or "") or "ByteLevel" in str(self._tok.pre_tokenizer or "")
        self._unbyte = {ch: b for b, ch in _bytes_to_unicode().items()} if byte_level else None
        self._pieces: dict[int, bytes] = {}
        self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))

        eog: set[int] = set()
        for source in (self.folder.config, _read_optional_json(path / "generation_config.json")):
            value = source.get("eos_token_id")
            eog.update(value if isinstance(value, list) else [value] if isinstance(value, int) else [])
        for name in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            found = self._tok.token_to_id(name)
            if found is not None and name in self.special_tokens:
                eog.add(found)
        eos = self.folder.tokenizer_config.get("eos_token")
        eos_id = self._tok.token_to_id(eos) if isinstance(eos, str) else None
        if eos_id is not None:
            eog.add(int(eos_id))
        self.eog_ids = frozenset(eog)
        bos = self.folder.config.get("bos_token_id")
        self.bos_id = int(bos) if isinstance(bos, int) else -1
        self.add_bos = bool(self.folder.tokenizer_config.get("add_bos_token", False)) and self.bos_id >= 0

    # -- the step protocol ---------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        if not text:
            return []
        self._tok.encode_special_tokens = not special
        try:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        finally:
            self._tok.encode_special_tokens = False

    def _piece(self, token: int) -> bytes:
        piece = self._tok.id_to_token(token)
        if piece is None:
            return b""
        if token in self._special_ids:
            return piece.encode("utf-8")
        if self._unbyte is not None:
            try:
                return bytes(self._unbyte[ch] for ch in piece)
            except KeyError:
                return piece.encode("utf-8")
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):  # SentencePiece byte fallback
            return bytes([int(piece[3:5], 16)])
        return piece.replace("\u2581", " ").encode("utf-8")

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def feed(self, tokens: Sequence[int]) -> None:
        if not tokens:
            return
        self._check_room(len(tokens))
        torch = self._torch
        if self._fast is not None:
            self._feed_fast(tokens)
            return
        if self._cache is None:
            self._cache = self._new_cache()
        chunk = max(1, self.options.prefill_chunk)
        try:
            with torch.inference_mode(), self._attention_context():
                for start in range(0, len(tokens), chunk):
                    part = list(tokens[start:start + chunk])
                    ids = torch.tensor([part], dtype=torch.long, device=self.input_device)
                    out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1,
                                     **{self._forward_cache_kw: self._cache})
                    self._cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None) or self._cache
                    self._logits = out.logits[0, -1]
                    self._tokens.extend(part)
        except torch.cuda.OutOfMemoryError as exc:
            self.reset()
            torch.cuda.empty_cache()
            raise OutOfMemory("The GPU ran out of memory while reading the conversation.",
                              "Lower the context length, or reload with a smaller prefill chunk.") from exc
        except BaseException:
            self.reset()  # a half-fed chunk leaves the state undefined: start clean next time
            raise

    def _feed_fast(self, tokens: Sequence[int]) -> None:
        torch = self._torch
        assert self._fast is not None
        try:
            self._fast.feed(tokens)
            self._tokens.extend(tokens)
        except torch.cuda.OutOfMemoryError as exc:
            self.reset()
            torch.cuda.empty_cache()
            raise OutOfMemory("The GPU ran out of memory while reading the conversation.",
                              "Lower the context length, or reload with a smaller prefill chunk.") from exc
        except BaseException:
            self.reset()  # a half-fed prompt leaves the state undefined: start clean next time
            raise

    def truncate(self, n_tokens: int) -> bool:
        # The Mamba layers' state cannot be rolled back; the prefix cache restores a snapshot instead.
        return n_tokens == len(self._tokens)

    def reset(self) -> None:
        self._cache = None
        self._logits = None
        self._tokens = []
        if self._fast is not None:
            self._fast.reset()

    def make_sampler(self, params: SamplingParams) -> Sampler:
        if self._fast is not None:
            return self._fast.make_sampler(params)
        return TorchSampler(self._torch, params, self.logits_device)

    def sample(self, sampler: Sampler) -> int:
        if self._fast is not None:
            if self._fast.length == 0:
                raise RuntimeError("sample() before any token was fed")
            from engine.backends.torch.fast.sampling import FastSampler

            assert isinstance(sampler, FastSampler)
            return self._fast.sample(sampler)
        assert isinstance(sampler, TorchSampler)
        if self._logits is None:
            raise RuntimeError("sample() before any token was fed")
        torch = self._torch
        params = sampler.params
        logits = self._logits
        if params.temperature <= 0 or sampler.generator is None:
            return int(torch.argmax(logits).item())
        from engine.backends.torch.fast.sampling import filtered_scores

        with torch.inference_mode():
            scores = filtered_scores(torch, logits.float(), params)
            probs = torch.softmax(scores / params.temperature, dim=-1)
            return int(torch.multinomial(probs, 1, generator=sampler.generator).item())

    def snapshot(self) -> object:
        """A device-side copy of the cache and the last logits."""
        if self._fast is not None:
            return self._fast.snapshot()
        return (copy.deepcopy(self._cache), None if self._logits is None else self._logits.clone())

    def restore(self, snapshot: object, tokens: Sequence[int]) -> None:
        if self._fast is not None:
            from engine.backends.torch.fast.state import StateSnapshot

            assert isinstance(snapshot, StateSnapshot)
            self._fast.restore(snapshot)
            self._tokens = list(tokens)
            return
        assert isinstance(snapshot, tuple)
        cache, logits = snapshot
        self._cache = copy.deepcopy(cache)
        self._logits = None if logits is None else logits.clone()
        self._tokens = list(tokens)

    def memory_bytes(self) -> int:
        """Bytes the model's parameters take."""
        return int(sum(p.numel() * p.element_size() for p in self.model.parameters()))

    def close(self) -> None:
        self.reset()
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        self.model = None
        torch = self._torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@dataclass
class LoadMeter:
    """What the loading thread tells the one reporting progress: a stage, then how many of the
    expected bytes of weights are in memory (GPU memory allocated, or the process's growth)."""

    stage: str = ""
    expected: int = 0
    measure: Callable[[], int] | None = None


def load_torch_backend(folder: HfFolder, options: TorchLoadOptions) -> Iterator[LoadProgress | TorchBackend]:
    """Load in a thread of its own; meanwhile yield progress measured from the memory the weights
    fill (transformers has no per-tensor callback), then the backend."""
    meter = LoadMeter()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["backend"] = TorchBackend(folder, options, meter)
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=run, name="torch-backend-load", daemon=True)
    thread.start()
    stage, last = "", -1.0
    while thread.is_alive():
        thread.join(0.25)
        if meter.stage and meter.stage != stage:
            stage = meter.stage
            yield LoadProgress(stage, max(0.05, last))
        if meter.measure is not None and meter.expected:
            fraction = min(0.95, 0.05 + 0.9 * meter.measure() / meter.expected)
            if fraction - last >= 0.01:
                last = fraction
                yield LoadProgress(f"Loading weights: {(fraction - 0.05) / 0.9:.0%}", fraction)
    if "error" in result:
        raise result["error"]
    yield result["backend"]


def _attention_backends(torch: Any) -> Callable[[], Any]:
    """SDPA without the cuDNN backend.

    On an H200 (torch 2.11) SDPA picks cuDNN attention for a decode step, and cuDNN builds a plan
    for every new key length, which is every step of a real conversation: decode ran at 11-12
    tokens/s on fresh lengths against 23-24 with flash / memory-efficient attention (measured on
    the full-size model, docs/benchmarks.md). A length seen before is fast either way.
    """
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return contextlib.nullcontext
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return lambda: sdpa_kernel(backends)


def _fast_path_problem(model: Any) -> str:
    """Why the hand-written decode step cannot run this model ("" when it can)."""
    if getattr(model.config, "model_type", "") != "nemotron_h":
        return f"it is written for Nemotron-H, not {getattr(model.config, 'model_type', 'this architecture')}"
    from engine.backends.torch.fast.shapes import shapes_from_config

    try:
        shapes_from_config(model.config)
    except ValueError as exc:
        return str(exc)
    return ""


def _forward_params(model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _read_optional_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 0


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-printable-character table, which byte-level BPE vocabularies are written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))

