"""EngineSession: one loaded model and the conversation machinery around it.

This is the engine as it runs inside the worker process (and in-process for benchmarks and tests
of the loop): load a model, turn a GenerationRequest into a prompt with the model's own template,
and run the shared generation loop. Failures become Error events; nothing raises out of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from engine.api import (
    ContextCount,
    EngineEvent,
    Error,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    LlamaLoadOptions,
    LoadProgress,
    LoadSpec,
    ModelInfo,
    TorchLoadOptions,
    Usage,
)
from engine.backends.base import Backend
from engine.backends.llama_cpp import LlamaCppBackend
from engine.backends.torch.backend import TorchBackend, load_torch_backend
from engine.errors import ContextOverflow, EngineError, OutOfMemory
from engine.formats.demo import DEMO_LABEL, resolve_model
from engine.formats.gguf import read_gguf_metadata
from engine.formats.hf_folder import generation_defaults, read_hf_folder
from engine.generate.chat_format import ChatFormatter, Prompt
from engine.generate.context_count import count_context
from engine.generate.loop import CancelFlag, LoopOptions, generate_tokens
from engine.generate.prefix_cache import PrefixCache
from engine.generate.templates.limits import RenderCancelled
from engine.generate.templates.sandbox import compile_template
from engine.generate.text.reasoning import prompt_opens_reasoning

if TYPE_CHECKING:  # httpx and the remote client load only when a server is connected
    from engine.api import RemoteSpec
    from engine.remote.engine import RemoteEngine

# Used when a GGUF carries no template: plain ChatML, which most instruct models understand.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class PromptBound:
    """Tokenizes a prompt piece by piece, and refuses it before tokenizing a piece that proves it too
    long: a token stands for at most `longest_token_bytes()` bytes, so text of N characters is at
    least N / that many tokens. A 100 MB paste is refused at once instead of tokenized whole first.

    (The bound holds for byte-level and byte-fallback vocabularies, which every supported model has.)
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._chars = 0

    def __call__(self, text: str, special: bool) -> list[int]:
        self._chars += len(text)
        n_ctx = self._backend.n_ctx
        if self._chars > n_ctx:  # below that the bound (chars / longest <= chars) cannot pass n_ctx
            at_least = -(-self._chars // self._backend.longest_token_bytes())
            if at_least > n_ctx:
                raise ContextOverflow(
                    f"The conversation is at least {at_least:,} tokens long ({self._chars:,} characters); "
                    f"the model was loaded with a {n_ctx:,}-token context.",
                    "Shorten the text, start a new conversation, or reload with a larger context.")
        return self._backend.tokenize(text, special=special)


class _NeverCancelled:
    def is_set(self) -> bool:
        return False


def _cancelled_before_start() -> Iterator[GenerationEvent]:
    yield Usage(prompt_tokens=0, cached_prompt_tokens=0, reasoning_tokens=0, answer_tokens=0,
                time_to_first_token_s=0.0, prefill_tokens_per_s=0.0, decode_tokens_per_s=0.0)
    yield Finished(FinishReason.CANCELLED)


class EngineSession:
    """Holds at most one model. Not thread-safe: one generation at a time."""

    def __init__(self) -> None:
        self.backend: Backend | None = None
        self.formatter: ChatFormatter | None = None
        self.cache: PrefixCache | None = None
        self.info: ModelInfo | None = None
        self.remote: RemoteEngine | None = None

    def load(self, spec: LoadSpec) -> Iterator[EngineEvent]:
        self.unload()
        if spec.remote is not None:
            yield from self._connect(spec.remote)
            return
        try:
            path, is_demo = resolve_model(spec.model_path)
            if path.is_dir():  # a Hugging Face folder (read_hf_folder explains any other folder)
                yield from self._load_torch(path, spec.torch)
            else:
                yield from self._load_gguf(path, is_demo, spec.llama)
        except EngineError as exc:
            self.unload()
            yield Error(exc.message, exc.action, exc.kind)
            return
        except MemoryError:
            self.unload()
            yield Error("There is not enough memory to load this model.",
                        "Close other programs, choose a smaller quant, or lower the context length.", "oom")
            return
        assert self.info is not None
        yield LoadProgress("Ready", 1.0)
        yield self.info

    def _load_gguf(self, path: Path, is_demo: bool, options: LlamaLoadOptions) -> Iterator[EngineEvent]:
        yield LoadProgress("Reading the model file", 0.0)
        meta = read_gguf_metadata(path)
        yield LoadProgress(f"Loading {meta.name} ({meta.size_bytes / 2**30:.1f} GiB)", 0.1)
        backend = LlamaCppBackend(meta, options)
        self._attach(backend, meta.chat_template)
        assert self.formatter is not None
        self.info = ModelInfo(
            path=str(path), name=DEMO_LABEL if is_demo else meta.name, backend=backend.name,
            architecture=meta.architecture, quantization=meta.quantization, size_bytes=meta.size_bytes,
            context_length=meta.context_length, n_ctx=backend.n_ctx, n_gpu_layers=backend.n_gpu_layers,
            is_demo=is_demo, has_thinking=self.formatter.supports_thinking,
            template_variables=tuple(sorted(self.formatter.variables)),
            default_temperature=meta.temperature, default_top_p=meta.top_p,
        )

    def _load_torch(self, path: Path, options: TorchLoadOptions) -> Iterator[EngineEvent]:
        yield LoadProgress("Reading the model folder", 0.0)
        folder = read_hf_folder(path)
        if folder.chat_template:
            compile_template(folder.chat_template)  # a template that does not parse fails before the weights load
        backend: TorchBackend | None = None
        for event in load_torch_backend(folder, options):
            if isinstance(event, TorchBackend):
                backend = event
            else:
                yield event
        assert backend is not None
        self._attach(backend, folder.chat_template)
        assert self.formatter is not None
        placement = backend.placement
        temperature, top_p = generation_defaults(path)
        dtype = str(backend.dtype).removeprefix("torch.")
        gpu_layers = folder.n_layers if placement.device_type == "cuda" else 0
        self.info = ModelInfo(
            path=str(path), name=folder.name, backend=backend.name, architecture=folder.model_type,
            quantization=dtype, size_bytes=backend.memory_bytes(), context_length=folder.context_length,
            n_ctx=backend.n_ctx, n_gpu_layers=gpu_layers, is_demo=False,
            has_thinking=self.formatter.supports_thinking,
            template_variables=tuple(sorted(self.formatter.variables)),
            device=f"{'CUDA' if placement.device_type == 'cuda' else 'CPU'} {dtype}",
            kernels=f"{backend.kernels}; experts: {backend.experts}",
            notes=tuple(note for note in (placement.note, backend.decode_note) if note),
            default_temperature=temperature, default_top_p=top_p,
        )

    def _attach(self, backend: Backend, template: str | None) -> None:
        self.backend = backend
        self.cache = PrefixCache(backend)
        self.formatter = ChatFormatter(template or FALLBACK_TEMPLATE, backend.special_tokens,
                                       bos_token="", eos_token="")

    def _connect(self, spec: RemoteSpec) -> Iterator[EngineEvent]:
        from engine.remote.engine import RemoteEngine

        remote = RemoteEngine(spec)
        try:
            for event in remote.connect():
                if isinstance(event, ModelInfo):
                    self.remote, self.info = remote, event
                yield event
        except EngineError as exc:
            remote.close()
            yield Error(exc.message, exc.action, exc.kind)

    def unload(self) -> None:
        if self.remote is not None:
            self.remote.close()
            self.remote = None
        if self.backend is not None:
            self.backend.close()
        self.backend = self.formatter = self.cache = self.info = None

    def tokenize(self, text: str, special: bool) -> list[int]:
        assert self.backend is not None
        return self.backend.tokenize(text, special=special)

    def count(self, request: GenerationRequest) -> ContextCount | Error:
        """How `request`'s prompt fills the context (engine.generate.context_count); an Error when no
        model is loaded or the template refuses the conversation. A server's count is unknown: its
        tokenizer is not here."""
        if self.remote is not None:
            n_ctx = self.info.n_ctx if self.info is not None else 0
            return ContextCount(n_ctx, known=False,
                                note="The server's tokenizer is not reachable from here, so the count is unknown.")
        backend, formatter = self.backend, self.formatter
        if backend is None or formatter is None:
            return Error("No model is loaded.", "Load a model first.", "no_model")
        try:
            # A bound per piece: the three renders of the split each tokenize the conversation once.
            return count_context(formatter, request, lambda text, special: PromptBound(backend)(text, special),
                                 backend.n_ctx,
                                 extra_tokens=1 if backend.add_bos else 0)
        except EngineError as exc:
            return Error(exc.message, exc.action, exc.kind)

    def generate(self, request: GenerationRequest, cancel: CancelFlag | None = None,
                 answer_now: CancelFlag | None = None) -> Iterator[GenerationEvent]:
        """Stream one answer. `answer_now`, once set, ends the reasoning at the next token boundary."""
        if self.remote is not None:
            try:
                yield from self.remote.generate(request, cancel or _NeverCancelled(), answer_now)
            except EngineError as exc:
                yield Error(exc.message, exc.action, exc.kind)
            except RenderCancelled:
                yield from _cancelled_before_start()
            return
        if self.backend is None or self.formatter is None or self.cache is None:
            yield Error("No model is loaded.", "Load a model first.", "no_model")
            return
        try:
            yield from self._generate(request, cancel or _NeverCancelled(), answer_now)
        except RenderCancelled:  # while the template was still rendering the prompt
            yield from _cancelled_before_start()
        except EngineError as exc:
            if isinstance(exc, OutOfMemory):  # the saved turn states hold GPU memory too: give it back
                self.cache.clear()
            yield Error(exc.message, exc.action, exc.kind)
        except MemoryError:
            self.cache.clear()
            yield Error("The engine ran out of memory while generating.",
                        "Use a shorter context, fewer GPU layers or a smaller model.", "oom")
        except RuntimeError as exc:  # llama_decode failures surface as RuntimeError
            self.backend.reset()
            self.cache.clear()
            yield Error(f"The model failed while generating: {exc}.",
                        "Try again; if it repeats, reload the model with a smaller context or fewer GPU layers.",
                        "backend")

    def _generate(self, request: GenerationRequest, cancel: CancelFlag,
                  answer_now: CancelFlag | None) -> Iterator[GenerationEvent]:
        backend, formatter, cache = self.backend, self.formatter, self.cache
        assert backend is not None and formatter is not None and cache is not None
        tokenize = PromptBound(backend)
        if request.prompt is not None:
            # A raw prompt that ends inside <think> is reasoning, whatever the flag.
            prompt = Prompt(request.prompt, tokenize(request.prompt, True), None,
                            prompt_opens_reasoning(request.prompt))
        else:
            prompt = formatter.prompt(
                request.messages, tokenize, thinking=request.thinking and formatter.supports_thinking,
                tools=request.tools, add_generation_prompt=request.opens_new_turn,
                continue_final_message=request.continue_final_message,
                template_kwargs=request.chat_template_kwargs, cancel=cancel)
        tokens = prompt.tokens
        if backend.add_bos and (not tokens or tokens[0] != backend.bos_id):
            tokens = [backend.bos_id, *tokens]
        room = backend.n_ctx - len(tokens)
        if room < 1:
            raise ContextOverflow(
                f"The conversation is {len(tokens):,} tokens long; the model was loaded with a "
                f"{backend.n_ctx:,}-token context.",
                "Start a new conversation, delete earlier messages, or reload with a larger context.",
            )
        checkpoint = prompt.last_turn_start + (len(tokens) - len(prompt.tokens)) \
            if prompt.last_turn_start is not None else None
        options = LoopOptions(
            sampling=request.sampling,
            starts_in_reasoning=prompt.opens_reasoning,
            reasoning_budget=request.reasoning_budget if prompt.opens_reasoning else None,
            checkpoint_at=checkpoint,
            raw_text=request.prompt is not None or not request.split_reasoning,
            tools=request.tools,
            keep_answer_room=request.keep_answer_room,
            loop_detection=request.loop_detection,
        )
        closing = lambda text: formatter.tokenize_text(text, self.tokenize)  # noqa: E731
        yield from generate_tokens(backend, cache, tokens, options, cancel, closing, answer_now)

