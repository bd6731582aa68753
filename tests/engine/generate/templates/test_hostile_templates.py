"""A model file with a hostile chat template, loaded on real llama.cpp: loading costs nothing extra, a
cancelled generation stops its render, a slow one meets the deadline, a broken one is named.

The files are the tiny Nemotron GGUF with only its template replaced (tests/fixtures/bad_gguf.py).
"""

from __future__ import annotations

import multiprocessing
import threading
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
from gguf import GGUFValueType

from engine.api import (
    Error,
    Finished,
    FinishReason,
    GenerationRequest,
    LlamaLoadOptions,
    LoadSpec,
    Message,
    ModelInfo,
    SamplingParams,
    Usage,
)
from engine.worker.session import EngineSession
from tests.fixtures.bad_gguf import write_variant

ENDLESS = ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
           "{% for m in messages %}{{ m.content }}{% endfor %}")
REQUEST = GenerationRequest((Message("user", "Hi"),), sampling=SamplingParams(max_tokens=4, seed=1))
MB = 2**20


def with_template(tmp_path: Path, template: str) -> Path:
    return write_variant(tmp_path / "hostile.gguf", {"tokenizer.chat_template": (template, GGUFValueType.STRING)})


def loaded(path: Path) -> EngineSession:
    session = EngineSession()
    events = list(session.load(LoadSpec(str(path), LlamaLoadOptions(n_ctx=256, n_threads=1, n_gpu_layers=0))))
    assert isinstance(events[-1], ModelInfo), events
    return session


def test_a_gigabyte_constant_costs_nothing_at_load(tmp_path: Path) -> None:
    """llama-cpp-python compiled the file's template itself, folding `'A' * 10**9` into 1 GB at load."""
    path = with_template(tmp_path, "{{ 'A' * 10**9 }}")
    tracemalloc.start()
    try:
        session = loaded(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * MB, f"{peak / MB:.0f} MB while loading"
    errors = [e for e in session.generate(REQUEST) if isinstance(e, Error)]
    assert len(errors) == 1 and errors[0].kind == "bad_model"
    assert "a repeated string of over" in errors[0].message and "standard template" in errors[0].action
    session.unload()


class WatchedFlag:
    """The worker's own kind of cancel flag (a multiprocessing Event), and a signal when it is first read."""

    def __init__(self) -> None:
        self.event = multiprocessing.get_context("spawn").Event()
        self.looked = threading.Event()

    def is_set(self) -> bool:
        self.looked.set()
        return bool(self.event.is_set())


def test_cancel_stops_an_endless_render(tmp_path: Path) -> None:
    session = loaded(with_template(tmp_path, ENDLESS))
    flag = WatchedFlag()
    events: list[object] = []
    worker = threading.Thread(target=lambda: events.extend(session.generate(REQUEST, flag)), daemon=True)
    worker.start()
    assert flag.looked.wait(60), "the render never looked at the cancel flag"
    flag.event.set()
    worker.join(60)
    assert not worker.is_alive(), "the render went on after the cancel"
    assert [type(e) for e in events] == [Usage, Finished]
    assert isinstance(events[-1], Finished) and events[-1].reason is FinishReason.CANCELLED
    session.unload()


def test_an_endless_render_meets_the_deadline(tmp_path: Path) -> None:
    session = loaded(with_template(tmp_path, ENDLESS))
    assert session.formatter is not None
    session.formatter.limits = replace(session.formatter.limits, seconds=1.0)
    errors = [e for e in session.generate(REQUEST) if isinstance(e, Error)]
    assert len(errors) == 1 and errors[0].kind == "bad_model"
    assert "took too long to render" in errors[0].message
    assert "use a model file with a standard template" in errors[0].action
    session.unload()


@pytest.mark.parametrize(("template", "says"), [
    ("{{ messages[0].content / 2 }}", "failed on this conversation: TypeError"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursed too deeply"),
])
def test_a_template_bug_is_named_as_the_model_files(tmp_path: Path, template: str, says: str) -> None:
    session = loaded(with_template(tmp_path, template))
    errors = [e for e in session.generate(REQUEST) if isinstance(e, Error)]
    assert len(errors) == 1 and says in errors[0].message and errors[0].kind == "bad_model", errors
    assert "Internal engine error" not in errors[0].message
    session.unload()
