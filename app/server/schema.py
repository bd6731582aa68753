"""The OpenAI request bodies the server accepts, validated by pydantic.

Unknown fields are refused (400) rather than silently ignored: a client that sends a parameter we do
not honour learns so at once. Every model validates strictly: `"false"` or `0` where true/false
belongs, `true` or `"5"` where a number belongs, is a 400 naming the field (lax parsing once read
the string "false" as thinking on). Fields vLLM adds are accepted: `chat_template_kwargs` (every key
goes to the template), `add_generation_prompt`, `continue_final_message`, `thinking_token_budget`,
`top_k`, `min_p`, `ignore_eos`, `include_reasoning`; llama.cpp's `reasoning_format` (`none` or
`split`); plus our own `reasoning_budget` and `keep_answer_room`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _must_be_off(value: bool) -> bool:
    if value:
        raise ValueError("not supported by this server: only false is accepted")
    return value


#: A switch this server does not implement: false (or absent) only, and a real boolean.
Off = Annotated[bool, AfterValidator(_must_be_off)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class FunctionCallIn(_Strict):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(_Strict):
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # JSON-schema keywords vary; the template renders them
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(_Strict):
    type: Literal["function"] = "function"
    function: FunctionDef


class StreamOptions(_Strict):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class ChatTemplateKwargs(BaseModel):
    """Template variables, as vLLM passes them: the switches it knows are checked here, every other key
    goes to the template as it is (and is refused there when the template does not read it)."""

    model_config = ConfigDict(extra="allow", strict=True)
    enable_thinking: bool = True
    add_generation_prompt: bool | None = None
    continue_final_message: bool | None = None


class _Sampling(_Strict):
    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    stop: str | list[str] | None = None
    n: Literal[1] = 1
    user: str | None = None
    ignore_eos: bool = False
    # Penalties are not implemented: 0 (the default) is accepted, anything else is refused.
    frequency_penalty: float | None = Field(default=None, ge=0.0, le=0.0)
    presence_penalty: float | None = Field(default=None, ge=0.0, le=0.0)
    thinking_token_budget: int | None = Field(default=None, ge=0)
    reasoning_budget: int | None = Field(default=None, ge=0)
    # The GUI's empty-answer guard: close the reasoning early so that a quarter of max_tokens (8 to
    # 512 tokens) stays for the answer. Off by default: max_tokens means what it means to OpenAI.
    keep_answer_room: bool = False
    # Thinking-loop detection (a Nemotron Desk extension): "end" ends a reasoning that repeats itself,
    # as answer now does. Off by default: an OpenAI client has no place to show a warning.
    loop_detection: Literal["off", "warn", "end"] = "off"

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def budget(self) -> int | None:
        return self.reasoning_budget if self.reasoning_budget is not None else self.thinking_token_budget


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[ToolDef] | None = None
    tool_choice: Literal["auto", "none"] | None = None
    parallel_tool_calls: bool | None = None
    chat_template_kwargs: ChatTemplateKwargs | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    reasoning_format: Literal["none", "split"] | None = None  # None: the server's --reasoning-format
    include_reasoning: bool = True
    logprobs: Off | None = None
    response_format: dict[str, Literal["text"]] | None = None

    def thinking(self) -> bool:
        return self.chat_template_kwargs is None or self.chat_template_kwargs.enable_thinking


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=16, ge=1)
    echo: Off = False
    logprobs: None = None
    suffix: None = None

    def prompt_text(self) -> str:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise ValueError("exactly one prompt per request is supported")
            return self.prompt[0]
        return self.prompt
