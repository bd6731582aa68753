"""Benchmark: what the bounded template sandbox costs on the real Nemotron template. Prints figures,
asserts nothing.

Renders conversations of 1, 20 and 200 turns (with tools, tool calls and reasoning) through
ChatFormatter (engine/generate/templates/sandbox.py: budget, size checks, cancel polling) and, for reference,
through a plain ImmutableSandboxedEnvironment set up as transformers sets it up (what rendered before
the bounds), interleaved, the best of many runs each. Also checks the two give the same text.

    python -m tests.engine.generate.templates.bench_template
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.api import Message, ToolCall
from engine.generate.chat_format import ChatFormatter
from tests.engine.generate.test_chat_format import SPECIALS, TEMPLATE, WEATHER_TOOL


def conversation(turns: int) -> list[Message]:
    out = [Message("system", "Be helpful.")]
    for i in range(turns):
        out.append(Message("user", f"Question {i}: " + "lorem ipsum " * 40))
        calls = (ToolCall("get_weather", {"city": "Paris", "unit": "c"}),) if i % 3 == 0 else ()
        out.append(Message("assistant", "Answer " * 60, reasoning="Thinking " * 30, tool_calls=calls))
        if calls:
            out.append(Message("tool", '{"temp": 21}'))
    out.append(Message("user", "Last?"))
    return out


def plain_renderer() -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda v, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        v, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    return env.from_string(TEMPLATE)


def best_ms(render: Any, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        render()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    formatter = ChatFormatter(TEMPLATE, SPECIALS)
    plain = plain_renderer()
    print(f"{'conversation':<14} {'prompt':>9}  {'plain sandbox':>13}  {'bounded':>8}")
    for turns in (1, 20, 200):
        messages = conversation(turns)
        tools = (WEATHER_TOOL,)
        variables = {"messages": [m.to_template() for m in messages], "tools": [dict(WEATHER_TOOL)],
                     "documents": None, "add_generation_prompt": True, "enable_thinking": True,
                     "truncate_history_thinking": True, "bos_token": "", "eos_token": ""}
        text = formatter.render(messages, tools=tools)
        assert text == plain.render(variables)
        runs = 200 if turns < 100 else 30
        plain_ms = bounded_ms = float("inf")
        render_plain = functools.partial(plain.render, variables)
        render_bounded = functools.partial(formatter.render, messages, tools=tools)
        for _ in range(3):  # interleaved, so that a busy machine slows both alike
            plain_ms = min(plain_ms, best_ms(render_plain, runs // 3))
            bounded_ms = min(bounded_ms, best_ms(render_bounded, runs // 3))
        print(f"{turns:>3} turns      {len(text):>8,}c  {plain_ms:>10.3f} ms  {bounded_ms:>5.3f} ms")


if __name__ == "__main__":
    main()
