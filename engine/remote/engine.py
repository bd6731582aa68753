"""RemoteEngine: the "remote" backend kind, a model served by vLLM, SGLang, NIM, llama.cpp or our own server.

It speaks the OpenAI-compatible API and yields the same events as the local backends, so the front
ends need no special case:

- The server's text goes through engine.generate's EventBuilder, the one the local loop uses:
  reasoning the server split off (`reasoning_content` or `reasoning`) is put back between think
  markers first (stream.py), so phases, whitespace, stop strings, tool calls and ReasoningEnded
  behave exactly as locally.
- Thinking off is `chat_template_kwargs: {"enable_thinking": false}`. A server known to ignore that
  field (llama-cpp-python's) is driven through /v1/completions with the prompt rendered here from the
  model's template, so the switch still works.
- Budget: a server known to take a budget field gets it. Otherwise the model card's method over the
  API (see `_client_rule`), decided by the same BudgetController as locally: the reasoning is
  requested up to the budget, then through the grace, the controller judges each streamed piece
  (the next newline, else the cut with ".\\n</think>\\n\\n"), and where it closes, the closing is
  written into the text and the answer is continued through /v1/completions on the rendered prompt.
  That needs the model's template: the server's own (llama.cpp's /props) or the Nemotron template
  bundled with the engine.

"Answer now" (a flag set from outside) stops the server's stream while it is in the reasoning and
continues as the two-step budget does: the closing text appended to the rendered prompt, the answer
from /v1/completions. It needs the rendered prompt (the model's template, as above); without one
the flag is left unread and the reasoning runs its course.

Token counts are the server's where it reports them; reasoning tokens are counted as streamed pieces
(one token each on every server we know), which is what the budget is measured in; a request that
ended for length counts its max_tokens. Known gap: with no tokenizer here, the closing the engine
writes itself counts 0 tokens (locally its 3-5 tokens count inside max_tokens), so an answer after
it may run those few tokens longer than it would locally; the answer-room guard allows for the
closing by its length in characters.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from engine.api import (
    EngineEvent,
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    LoadProgress,
    ModelInfo,
    RemoteSpec,
)
from engine.generate.chat_format import ChatFormatter
from engine.generate.steering import Steering
from engine.generate.text.budget import CLOSE_CUT, BudgetController
from engine.generate.text.events import EventBuilder
from engine.generate.text.reasoning import THINK_CLOSE, prompt_opens_reasoning
from engine.remote.http import CancelFlag, RemoteHttp, ServerFailed, ServerModelMissing
from engine.remote.stream import ServerStream

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
    """The flag a streamed request is read under: cancel, or answer now (or the loop detector's end)
    while the reasoning runs."""

    def __init__(self, cancel: CancelFlag, builder: EventBuilder) -> None:
        self.cancel, self.builder = cancel, builder

    def wanted(self) -> bool:
        return self.builder.in_reasoning and self.builder.steering.wanted() is not None

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
        budget = request.reasoning_budget if starts_in_reasoning else None  # as locally, raw prompts too
        server_budget = engine.traits.budget_field is not None and engine.spec.budget_on_server is not False
        self.server_budget = budget if budget is not None and server_budget and not self.use_completions else None
        self.client_budget = budget if budget is not None and self.server_budget is None else None
        self.max_tokens = request.sampling.max_tokens
        # The one budget rule; without a tokenizer the closing's length is counted in characters, an
        # upper bound on its tokens. The answer-room guard applies here only with a budget (as before);
        # without one it is the server's where it takes the field.
        self.server_guard = request.keep_answer_room and engine.traits.answer_room_field is not None \
            and self.client_budget is None
        rule = BudgetController(budget, self.max_tokens, closing_length=len(CLOSE_CUT),
                                answer_room=request.keep_answer_room and (self.client_budget is not None
                                                                          or self.server_guard),
                                applied_by_server=self.server_budget is not None or self.server_guard)
        builder = EventBuilder(rule, starts_in_reasoning=starts_in_reasoning, stops=request.sampling.stop,
                               tools=request.tools, raw=raw)
        self.stream = ServerStream(builder, thinking=request.thinking or raw)

    def run(self, cancel: CancelFlag, answer_now: CancelFlag | None = None) -> Iterator[GenerationEvent]:
        stream = self.stream
        # Answer now needs the rendered prompt to continue the text after the closing.
        # (so without one, a loop detector set to end only warns).
        mode = self.request.loop_detection
        if mode == "end" and self.prompt is None:
            mode = "warn"
        stream.builder.steering = Steering(answer_now if self.prompt is not None else None, mode)
        flag = _StopForAnswer(cancel, stream.builder)
        if self.server_budget == 0 and stream.builder.in_reasoning:
            # The server closes the reasoning before the first token (the rule's decision, wherever
            # it is applied) and streams only the answer; a closing it streams as text is dropped.
            yield from stream.builder.insert(THINK_CLOSE, 0)
        if self.client_budget is not None and self.prompt is not None:
            reason = yield from self._client_rule(flag)
        else:
            reason, _ = yield from self._step(flag, self.max_tokens, first=True)
        if flag.wanted() and not cancel.is_set():
            reason = yield from self._answer_now(flag)
        if cancel.is_set():
            reason = FinishReason.CANCELLED
        yield from stream.finish()
        yield stream.usage()
        yield Finished(stream.builder.final_reason(reason, stream.server_calls))

    def _answer_now(self, flag: _StopForAnswer) -> Generator[GenerationEvent, None, FinishReason]:
        """The stream was left for answer now (or the loop detector's end): the closing written into
        the text as the budget's is, then the answer continued through /v1/completions."""
        builder = self.stream.builder
        wanted = builder.steer()
        if wanted is None:
            return FinishReason.LENGTH
        closing, cause = wanted
        yield from builder.insert(closing, 0, cause=cause)  # no tokenizer here: counted as 0 tokens
        if builder.stopped:
            return FinishReason.STOP
        left = self.max_tokens - self.stream.generated
        if left <= 0:
            return FinishReason.LENGTH
        reason, _ = yield from self._step(flag.cancel, left)
        return reason

    def _client_rule(self, cancel: CancelFlag) -> Generator[GenerationEvent, None, FinishReason]:
        """The budget rule applied here, for a server that cannot apply it: the model card's method.

        The reasoning is requested up to where the BudgetController may act (the budget, then the
        grace), the controller judges every streamed piece as the local loop does, and where it
        closes, the stream is left, the closing is written into the text, and the text is continued
        through /v1/completions on the rendered prompt.
        """
        builder = self.stream.builder
        opening = builder.opening_closing()
        if opening is not None:
            yield from builder.insert(opening, 0)
        first = not builder.written  # after a closing, the text is continued, never asked again
        while True:
            left = self.max_tokens - self.stream.generated
            if left <= 0:
                return FinishReason.LENGTH
            limit = builder.budget.tokens_before_decision(builder.reasoning_tokens, left) \
                if builder.in_reasoning and not builder.budget.closed_by_budget else left
            before = self.stream.generated
            reason, closing = yield from self._step(cancel, min(limit, left), first=first,
                                                    judge=builder.in_reasoning)
            first = False
            if closing is not None:
                yield from builder.insert(closing, 0)  # no tokenizer here: counted as 0 tokens
                if builder.stopped:  # a stop string in the closing
                    return FinishReason.STOP
                continue
            if cancel.is_set() or builder.stopped or reason is not FinishReason.LENGTH:
                return reason
            if limit >= left or self.stream.generated == before:
                return FinishReason.LENGTH  # max_tokens reached (or the server generated nothing more)

    def _step(self, cancel: CancelFlag, max_tokens: int, *, first: bool = False,
              judge: bool = False) -> Generator[GenerationEvent, None, tuple[FinishReason, str | None]]:
        """One streamed request; the first may use the chat endpoint, later ones continue the text.

        Ends early at a stop string the EventBuilder found, and (`judge`) where the budget rule asks
        to close the reasoning: then the closing text is returned and the caller continues.
        """
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
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if self.server_guard and engine.traits.answer_room_field:
            body[engine.traits.answer_room_field] = True  # as locally (the GUI's default), unless applied here
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
            body["prompt"] = self.prompt + self.stream.builder.written
        reason, said = FinishReason.LENGTH, False
        builder = self.stream.builder
        counted = builder.generated
        chunks = engine.http.stream(path, body, cancel, what=f"model {body['model']!r}")
        try:
            for chunk in chunks:
                yield from self.stream.absorb_chunk(chunk)
                if builder.stopped:
                    return FinishReason.STOP, None
                if judge:
                    closing = builder.closing(self.max_tokens - self.stream.generated)
                    if closing is not None:
                        return reason, closing
                choices = chunk.get("choices") or []
                if choices and choices[0].get("finish_reason"):
                    reason, said = _finish_reason(choices[0]["finish_reason"]), True
        finally:
            chunks.close()  # leaving early closes the connection: the server stops generating
        if said and reason is FinishReason.LENGTH and not cancel.is_set():
            # It generated all max_tokens; some pieces held several tokens, or none (text held back
            # until it is valid UTF-8): count the rest where the text was.
            yield from builder.feed("", max(0, max_tokens - (builder.generated - counted)))
        return reason, None


def _wire_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the OpenAI API carries it: tool-call arguments as a JSON string."""
    out = dict(message)
    calls = out.get("tool_calls")
    if calls:
        out["tool_calls"] = [{**c, "function": {"name": c["function"]["name"],
                                               "arguments": json.dumps(c["function"]["arguments"])}}
                             for c in calls]
    return out

