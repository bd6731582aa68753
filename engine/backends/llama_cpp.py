"""The llama.cpp backend (llama-cpp-python): GGUF files, CPU or CUDA offload.

Uses llama-cpp-python's `Llama` for loading, batching and tokenizing, and llama.cpp's native sampler
chain for sampling, so the per-token cost is the same as llama-cpp-python's own `generate()`.
Token text is read with special=True: `<think>` and `</think>` stay in the stream, where the
engine's ReasoningSplitter needs them.
"""

from __future__ import annotations

import ctypes
import os
import random
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine.api import LlamaLoadOptions, SamplingParams
from engine.backends.base import Sampler, SequenceMixin
from engine.errors import ModelLoadError
from engine.formats.gguf import GgufMetadata


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelLoadError(
            "llama-cpp-python is not installed, so GGUF models cannot run.",
            "Install it with: CMAKE_ARGS=\"-DGGML_CUDA=on\" pip install llama-cpp-python",
        ) from exc
    return llama_cpp


_CTX_STEP = 256


class _TemplateNotCompiled:
    """Stands in for llama-cpp-python's Jinja2ChatFormatter while a model loads.

    Llama() compiles every chat template in the file as it loads, in a Jinja environment with no
    bounds (`{{ 'A' * 10**9 }}` is folded into a 1 GB constant while compiling) and with errors
    that leave as bare Jinja exceptions. The engine renders the template itself, in
    engine/generate/templates/sandbox.py, and never uses llama-cpp-python's chat handlers: so that step
    is skipped, and a handler that is somehow used says so.
    """

    def __init__(self, **_: Any) -> None:
        pass

    def to_chat_handler(self) -> Any:
        def unused(**_: Any) -> Any:
            raise RuntimeError("the engine renders chat templates itself (engine/generate/templates/sandbox.py)")

        return unused


_template_swap = threading.Lock()


@contextmanager
def _templates_not_compiled(lib: Any) -> Iterator[None]:
    module = lib.llama_chat_format
    with _template_swap:
        original = module.Jinja2ChatFormatter
        module.Jinja2ChatFormatter = _TemplateNotCompiled
        try:
            yield
        finally:
            module.Jinja2ChatFormatter = original


@dataclass(frozen=True)
class _State:
    """A saved sequence state: the ctypes buffer itself, so saving and restoring copy it only once."""

    data: Any
    size: int


class LlamaSampler:
    """A native llama.cpp sampler chain for one request."""

    def __init__(self, lib: Any, params: SamplingParams) -> None:
        self._lib = lib
        chain_params = lib.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self.chain = lib.llama_sampler_chain_init(chain_params)

        def add(stage: Any) -> None:
            lib.llama_sampler_chain_add(self.chain, stage)

        if params.temperature == 0:
            add(lib.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            add(lib.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            add(lib.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            add(lib.llama_sampler_init_min_p(params.min_p, 1))
        add(lib.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        add(lib.llama_sampler_init_dist(seed))

    def close(self) -> None:
        if self.chain is not None:
            self._lib.llama_sampler_free(self.chain)
            self.chain = None


class LlamaCppBackend(SequenceMixin):
    """One loaded GGUF model and its single running sequence."""

    name = "llama.cpp"

    def __init__(self, meta: GgufMetadata, options: LlamaLoadOptions) -> None:
        lib = _import_llama_cpp()
        self._lib = lib
        self.meta = meta
        n_ctx = options.n_ctx if options.n_ctx > 0 else meta.context_length
        # llama.cpp pads the context to a multiple of 256; Llama's own arrays must be that size too.
        n_ctx = max(_CTX_STEP, -(-n_ctx // _CTX_STEP) * _CTX_STEP)
        if meta.context_length:
            n_ctx = min(n_ctx, meta.context_length)
        threads = options.n_threads or max(1, (os.cpu_count() or 2))
        try:
            with _templates_not_compiled(lib):
                self._llm = lib.Llama(
                    model_path=str(meta.path), n_gpu_layers=options.n_gpu_layers, n_ctx=n_ctx,
                    n_batch=options.n_batch, n_ubatch=options.n_batch, n_threads=threads,
                    n_threads_batch=threads, flash_attn=options.flash_attn, verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {meta.path.name} (architecture '{meta.architecture}'): {exc}.",
                "If the architecture is new, update llama-cpp-python; if memory is short, "
                "load fewer GPU layers or a smaller context.",
            ) from exc
        self.n_ctx = min(int(self._llm.n_ctx()), len(self._llm.input_ids))
        self._tokens: list[int] = []
        # Reported as a count of the model's layers: -1 ("all") becomes the layer count.
        wanted = meta.block_count if options.n_gpu_layers < 0 else min(options.n_gpu_layers, meta.block_count)
        self.n_gpu_layers = wanted if lib.llama_supports_gpu_offload() else 0
        self._vocab = self._llm._model.vocab
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        n_vocab = self.vocab_size = int(lib.llama_vocab_n_tokens(self._vocab))
        self.eog_ids = frozenset(t for t in range(n_vocab) if lib.llama_vocab_is_eog(self._vocab, t))
        self.special_tokens = self._control_token_strings(n_vocab)
        self.add_bos = bool(lib.llama_vocab_get_add_bos(self._vocab))
        self.bos_id = int(lib.llama_vocab_bos(self._vocab))

    def _control_token_strings(self, n_vocab: int) -> tuple[str, ...]:
        lib = self._lib
        mask = lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_USER_DEFINED
        found = []
        for token in range(n_vocab):
            if lib.llama_vocab_get_attr(self._vocab, token) & mask:
                text = self._piece(token).decode("utf-8", "replace")
                if text.strip():
                    found.append(text)
        return tuple(found)

    @property
    def llama(self) -> Any:
        """The llama_cpp.Llama underneath (for the bare-loop benchmark)."""
        return self._llm

    # -- the step protocol ---------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        if not text:
            return []
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def _piece(self, token: int) -> bytes:
        n = self._lib.llama_token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, True)
        if n < 0:  # longer than the buffer: llama.cpp returns the size it needs
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, -n, 0, True)
            return bytes(buf.raw[:n])
        return bytes(self._piece_buf.raw[:n])

    def feed(self, tokens: Sequence[int]) -> None:
        if not tokens:
            return
        self._check_room(len(tokens))
        try:
            self._llm.eval(tokens)
        except BaseException:
            # A failed or interrupted batch leaves the state undefined: start clean next time.
            self.reset()
            raise
        self._tokens.extend(tokens)

    def truncate(self, n_tokens: int) -> bool:
        if n_tokens >= len(self._tokens):
            return n_tokens == len(self._tokens)
        if self._llm._ctx.kv_cache_seq_rm(-1, n_tokens, -1):
            self._llm.n_tokens = n_tokens
            del self._tokens[n_tokens:]
            return True
        return False

    def reset(self) -> None:
        self._llm.reset()
        self._tokens = []

    def make_sampler(self, params: SamplingParams) -> LlamaSampler:
        return LlamaSampler(self._lib, params)

    def sample(self, sampler: Sampler) -> int:
        assert isinstance(sampler, LlamaSampler)
        return int(self._lib.llama_sampler_sample(sampler.chain, self._llm._ctx.ctx, -1))

    def snapshot(self) -> object:
        """The sequence's state (attention KV and Mamba states) copied to host memory, once."""
        ctx = self._llm._ctx.ctx
        size = self._lib.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(ctx, buf, size, 0)
        return _State(buf, int(written))

    def restore(self, snapshot: object, tokens: Sequence[int]) -> None:
        assert isinstance(snapshot, _State)
        self._llm.reset()
        if self._lib.llama_state_seq_set_data(self._llm._ctx.ctx, snapshot.data, snapshot.size, 0) != snapshot.size:
            self.reset()
            raise RuntimeError("llama.cpp refused a saved state")
        self._llm.input_ids[: len(tokens)] = tokens
        self._llm.n_tokens = len(tokens)
        self._tokens = list(tokens)

    def close(self) -> None:
        self._llm.close()
