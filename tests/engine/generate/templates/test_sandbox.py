"""Hostile chat templates: every one ends with an Error a person can act on, quickly and without
taking much memory; a cancelled generation stops its render; real templates render unchanged.

Memory is measured with tracemalloc (Python's own allocations: every string and list a template
makes). Deadlines are small in the tests that need one, so that they end soon on any machine; they
assert what happened, never how long it took.
"""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ChatTemplateError, InvalidRequest, ModelLoadError
from engine.generate.templates.limits import RenderCancelled, RenderLimits
from engine.generate.templates.sandbox import MAX_TEMPLATE_CHARS, ChatTemplate

QUICK = RenderLimits(seconds=1.0)
#: For the size checks: a deadline no working check comes near, so that the size is what stops them.
PATIENT = RenderLimits(seconds=300.0)
MB = 2**20
ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"

HOSTILE: dict[str, tuple[str, str]] = {
    # name: (template, what the error says)
    "nested loops that output nothing": (ENDLESS, "took too long to render (over 1 s)"),
    "lipsum of a million paragraphs": ("{{ lipsum(n=10**6) }}", "lipsum() for over 100,000 words"),
    "a gigabyte string by *": ("{{ 'A' * 10**9 }}", "a repeated string of over"),
    "a gigabyte string, never printed": ("{% set x = 'A' * 10**9 %}ok", "a repeated string of over"),
    "a gigabyte list by *": ("{{ ([1] * 10**9) | length }}", "a repeated list of over"),
    "endless output": ("{% for i in range(100000) %}{% for j in range(100000) %}0123456789{% endfor %}{% endfor %}",
                       "wrote over 8,388,608 characters"),
    "a list shared with itself 60 times": (
        "{% set ns = namespace(x=[1]) %}{% for i in range(60) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}"
        "{{ ns.x == ns.x }}", "a list of over"),
    "a string doubled 60 times": (
        "{% set ns = namespace(x='ab') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}", "of over"),
    "a number squared 40 times": (
        "{% set ns = namespace(x=10) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
        "a number too large to print"),
    "a huge power": ("{{ 7 ** 10000000 }}", "a number too large to print"),
    "center filter": ("{{ 'A' | center(1000000000) }}", "a padded string of over"),
    "str.center": ("{{ 'A'.center(10**9) }}", "a padded string of over"),
    "printf width": ("{{ '%1000000000s' % 'a' }}", "a formatted string of over"),
    "printf star width": ("{{ '%*s' % (1000000000, 'a') }}", "a formatted string of over"),
    "str.format width": ("{{ '{:>1000000000}'.format('a') }}", "a formatted string of over"),
    "str.format repeating one argument": ("{{ ('{0}' * 1000).format('x' * 1000000) }}", "a formatted string of over"),
    "format filter": ("{{ '%1000000000d' | format(1) }}", "a formatted string of over"),
    "join with a long separator": ("{{ range(100000) | join('x' * 100000) }}", "a joined string of over"),
    "str.join with a long separator": ("{{ ('x' * 100000).join(range(1000) | map('string')) }}",
                                       "a joined string of over"),
    "replace every character": ("{{ ('a' * 100000) | replace('a', 'x' * 10000) }}", "a string of over"),
    "expandtabs": ("{{ ('\\t' * 1000000).expandtabs(1000) }}", "a string of over"),
    "indent": ("{{ ('a\\n' * 1000000) | indent(1000) }}", "an indented string of over"),
    "to_bytes": ("{{ (1).to_bytes(1000000000, 'big') }}", "a byte string of over"),
    "batch fill": ("{{ [1] | batch(1000000000, 0) | list }}", "a list of over"),
    "tojson with a wide indent": ("{{ ([[1] * 1000] * 1000) | tojson(indent=100) }}", "a JSON text of over"),
    "a map that makes big strings": ("{{ range(100000) | map('center', 8000000) | list }}", "a sequence of over"),
    "dict.fromkeys of a big value": ("{{ {}.fromkeys(range(100000), 'x' * 1000000) | string }}", "a dict of over"),
    "sum of many lists": ("{{ ([[1]] * 100000) | sum(start=[]) }}", "sum() over 100,000 lists"),
    "a namespace in a list": ("{% set ns = namespace(a=1) %}{{ [ns, ns] }}", "namespace() inside a list"),
    "endless recursion": ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recursed too deeply"),
    "a Python error": ("{{ 1 / 0 }}", "failed on this conversation: ZeroDivisionError"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_template_is_stopped_with_a_clear_error(name: str) -> None:
    source, says = HOSTILE[name]
    tracemalloc.start()
    try:
        template = ChatTemplate(source)  # compiling evaluates nothing
        with pytest.raises(ChatTemplateError) as caught:
            template.render({}, limits=QUICK if template.source is ENDLESS else PATIENT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert says in caught.value.message, caught.value.message
    assert "standard template" in caught.value.action
    assert peak < 200 * MB, f"{name}: {peak / MB:.0f} MB"


def test_compiling_folds_nothing() -> None:
    """`'A' * 10**9` used to become a 1 GB constant while the template compiled, at model load."""
    tracemalloc.start()
    try:
        ChatTemplate("{{ 'A' * 10**9 }}{{ 'B' | center(10**9) }}{{ '%1000000000s' | format('C') }}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * MB


def test_memory_growth_is_bounded() -> None:
    """Many values, each under the size limit, are stopped by the memory allowance (Linux measures it)."""
    if not Path("/proc/self/statm").exists():
        pytest.skip("the memory allowance is measured where the system reports it cheaply (Linux)")
    source = "".join(f"{{% set x{i} = 'x' * 8000000 %}}" for i in range(200))
    with pytest.raises(ChatTemplateError, match=r"used more than 0\.25 GiB of memory"):
        ChatTemplate(source).render({}, limits=RenderLimits(seconds=300.0, memory_bytes=256 * MB))


@pytest.mark.parametrize("source", [
    "{% for %}",  # a syntax error
    "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",  # nesting too deep for the parser
    "".join(f"{{% for i{n} in range(2) %}}" for n in range(30)) + "x" + "{% endfor %}" * 30,  # too deep for Python
    "{{ 'a' | no_such_filter }}",
])
def test_a_template_that_does_not_compile_says_so(source: str) -> None:
    with pytest.raises(ModelLoadError, match="The model's chat template does not parse"):
        ChatTemplate(source)


def test_an_absurdly_long_template_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="characters long"):
        ChatTemplate("x" * (MAX_TEMPLATE_CHARS + 1))


def test_the_template_refusing_the_conversation_is_a_request_error() -> None:
    with pytest.raises(InvalidRequest, match="refused this conversation: roles must alternate"):
        ChatTemplate("{{ raise_exception('roles must alternate') }}").render({})


class FlagWatched:
    """A cancel flag that says when the render first looks at it, and is set by the test."""

    def __init__(self) -> None:
        self.looked = threading.Event()
        self.cancelled = threading.Event()

    def is_set(self) -> bool:
        self.looked.set()
        return self.cancelled.is_set()


def test_cancel_stops_a_render_that_would_run_for_minutes() -> None:
    flag = FlagWatched()
    outcome: list[BaseException] = []

    def render() -> None:
        try:
            ChatTemplate(ENDLESS).render({}, limits=RenderLimits(seconds=600), cancel=flag)
        except BaseException as exc:  # the test reads it
            outcome.append(exc)

    worker = threading.Thread(target=render, daemon=True)
    worker.start()
    assert flag.looked.wait(60), "the render never looked at the cancel flag"
    flag.cancelled.set()
    worker.join(60)
    assert not worker.is_alive(), "the render went on after the cancel"
    assert len(outcome) == 1 and isinstance(outcome[0], RenderCancelled), outcome


def test_the_budget_is_per_render() -> None:
    """Output counts do not carry over from one render to the next (a formatter renders many times)."""
    template = ChatTemplate("{{ 'x' * 5000000 }}")
    for _ in range(3):
        assert len(template.render({})) == 5_000_000


REAL_TEMPLATE_FEATURES: dict[str, tuple[str, dict[str, Any], str]] = {
    "loops, loop.last, namespace": (
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{{ m.role }}"
        "{% if not loop.last %},{% endif %}{% endfor %}={{ ns.n }}",
        {"messages": [{"role": "user"}, {"role": "assistant"}]}, "user,assistant=2"),
    "tojson with indent and sort_keys": ("{{ tools | tojson(indent=2, sort_keys=True) }}",
                                         {"tools": [{"b": 1, "a": [1, 2]}]},
                                         '[\n  {\n    "a": [\n      1,\n      2\n    ],\n    "b": 1\n  }\n]'),
    "items, selectattr, map, join": (
        "{{ d | items | map('first') | join(',') }};{{ ms | selectattr('x') | map(attribute='x') | list }}",
        {"d": {"k": 1, "j": 2}, "ms": [{"x": 1}, {"x": 0}, {"x": 3}]}, "k,j;[1, 3]"),
    "dict literals, .items(), string formatting": (
        "{% set d = {'a': 1} %}{% for k, v in d.items() %}{{ '%s=%d' % (k, v) }}{{ '{}!'.format(k) }}{% endfor %}",
        {}, "a=1a!"),
    "recursive loop": ("{% for x in t recursive %}{{ x.n }}{% if x.c %}({{ loop(x.c) }}){% endif %}{% endfor %}",
                       {"t": [{"n": 1, "c": [{"n": 2, "c": []}]}, {"n": 3, "c": []}]}, "1(2)3"),
    "macro with caller": ("{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}in{% endcall %}", {}, "[in]"),
}


@pytest.mark.parametrize("name", list(REAL_TEMPLATE_FEATURES))
def test_what_real_templates_use_still_works(name: str) -> None:
    source, variables, expected = REAL_TEMPLATE_FEATURES[name]
    assert ChatTemplate(source).render(variables) == expected
