"""Between OpenAI's wire format and the engine's requests and events."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.server.schema import ChatCompletionRequest, ChatMessageIn, CompletionRequest
from engine.api import (
    MAX_NESTING,
    ContentDelta,
    EngineEvent,
    FinishReason,
    GenerationRequest,
    Message,
    ReasoningDelta,
    SamplingParams,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from engine.errors import InvalidRequest


def to_message(m: ChatMessageIn) -> Message:
    role = "system" if m.role == "developer" else m.role
    if role != "assistant":
        return Message(role, m.text())
    calls = tuple(_tool_call(c.function.name, c.function.arguments, c.id) for c in m.tool_calls or ())
    return Message("assistant", m.text(), reasoning=m.reasoning_content or m.reasoning or "", tool_calls=calls)


def _tool_call(name: str, arguments: str | dict[str, Any], call_id: str) -> ToolCall:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError as exc:
            raise InvalidRequest(f"Tool call arguments for {name!r} are not valid JSON: {exc}.",
                                 "Send arguments as a JSON object.") from exc
        except RecursionError as exc:  # nesting, and text, are bounded by the engine's request checks
            raise InvalidRequest(f"Tool call arguments for {name!r} are nested more than {MAX_NESTING} levels deep.",
                                 "Flatten the arguments.") from exc
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"Tool call arguments for {name!r} must be a JSON object.",
                             "Send arguments as a JSON object.")
    return ToolCall(name, arguments, call_id)


def _sampling(body: ChatCompletionRequest | CompletionRequest, max_tokens: int) -> SamplingParams:
    top_k = body.top_k if body.top_k is not None and body.top_k > 0 else 0
    return SamplingParams(
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=top_k, min_p=body.min_p or 0.0, seed=body.seed, max_tokens=max_tokens,
        stop=body.stop_strings(), ignore_eos=body.ignore_eos)


def chat_request(body: ChatCompletionRequest, n_ctx: int, reasoning_format: str = "split") -> GenerationRequest:
    max_tokens = body.max_completion_tokens or body.max_tokens or n_ctx
    tools = () if body.tool_choice == "none" else tuple(t.model_dump(exclude_none=True) for t in body.tools or ())
    template = _TemplateOptions.of(body)
    return GenerationRequest(
        tuple(to_message(m) for m in body.messages), thinking=template.thinking, reasoning_budget=body.budget(),
        sampling=_sampling(body, max_tokens), tools=tools, add_generation_prompt=template.add_generation_prompt,
        continue_final_message=template.continue_final_message, chat_template_kwargs=template.kwargs,
        split_reasoning=(body.reasoning_format or reasoning_format) == "split",
        keep_answer_room=body.keep_answer_room, loop_detection=body.loop_detection)


def completion_request(body: CompletionRequest) -> GenerationRequest:
    try:
        prompt = body.prompt_text()
    except ValueError as exc:
        raise InvalidRequest(str(exc).capitalize() + ".", "Send one prompt string.") from exc
    return GenerationRequest(prompt=prompt, reasoning_budget=body.budget(),
                             sampling=_sampling(body, body.max_tokens or 16), keep_answer_room=body.keep_answer_room,
                             loop_detection=body.loop_detection)


@dataclass(frozen=True)
class _TemplateOptions:
    """The chat template's switches of one request. As vLLM does, a switch may come as a top-level
    field or inside chat_template_kwargs, and the one inside wins; the other keys go to the template."""

    thinking: bool
    add_generation_prompt: bool | None
    continue_final_message: bool
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, body: ChatCompletionRequest) -> _TemplateOptions:
        inside = body.chat_template_kwargs
        switches = {name: getattr(inside, name) for name in _SWITCHES if inside is not None
                    and getattr(inside, name) is not None}
        given = body.model_fields_set | set(switches)
        add = switches.get("add_generation_prompt", body.add_generation_prompt)
        cont = switches.get("continue_final_message", body.continue_final_message)
        # Left out, add_generation_prompt gives way to continue_final_message; set both true, they clash.
        return cls(thinking=body.thinking(), add_generation_prompt=add if "add_generation_prompt" in given else None,
                   continue_final_message=cont, kwargs=dict(inside.model_extra or {}) if inside is not None else {})


_SWITCHES = ("add_generation_prompt", "continue_final_message")


def usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "prompt_tokens_details": {"cached_tokens": u.cached_prompt_tokens},
    }


def tool_call_json(call: ToolCall, index: int) -> dict[str, Any]:
    return {"index": index, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}


def finish_reason(reason: FinishReason) -> str:
    return "stop" if reason is FinishReason.CANCELLED else reason.value


@dataclass
class ChunkMaker:
    """Builds the `chat.completion.chunk` / `text_completion` objects of one response."""

    model: str
    chat: bool
    id: str = ""  # chatcmpl-… for chat, cmpl-… for text completions, as OpenAI names them
    created: int = field(default_factory=lambda: int(time.time()))
    tool_index: int = 0

    def __post_init__(self) -> None:
        if not self.id:
            self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex}"

    def envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "choices": choices, **extra}

    def delta(self, event: EngineEvent, include_reasoning: bool = True) -> dict[str, Any] | None:
        """The chunk for one engine event, or None when it adds nothing to the stream."""
        if not self.chat:
            if isinstance(event, ContentDelta):
                return self.envelope([{"index": 0, "text": event.text, "finish_reason": None, "logprobs": None}])
            return None
        if isinstance(event, ReasoningDelta) and include_reasoning:
            delta: dict[str, Any] = {"reasoning_content": event.text, "reasoning": event.text}
        elif isinstance(event, ContentDelta):
            delta = {"content": event.text}
        elif isinstance(event, ToolCallEvent):
            delta = {"tool_calls": [tool_call_json(event.call, self.tool_index)]}
            self.tool_index += 1
        else:
            return None
        return self.envelope([{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}])

    def first(self) -> dict[str, Any]:
        return self.envelope([{"index": 0, "delta": {"role": "assistant", "content": ""},
                               "finish_reason": None, "logprobs": None}])

    def last(self, reason: FinishReason) -> dict[str, Any]:
        key = "delta" if self.chat else "text"
        choice = {"index": 0, key: {} if self.chat else "", "finish_reason": finish_reason(reason), "logprobs": None}
        return self.envelope([choice])


def full_response(maker: ChunkMaker, events: list[EngineEvent], reason: FinishReason, usage: Usage,
                  include_reasoning: bool = True) -> dict[str, Any]:
    """The non-streaming response for a finished generation."""
    text = "".join(e.text for e in events if isinstance(e, ContentDelta))
    if not maker.chat:
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish_reason(reason), "logprobs": None}
        return {**maker.envelope([choice]), "object": "text_completion", "usage": usage_json(usage)}
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    calls = [tool_call_json(e.call, i) for i, e in enumerate(x for x in events if isinstance(x, ToolCallEvent))]
    for call in calls:
        del call["index"]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if include_reasoning:
        message["reasoning_content"] = message["reasoning"] = reasoning or None
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "finish_reason": finish_reason(reason), "logprobs": None}
    return {**maker.envelope([choice]), "object": "chat.completion", "usage": usage_json(usage)}
