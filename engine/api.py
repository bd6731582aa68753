"""The engine's public vocabulary: requests going in, events coming out.

Everything here is a frozen dataclass so it can cross the worker-process pipe (pickle) and threads
without anyone mutating it on the way. Validation happens on construction: a request that exists is
a request the engine can run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from engine.errors import InvalidRequest

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

#: Largest reasoning budget accepted; the model's context tops out at 1M tokens.
MAX_BUDGET = 1 << 20
#: Tokens the model may keep reasoning after the budget while waiting for a newline (model card).
BUDGET_GRACE_TOKENS = 500


@dataclass(frozen=True)
class ToolCall:
    """A function call the assistant made; arguments are a mapping, as the chat template requires."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""

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

    def __post_init__(self) -> None:
        if self.prompt is not None and self.messages:
            raise InvalidRequest("A request has either messages or a raw prompt, not both.",
                                 "Send the conversation as messages, or the rendered text as prompt.")
        if self.prompt is None and not self.messages:
            raise InvalidRequest("The conversation is empty.", "Type a message first.")
        if self.prompt == "":
            raise InvalidRequest("The prompt is empty.", "Send some text to complete.")
        budget = self.reasoning_budget
        if budget is not None and (not isinstance(budget, int) or not 0 <= budget <= MAX_BUDGET):
            raise InvalidRequest(
                f"The reasoning budget must be a whole number from 0 to {MAX_BUDGET}, not {budget!r}.",
                "Pick a smaller budget, or no limit.",
            )
        self._check_template_options()

    @property
    def opens_new_turn(self) -> bool:
        """Whether the prompt ends with a generation prompt (a new assistant turn)."""
        return not self.continue_final_message if self.add_generation_prompt is None else self.add_generation_prompt

    def _check_template_options(self) -> None:
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
    text: str


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    """The answer called a tool (parsed from the model's `<tool_call>` block)."""

    call: ToolCall


@dataclass(frozen=True)
class ReasoningEnded:
    """The thinking is over. `by_budget` says the budget closed it, not the model."""

    by_budget: bool
    reasoning_tokens: int


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


GenerationEvent = ReasoningDelta | ContentDelta | ToolCallEvent | ReasoningEnded | Usage | Finished | Error
EngineEvent = GenerationEvent | LoadProgress | ModelInfo
