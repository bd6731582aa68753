"""The OpenAI request bodies the server accepts, validated by pydantic.

Unknown fields are refused (400) rather than silently ignored: a client that sends a parameter we do
not honour learns so at once. Fields vLLM adds are accepted: `chat_template_kwargs` (every key goes
to the template), `add_generation_prompt`, `continue_final_message`, `thinking_token_budget`,
`top_k`, `min_p`, `ignore_eos`, `include_reasoning`; llama.cpp's `reasoning_format` (`none` or
`split`); plus our own `reasoning_budget` and `keep_answer_room`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    model_config = ConfigDict(extra="allow")  # JSON-schema keywords vary; the template renders them
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(_Strict):
    type: Literal["function"] = "function"
    function: FunctionDef


class StreamOptions(_Strict):
    include_usage: bool = False
    continuous_usage_stats: bool = False


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
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    reasoning_format: Literal["none", "split"] | None = None  # None: the server's --reasoning-format
    include_reasoning: bool = True
    logprobs: Literal[False] | None = None
    response_format: dict[str, Literal["text"]] | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=16, ge=1)
    echo: Literal[False] = False
    logprobs: None = None
    suffix: None = None

    def prompt_text(self) -> str:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise ValueError("exactly one prompt per request is supported")
            return self.prompt[0]
        return self.prompt
