"""RemoteEngine: the "remote" backend kind, a model served by vLLM, SGLang, NIM, llama.cpp or our own server.

It speaks the OpenAI-compatible API and yields the same events as the local backends, so the front
ends need no special case:

- Reasoning comes from the server's `reasoning_content` (or `reasoning`) when it splits it; otherwise
  the answer text runs through the engine's own ReasoningSplitter. Either way the text goes through
  one splitter, so phases, whitespace and ReasoningEnded behave exactly as locally.
- Thinking off is `chat_template_kwargs: {"enable_thinking": false}`. A server known to ignore that
  field (llama-cpp-python's) is driven through /v1/completions with the prompt rendered here from the
  model's template, so the switch still works.
- Budget: a server known to take a budget field gets it. Otherwise the model card's method over the
  API (see `_budget_steps`): the reasoning is generated with max_tokens = budget, continued through
  /v1/completions to the next newline within 500 tokens or cut with ".\\n</think>\\n\\n", and the answer
  is continued through /v1/completions on the rendered prompt. That needs the model's template: the
  server's own (llama.cpp's /props) or the Nemotron template bundled with the engine.

"Answer now" (a flag set from outside) stops the server's stream while it is in the reasoning and
continues as the two-step budget does: the closing text appended to the rendered prompt, the answer
from /v1/completions. It needs the rendered prompt (the model's template, as above); without one
the flag is left unread and the reasoning runs its course.

Token counts are the server's where it reports them; reasoning tokens are counted as streamed pieces
(one token each on every server we know), which is what the budget is measured in.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from engine.api import (
    BUDGET_GRACE_TOKENS,
    EngineEvent,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    LoadProgress,
    ModelInfo,
    ReasoningEndCause,
    RemoteSpec,
)
from engine.generate.chat_format import ChatFormatter
from engine.generate.text.budget import CLOSE_AT_NEWLINE, CLOSE_CUT, answer_reserve
from engine.generate.text.reasoning import prompt_opens_reasoning
from engine.remote.http import CancelFlag, RemoteHttp, ServerFailed, ServerModelMissing
from engine.remote.stream import AnswerStream

BUNDLED_TEMPLATE = "nemotron-3-nano.jinja"


@dataclass(frozen=True)
class ServerTraits:
    """What a kind of server does with the fields this engine may send."""

    label: str
    budget_field: str | None  # a request field that carries a thinking budget
    template_kwargs: bool  # passes chat_template_kwargs (enable_thinking) to the template
    answer_room_field: str | None = None  # a request field that turns the answer-room guard on


# Keyed by the `owned_by` their /v1/models reports. vLLM needs --reasoning-config for its budget.
KNOWN_SERVERS = {
    "nemotron-desk": ServerTraits("Nemotron Desk", "thinking_token_budget", True, "keep_answer_room"),
    "vllm": ServerTraits("vLLM", "thinking_token_budget", True),
    "sglang": ServerTraits("SGLang", None, True),
    "llamacpp": ServerTraits("llama.cpp server", None, True),
    "me": ServerTraits("llama-cpp-python server", None, False),  # ignores unknown fields
}
OTHER_SERVER = ServerTraits("OpenAI-compatible server", None, True)


def bundled_template() -> str:
    return resources.files("engine.generate.templates").joinpath(BUNDLED_TEMPLATE).read_text(encoding="utf-8")


def _finish_reason(value: Any) -> FinishReason:
    return {"length": FinishReason.LENGTH, "tool_calls": FinishReason.TOOL_CALLS,
            "abort": FinishReason.CANCELLED}.get(str(value), FinishReason.STOP)


class RemoteEngine:
    """One model on one server. Not thread-safe: one generation at a time."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.http = RemoteHttp(spec.base_url, spec.api_key, timeout_s=spec.timeout_s, retry=spec.retry)
        self.traits = OTHER_SERVER
        self.formatter: ChatFormatter | None = None
        self.info: ModelInfo | None = None

    def close(self) -> None:
        self.http.close()

    # -- connecting ------------------------------------------------------------------------------

    def connect(self) -> Iterator[EngineEvent]:
        """List the server's models, pick ours, learn its template; ends with ModelInfo. Raises EngineError."""
        yield LoadProgress(f"Connecting to {self.spec.base_url}", 0.0)
        listing = self.http.get_json("models")
        models = [m for m in (listing or {}).get("data", []) if isinstance(m, dict) and m.get("id")]
        if not models:
            raise ServerFailed(f"The server at {self.spec.base_url} lists no models.",
                               "Check that the server has finished loading its model.")
        entry = self._pick(models)
        self.traits = KNOWN_SERVERS.get(str(entry.get("owned_by", "")), OTHER_SERVER)
        self.formatter = self._template(str(entry["id"]))
        context = int(entry.get("max_model_len") or 0)
        self.info = ModelInfo(
            path=self.spec.base_url, name=str(entry["id"]), backend="remote", architecture=self.traits.label,
            quantization="", size_bytes=0, context_length=context, n_ctx=context, n_gpu_layers=0,
            is_demo=False, has_thinking=self.formatter is not None and self.formatter.supports_thinking,
        )
        yield LoadProgress("Ready", 1.0)
        yield self.info

    def _pick(self, models: list[dict[str, Any]]) -> dict[str, Any]:
        names = [str(m["id"]) for m in models]
        if not self.spec.model and len(models) == 1:
            return models[0]
        if not self.spec.model:
            raise ServerModelMissing(f"The server serves several models: {', '.join(names)}.",
                                     "Choose one (--model NAME, or pick it in the Connect dialog).")
        for m in models:
            if m["id"] == self.spec.model:
                return m
        raise ServerModelMissing(f"The server has no model {self.spec.model!r}; it serves: {', '.join(names)}.",
                                 "Choose one of those.")

    def _template(self, model: str) -> ChatFormatter | None:
        """The model's chat template: the server's own (llama.cpp's /props), else ours for Nemotron models."""
        props = self.http.try_get_json(self.http.origin + "/props")
        source = props.get("chat_template") if isinstance(props, dict) else None
        if not source and "nemotron" in model.lower():
            source = bundled_template()
        return ChatFormatter(source, ()) if source else None

    # -- generating ------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, cancel: CancelFlag,
                 answer_now: CancelFlag | None = None) -> Iterator[GenerationEvent]:
        """Stream one answer; raises EngineError (EngineSession turns it into an Error event)."""
        assert self.info is not None
        if request.prompt is not None:
            plan = _Plan(self, request, cancel, prompt=request.prompt, raw=True)
        else:
            plan = _Plan(self, request, cancel)
        yield from plan.run(cancel, answer_now)


class _StopForAnswer:
    """The flag a streamed request is read under: cancel, or answer now while in the reasoning."""

    def __init__(self, cancel: CancelFlag, answer_now: CancelFlag | None, stream: AnswerStream) -> None:
        self.cancel, self.answer_now, self.stream = cancel, answer_now, stream
        self.used = False

    def wanted(self) -> bool:
        """Answer now asked, and the reasoning still running."""
        return (not self.used and self.answer_now is not None and self.answer_now.is_set()
                and self.stream.in_reasoning)

    def is_set(self) -> bool:
        return self.cancel.is_set() or self.wanted()


class _Plan:
    """How one request is answered: which endpoint, which budget method, and the steps to run."""

    def __init__(self, engine: RemoteEngine, request: GenerationRequest, cancel: CancelFlag, *,
                 prompt: str | None = None, raw: bool = False) -> None:
        self.engine, self.request, self.raw = engine, request, raw
        formatter = engine.formatter
        self.thinking = request.thinking and engine.info is not None and engine.info.has_thinking
        if prompt is None and formatter is not None:
            prompt = formatter.render(request.messages, thinking=self.thinking, tools=request.tools,
                                      add_generation_prompt=request.opens_new_turn,
                                      continue_final_message=request.continue_final_message,
                                      template_kwargs=request.chat_template_kwargs, cancel=cancel)
        self.prompt = prompt  # None: the server renders (chat endpoint) and we cannot continue a text
        self.use_completions = raw or (not engine.traits.template_kwargs and prompt is not None)
        starts_in_reasoning = prompt_opens_reasoning(prompt) if prompt is not None else False
        budget = request.reasoning_budget if starts_in_reasoning and not raw else None
        server_budget = engine.traits.budget_field is not None and engine.spec.budget_on_server is not False
        self.server_budget = budget if budget is not None and server_budget and not self.use_completions else None
        self.client_budget = budget if budget is not None and self.server_budget is None else None
        self.max_tokens = request.sampling.max_tokens
        self.stream = AnswerStream(starts_in_reasoning=starts_in_reasoning, raw=raw, tools=request.tools,
                                   budget=budget, thinking=request.thinking or raw)

    def run(self, cancel: CancelFlag, answer_now: CancelFlag | None = None) -> Iterator[GenerationEvent]:
        stream = self.stream
        # Answer now needs the rendered prompt to continue the text after the closing.
        flag = _StopForAnswer(cancel, answer_now if self.prompt is not None else None, stream)
        if self.client_budget is not None and self.prompt is not None:
            reason = yield from self._budget_steps(flag)
        else:
            reason = yield from self._step(flag, self.max_tokens, first=True)
        if flag.wanted() and not cancel.is_set():
            reason = yield from self._answer_now(flag)
        if cancel.is_set():
            reason = FinishReason.CANCELLED
        yield from stream.finish()
        yield stream.usage()
        yield Finished(stream.final_reason(reason))

    def _answer_now(self, flag: _StopForAnswer) -> Generator[GenerationEvent, None, FinishReason]:
        """The stream was stopped for answer now: close the reasoning as the budget does, then answer."""
        flag.used = True
        stream = self.stream
        yield from stream.force_close(CLOSE_AT_NEWLINE if stream.text_so_far.endswith("\n") else CLOSE_CUT,
                                      cause=ReasoningEndCause.USER)
        left = self.max_tokens - stream.generated
        if left <= 0:
            return FinishReason.LENGTH
        result: FinishReason = yield from self._step(flag.cancel, left, stop=list(self.request.sampling.stop))
        return result

    def _budget_steps(self, cancel: _StopForAnswer) -> Generator[GenerationEvent, None, FinishReason]:
        """The model card's method over the API: reasoning up to the budget, then to a newline, then the answer."""
        stream, budget = self.stream, self.client_budget
        assert budget is not None
        # As locally, the reasoning leaves room for an answer (when asked): a quarter of max_tokens, up to 512.
        reserve = answer_reserve(self.max_tokens) if self.request.keep_answer_room else 0
        allowance = max(0, self.max_tokens - reserve - len(CLOSE_CUT))
        if budget == 0 or allowance == 0:
            yield from stream.force_close(CLOSE_AT_NEWLINE)
        else:
            reason = yield from self._step(cancel, min(budget, allowance), first=True)
            if reason is not FinishReason.LENGTH or cancel.is_set():
                return reason  # cancelled, or stopped for answer now (run() goes on from there)
            if stream.in_reasoning and stream.generated < allowance:
                grace = min(BUDGET_GRACE_TOKENS, allowance - stream.generated)
                reason = yield from self._step(cancel, grace, stop=["\n"])
                if cancel.is_set():
                    return FinishReason.CANCELLED if cancel.cancel.is_set() else reason
            else:
                reason = FinishReason.LENGTH
            if stream.in_reasoning:
                # Stopped by the newline (which the server leaves out): close as at a newline; else cut.
                yield from stream.force_close("\n" + CLOSE_AT_NEWLINE if reason is FinishReason.STOP else CLOSE_CUT)
        left = self.max_tokens - stream.generated
        if left <= 0:
            return FinishReason.LENGTH
        result: FinishReason = yield from self._step(cancel, left, stop=list(self.request.sampling.stop))
        return result

    def _step(self, cancel: CancelFlag, max_tokens: int, *, first: bool = False,
              stop: list[str] | None = None) -> Generator[GenerationEvent, None, FinishReason]:
        """One streamed request; the first may use the chat endpoint, later ones continue the text."""
        engine, sampling = self.engine, self.request.sampling
        body: dict[str, Any] = {"model": engine.info.name if engine.info else "", "stream": True,
                                "max_tokens": max_tokens, "temperature": sampling.temperature,
                                "top_p": sampling.top_p, "stream_options": {"include_usage": True}}
        if sampling.top_k:
            body["top_k"] = sampling.top_k
        if sampling.min_p:
            body["min_p"] = sampling.min_p
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        stops = list(sampling.stop) if stop is None else stop
        if stops:
            body["stop"] = stops
        if self.request.keep_answer_room and engine.traits.answer_room_field:  # as locally (the GUI's default)
            body[engine.traits.answer_room_field] = True
        if first and not self.use_completions:
            path = "chat/completions"
            body["messages"] = [_wire_message(m.to_template()) for m in self.request.messages]
            body["chat_template_kwargs"] = {**self.request.chat_template_kwargs,  # the server's template
                                            "enable_thinking": self.request.thinking}
            if self.request.continue_final_message:
                body["continue_final_message"], body["add_generation_prompt"] = True, False
            if self.request.tools:
                body["tools"] = list(self.request.tools)
            if self.server_budget is not None and engine.traits.budget_field:
                body[engine.traits.budget_field] = self.server_budget
        else:
            path = "completions"
            assert self.prompt is not None
            body["prompt"] = self.prompt + self.stream.text_so_far
        reason = FinishReason.LENGTH
        for chunk in engine.http.stream(path, body, cancel, what=f"model {body['model']!r}"):
            yield from self.stream.absorb_chunk(chunk)
            choices = chunk.get("choices") or []
            if choices and choices[0].get("finish_reason"):
                reason = _finish_reason(choices[0]["finish_reason"])
        return reason


def _wire_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the OpenAI API carries it: tool-call arguments as a JSON string."""
    out = dict(message)
    calls = out.get("tool_calls")
    if calls:
        out["tool_calls"] = [{**c, "function": {"name": c["function"]["name"],
                                               "arguments": json.dumps(c["function"]["arguments"])}}
                             for c in calls]
    return out

