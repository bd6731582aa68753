"""The engine's public vocabulary: requests going in, events coming out.

Everything here is a frozen dataclass so it can cross the worker-process pipe (pickle) and threads
without anyone mutating it on the way. Validation happens on construction: a request that exists is
a request the engine can run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from engine.errors import InvalidRequest

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

#: Largest reasoning budget accepted; the model's context tops out at 1M tokens.
MAX_BUDGET = 1 << 20
#: Tokens the model may keep reasoning after the budget while waiting for a newline (model card).
BUDGET_GRACE_TOKENS = 500
#: What the engine does when the reasoning seems to loop (engine.generate.text.loops): nothing, an
#: event (the GUI's default), or the event and "answer now" on the person's behalf.
LOOP_DETECTION_MODES = ("off", "warn", "end")
#: Deepest nesting of objects and lists accepted in a request's values (tool schemas, tool-call
#: arguments; the server counts from the top of the body). Real JSON schemas stay far below it; a
#: value some 500 levels deep cannot even cross the worker pipe (pickle recurses once per level).
MAX_NESTING = 64

_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_SCALARS = (bool, int, float, type(None))
#: How many steps of a path an error names before it shortens the rest to "…".
_PATH_SHOWN = 8


@dataclass(frozen=True)
class ToolCall:
    """A function call the assistant made; arguments are a mapping, as the chat template requires."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        _check_type("A tool call's name", self.name, str)
        _check_type("A tool call's id", self.id, str)
        _check_type(f"The arguments of the tool call {self.name!r}", self.arguments, dict)

    def to_template(self) -> dict[str, Any]:
        return {"type": "function", "id": self.id, "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Message:
    """One chat turn. `reasoning` is the assistant's thinking, kept apart from the answer in `content`."""

    role: Role
    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidRequest(
                f"Unknown message role {self.role!r}.", f"Use one of: {', '.join(ROLES)}."
            )
        _check_type("A message's content", self.content, str)
        _check_type("A message's reasoning", self.reasoning, str)
        if not isinstance(self.tool_calls, tuple) or not all(isinstance(c, ToolCall) for c in self.tool_calls):
            raise InvalidRequest("A message's tool calls must be a tuple of ToolCall.", "Build them with ToolCall.")

    def to_template(self) -> dict[str, Any]:
        """The dict shape chat templates (and transformers' apply_chat_template) expect."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.reasoning:
            out["reasoning_content"] = self.reasoning
        if self.tool_calls:
            out["tool_calls"] = [call.to_template() for call in self.tool_calls]
        return out


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is picked. temperature 0 means greedy; top_k 0 and min_p 0 mean off.

    Defaults follow the model card's recommendation for reasoning (temperature 1.0, top_p 1.0).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    max_tokens: int = 4096
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # benchmarks only: generate exactly max_tokens

    def __post_init__(self) -> None:
        _check_range("temperature", self.temperature, 0.0, 5.0)
        _check_range("top_p", self.top_p, 0.0, 1.0, low_open=True)
        _check_range("min_p", self.min_p, 0.0, 1.0)
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise InvalidRequest(f"top_k must be 0 (off) or a positive whole number, not {self.top_k!r}.",
                                 "Set top_k to 0 to turn it off, or to e.g. 40.")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidRequest(f"max_tokens must be at least 1, not {self.max_tokens!r}.",
                                 "Raise max_tokens.")
        if self.seed is not None and (not isinstance(self.seed, int) or not 0 <= self.seed < 2**32):
            raise InvalidRequest(f"seed must be a whole number from 0 to 4294967295, not {self.seed!r}.",
                                 "Leave the seed empty for a random one.")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidRequest("Stop strings must be non-empty text.", "Remove the empty stop string.")
        _check_type("ignore_eos", self.ignore_eos, bool)
        check_value("stop", list(self.stop))


#: Template variables a request sets through its own fields, never through chat_template_kwargs.
RESERVED_TEMPLATE_VARIABLES = ("messages", "tools", "documents", "add_generation_prompt",
                               "continue_final_message", "enable_thinking")


@dataclass(frozen=True)
class GenerationRequest:
    """One answer to produce. `reasoning_budget` None means no limit; 0 closes the thinking at once.

    Either `messages` (formatted with the model's chat template) or `prompt`: raw text, given to the
    model as it is (markers in it are markers) and streamed back as raw text, for completion APIs.

    With messages, as transformers' apply_chat_template defines them: `add_generation_prompt` opens a
    new assistant turn (None: unless `continue_final_message`); `continue_final_message` leaves the
    last message open so the model continues it (a final assistant message that ends inside its
    reasoning continues the reasoning); `chat_template_kwargs` are further variables for the
    template (e.g. truncate_history_thinking), each of which the template must read.

    `loop_detection` watches the reasoning for a thinking loop (see LoopSuspected).

    `split_reasoning` False streams the reasoning inside the answer text as the model wrote it,
    markers included (what a server without a reasoning parser returns). `keep_answer_room` closes
    the reasoning early when only the answer's room (a quarter of max_tokens, 8 to 512) is left:
    the GUI and CLI keep it; the OpenAI API leaves it to the request.
    """

    messages: tuple[Message, ...] = ()
    thinking: bool = True
    reasoning_budget: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    tools: tuple[dict[str, Any], ...] = ()
    prompt: str | None = None
    add_generation_prompt: bool | None = None
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    split_reasoning: bool = True
    keep_answer_room: bool = True
    #: Thinking-loop detection: "off", "warn" (a LoopSuspected event) or "end" (the event, then the
    #: reasoning is ended as by "answer now").
    loop_detection: str = "warn"

    def __post_init__(self) -> None:
        if self.prompt is not None and self.messages:
            raise InvalidRequest("A request has either messages or a raw prompt, not both.",
                                 "Send the conversation as messages, or the rendered text as prompt.")
        if self.prompt is None and not self.messages:
            raise InvalidRequest("The conversation is empty.", "Type a message first.")
        if self.prompt == "":
            raise InvalidRequest("The prompt is empty.", "Send some text to complete.")
        _check_type("thinking", self.thinking, bool)
        if self.prompt is not None:
            _check_type("The prompt", self.prompt, str)
            check_value("prompt", self.prompt)
        check_value("messages", [m.to_template() for m in self.messages])
        if not all(isinstance(tool, dict) for tool in self.tools):
            raise InvalidRequest("Each tool must be a JSON object (a dict).", "Describe each tool as a dict.")
        check_value("tools", list(self.tools))
        budget = self.reasoning_budget
        if budget is not None and (not isinstance(budget, int) or not 0 <= budget <= MAX_BUDGET):
            raise InvalidRequest(
                f"The reasoning budget must be a whole number from 0 to {MAX_BUDGET}, not {budget!r}.",
                "Pick a smaller budget, or no limit.",
            )
        if self.loop_detection not in LOOP_DETECTION_MODES:
            raise InvalidRequest(f"loop_detection must be one of {', '.join(LOOP_DETECTION_MODES)}, "
                                 f"not {self.loop_detection!r:.40}.", "Use off, warn or end.")
        self._check_template_options()

    @property
    def opens_new_turn(self) -> bool:
        """Whether the prompt ends with a generation prompt (a new assistant turn)."""
        return not self.continue_final_message if self.add_generation_prompt is None else self.add_generation_prompt

    def _check_template_options(self) -> None:
        for name in ("continue_final_message", "split_reasoning", "keep_answer_room"):
            _check_type(name, getattr(self, name), bool)
        if self.add_generation_prompt is not None:
            _check_type("add_generation_prompt", self.add_generation_prompt, bool)
        _check_type("chat_template_kwargs", self.chat_template_kwargs, dict)
        check_value("chat_template_kwargs", self.chat_template_kwargs)
        if self.continue_final_message and self.add_generation_prompt:
            raise InvalidRequest(
                "continue_final_message and add_generation_prompt cannot both be true: one continues the "
                "last message, the other starts a new assistant turn after it.",
                "Set add_generation_prompt to false to continue the final message.")
        if self.prompt is not None and (self.continue_final_message or self.chat_template_kwargs):
            raise InvalidRequest("A raw prompt is not rendered with the chat template, so continue_final_message "
                                 "and chat_template_kwargs do not apply to it.",
                                 "Send messages instead, or leave those fields out.")
        for name in self.chat_template_kwargs:
            if not isinstance(name, str) or not name.isidentifier():
                raise InvalidRequest(f"chat_template_kwargs key {name!r} is not a template variable name.",
                                     "Use names such as truncate_history_thinking.")
            if name in RESERVED_TEMPLATE_VARIABLES:
                own = {"enable_thinking": "thinking"}.get(name, name)
                raise InvalidRequest(f"chat_template_kwargs may not set {name!r}: the request has its own "
                                     "field for it.", f"Set the request's {own} instead.")


def check_value(where: str, value: Any, max_depth: int = MAX_NESTING) -> None:
    """Refuse a value that is not plain JSON, is nested deeper than `max_depth` levels of objects and
    lists, or holds text that is not valid Unicode (a lone surrogate, e.g. from a "\\ud800" escape).

    The InvalidRequest names the place (`tools[0].function.parameters…`). The walk is iterative, so
    a value of any depth is measured without recursion.
    """
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 1, (where,))]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_text(path, item)
        elif isinstance(item, dict | list | tuple):
            if depth > max_depth:
                raise InvalidRequest(
                    f"{_path_text(path)} is nested more than {max_depth} levels deep.",
                    f"Flatten the value: at most {max_depth} levels of objects and lists are accepted.")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidRequest(f"{_path_text(path)} has a key that is not text ({key!r}).",
                                             "Use text for every key, as JSON does.")
                    _check_text((*path, key), key)
                    stack.append((child, depth + 1, (*path, key)))
            else:
                stack.extend((child, depth + 1, (*path, i)) for i, child in enumerate(item))
        elif not isinstance(item, _JSON_SCALARS):
            raise InvalidRequest(f"{_path_text(path)} holds a {type(item).__name__}, which is not a JSON value.",
                                 "Use text, numbers, true/false, null, lists and objects only.")


def _check_text(path: tuple[Any, ...], text: str) -> None:
    if (found := _SURROGATE.search(text)) is not None:
        raise InvalidRequest(
            f"{_path_text(path)} holds a lone surrogate (U+{ord(found.group()):04X}) at character "
            f"{found.start()}, which is not a Unicode character.",
            "Send valid Unicode text (UTF-8; in JSON, a \\ud800-\\udbff escape must be followed by its "
            "\\udc00-\\udfff half).")


def _path_text(path: tuple[Any, ...]) -> str:
    """("tools", 0, "function") -> "tools[0].function", shortened after _PATH_SHOWN steps."""
    out = ""
    path = path[1:] if path and path[0] == "" else path  # the root of a whole body has no name
    for step in path[:_PATH_SHOWN]:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            shown = step if step.isidentifier() else repr(step)[:40]
            out += f".{shown}" if out else shown
    return (out or "the request") + ("…" if len(path) > _PATH_SHOWN else "")


def _check_type(what: str, value: Any, kind: type) -> None:
    # bool is an int in Python: an int where a bool belongs (or the reverse) is refused too.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidRequest(f"{what} must be {_KIND_NAMES.get(kind, kind.__name__)}, not {value!r:.60}.",
                             f"Send {_KIND_NAMES.get(kind, kind.__name__)}.")


_KIND_NAMES = {bool: "true or false", str: "text", dict: "an object (a dict)"}


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high
    if ok and low_open and value == low:
        ok = False
    if not ok:
        bracket = "(" if low_open else "["
        raise InvalidRequest(f"{name} must be in {bracket}{low}, {high}], not {value!r}.",
                             f"Set {name} inside that range.")


# ----------------------------------------------------------------------------------------------
# Events. A generation yields zero or more deltas, then one Usage, then exactly one Finished or Error.


class FinishReason(StrEnum):
    STOP = "stop"  # end-of-turn token or a stop string
    LENGTH = "length"  # max_tokens or the context ran out
    CANCELLED = "cancelled"
    TOOL_CALLS = "tool_calls"  # the answer ended with one or more tool calls


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the reasoning. `reasoning_tokens` is the engine's count of reasoning tokens so far
    (0 where no count is known), so a front end shows tokens, never a count of pieces."""

    text: str
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    """The answer called a tool (parsed from the model's `<tool_call>` block)."""

    call: ToolCall


class ReasoningEndCause(StrEnum):
    """What ended the reasoning."""

    MODEL = "model"  # the model closed it itself
    BUDGET = "budget"  # the reasoning budget (the model card's rule: next newline, at most +500)
    ANSWER_ROOM = "answer_room"  # only the room kept for the answer was left (max tokens or the context)
    USER = "user"  # "answer now"
    LOOP = "loop"  # loop detection set to "end" fired


@dataclass(frozen=True)
class ReasoningEnded:
    """The thinking is over. `by_budget` says the engine closed it, not the model; `cause` says why
    (the budget, or the room kept for the answer)."""

    by_budget: bool
    reasoning_tokens: int
    cause: ReasoningEndCause = ReasoningEndCause.MODEL

    def __post_init__(self) -> None:
        if self.by_budget and self.cause is ReasoningEndCause.MODEL:  # told only "by_budget": the budget
            object.__setattr__(self, "cause", ReasoningEndCause.BUDGET)


class BudgetPhase(StrEnum):
    """Where the reasoning stands against its limits (ReasoningProgress)."""

    COUNTING = "counting"  # below the budget (or no budget: counting against the tokens allowed)
    WAITING_FOR_NEWLINE = "waiting_for_newline"  # budget reached: ends at the next newline, grace running
    CUT = "cut"  # ended mid-line: the grace ran out, or only the answer's room was left


@dataclass(frozen=True)
class ReasoningProgress:
    """A live reading of the reasoning meter, in tokens the engine counted (not text pieces).

    Sent with the first reasoning token, every few tokens after it (PROGRESS_EVERY), whenever the
    phase changes, and once more as the reasoning ends. `budget` None: no budget, and `limit` (the
    most tokens the reasoning could still reach: max_tokens or the context, the answer's room kept
    when the guard is on) is the scale. `grace_left` counts down while waiting for a newline.
    """

    tokens: int
    budget: int | None
    limit: int
    phase: BudgetPhase
    grace_left: int | None = None


@dataclass(frozen=True)
class LoopSuspected:
    """The reasoning seems to repeat itself (engine.generate.text.loops).

    `repeated` is a sample of the text that keeps coming back, `score` the share of the recent
    reasoning that is repetition (0..1), `action` what the engine does: "warn" (nothing more) or
    "end" (the reasoning is ended, as by answer now; ReasoningEnded then says LOOP).
    """

    reasoning_tokens: int
    repeated: str
    score: float
    action: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    cached_prompt_tokens: int
    reasoning_tokens: int
    answer_tokens: int
    time_to_first_token_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float

    @property
    def completion_tokens(self) -> int:
        return self.reasoning_tokens + self.answer_tokens


@dataclass(frozen=True)
class ContextCount:
    """How a conversation fills the loaded context (EngineClient.count_tokens), in the model's own
    tokens through its chat template: the history, the reasoning of earlier turns, and the current
    turn (the question being typed or sent, and the generation prompt).

    `old_reasoning` is what the template's truncate_history_thinking drops; it is in the context only
    when `reasoning_kept` (the request set it False). `can_drop_reasoning` False: the template has
    no such switch. `known` False: no count could be made (a server whose tokenizer is not here);
    `note` says why.
    """

    n_ctx: int
    history: int = 0
    old_reasoning: int = 0
    current_turn: int = 0
    reasoning_kept: bool = False
    can_drop_reasoning: bool = False
    known: bool = True
    note: str = ""

    @property
    def total(self) -> int:
        """Tokens the prompt holds, as the request renders it."""
        return self.history + self.current_turn + (self.old_reasoning if self.reasoning_kept else 0)


@dataclass(frozen=True)
class Finished:
    reason: FinishReason


@dataclass(frozen=True)
class Error:
    """Something went wrong. `message` says what happened, `action` what the person can do about it."""

    message: str
    action: str = ""
    kind: str = "error"  # a short machine-readable tag: crash, oom, bad_model, bad_request, context, ...

    def __str__(self) -> str:
        return f"{self.message} {self.action}".strip()


@dataclass(frozen=True)
class LoadProgress:
    """Model loading moved on; `fraction` is 0..1, or None when unknown."""

    stage: str
    fraction: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is. Sent once after a successful load."""

    path: str
    name: str
    backend: str
    architecture: str
    quantization: str
    size_bytes: int
    context_length: int  # what the model was trained for
    n_ctx: int  # what this session allocated
    n_gpu_layers: int
    is_demo: bool
    has_thinking: bool  # the chat template knows enable_thinking
    #: Where it runs, e.g. "CUDA bfloat16" or "CPU float32" (torch); empty for llama.cpp.
    device: str = ""
    #: The compute path, e.g. "fast Mamba kernels (mamba-ssm, causal-conv1d)" or "PyTorch Mamba fallback".
    kernels: str = ""
    #: What a person should know about this load (weights spilled to CPU memory, ...).
    notes: tuple[str, ...] = ()
    #: The generation defaults the model file or folder declares; None where it declares none.
    default_temperature: float | None = None
    default_top_p: float | None = None
    #: The variables the chat template reads (what chat_template_kwargs may set); empty where unknown.
    template_variables: tuple[str, ...] = ()


GenerationEvent = (ReasoningDelta | ContentDelta | ToolCallEvent | ReasoningEnded | ReasoningProgress
                   | LoopSuspected | Usage | Finished | Error)
EngineEvent = GenerationEvent | LoadProgress | ModelInfo | ContextCount


# What to load: a GGUF on llama.cpp, a Hugging Face folder on torch, or a model on a server.


@dataclass(frozen=True)
class LlamaLoadOptions:
    n_gpu_layers: int = -1  # -1: every layer that the build can offload (all on CPU builds)
    n_ctx: int = 8192
    n_threads: int | None = None
    flash_attn: bool = True
    n_batch: int = 512


@dataclass(frozen=True)
class TorchLoadOptions:
    #: "auto" (CUDA when available), "cuda" or "cpu".
    device: str = "auto"
    #: "auto" (bfloat16 on CUDA, float32 on CPU), "bfloat16", "float16" or "float32".
    dtype: str = "auto"
    n_ctx: int = 8192
    #: Allow spreading over several GPUs or spilling weights to CPU memory when one GPU is short.
    allow_offload: bool = True
    #: transformers' experts implementation: "auto" (its default), "eager", "grouped_mm", "batched_mm".
    experts: str = "auto"
    #: Prompt tokens per forward pass; bounds activation memory on very long prompts.
    prefill_chunk: int = 8192
    #: CPU threads for torch's CPU ops (None: torch's default). With more threads than free cores,
    #: torch's OpenMP pool spins and small ops get tens of times slower.
    n_threads: int | None = None
    #: "auto" (the CUDA-graph decode step where it can run, else eager), "eager" (transformers' forward
    #: per token), or "fast" (also on the CPU: the same hand-written step in plain torch; for tests).
    decode: str = "auto"


def normalize_base_url(url: str) -> str:
    """`host:8000`, `http://host:8000` and `http://host:8000/v1/` all become `http://host:8000/v1`."""
    text = url.strip()
    if text and "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{url!r} is not a server address.",
                             "Give the server's base URL, e.g. http://gpu-box:8000/v1.")
    text = text.rstrip("/")
    return text + "/v1" if parts.path in ("", "/") else text


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    first_pause_s: float = 0.5  # doubled after each try
    longest_pause_s: float = 10.0


@dataclass(frozen=True)
class RemoteSpec:
    """A model on an OpenAI-compatible server. `model` empty: the server's only model.

    `api_key` is held in memory only (never in a repr, a log or a file); front ends read it from the
    keyring (engine.services.secrets, name `remote:<base_url>`) or the command line. `budget_on_server` None
    lets the engine decide from the kind of server; False forces the two-step method over the API.
    """

    base_url: str
    model: str = ""
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget_on_server: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
        if not self.timeout_s > 0:
            raise InvalidRequest(f"The timeout must be positive, not {self.timeout_s!r}.", "Use e.g. 120 seconds.")


def secret_name(base_url: str) -> str:
    """Where a server's API key is kept in the keyring."""
    return f"remote:{normalize_base_url(base_url)}"


@dataclass(frozen=True)
class LoadSpec:
    """What to load. `model_path` None means the demo model; `remote` a model on a server instead.

    A GGUF file runs on llama.cpp with `llama`; a Hugging Face folder on torch with `torch`.
    """

    model_path: str | None = None
    llama: LlamaLoadOptions = field(default_factory=LlamaLoadOptions)
    torch: TorchLoadOptions = field(default_factory=TorchLoadOptions)
    remote: RemoteSpec | None = None
