"""The fidelity table (tests/fixtures/chat_cases.py) in token ids: each conversation rendered and
tokenized by the engine, as a loaded model does it (llama.cpp on the tiny Nemotron-H GGUF, torch on the
same model's Hugging Face folder), gives exactly the text and the ids transformers' apply_chat_template
gives with the official template and the model's tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.worker.session import EngineSession
from tests.conftest import load_session
from tests.fixtures.chat_cases import CASES


@pytest.fixture(scope="module", params=["llama.cpp", "torch"])
def session(request: pytest.FixtureRequest, tiny_nemotron) -> Iterator[EngineSession]:  # type: ignore[no-untyped-def]
    path = tiny_nemotron.gguf_path if request.param == "llama.cpp" else tiny_nemotron.hf_dir
    loaded = load_session(Path(path), n_ctx=1024)
    assert loaded.info is not None and loaded.info.backend == request.param
    yield loaded
    loaded.unload()


@pytest.fixture(scope="module")
def reference_tokenizer(tiny_nemotron) -> Any:  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(tiny_nemotron.hf_dir))


def test_the_table_covers_every_message_kind() -> None:
    assert len(CASES) >= 15
    kinds = {m.role for case in CASES.values() for m in case.messages}
    assert kinds == {"system", "user", "assistant", "tool"}
    assert any(m.reasoning for case in CASES.values() for m in case.messages)
    assert any("</think>" in m.content for case in CASES.values() for m in case.messages)
    assert any(c.continue_final_message for c in CASES.values()) and any(not c.thinking for c in CASES.values())


@pytest.mark.parametrize("name", list(CASES))
def test_engine_prompt_equals_transformers_in_text_and_ids(name: str, session: EngineSession,
                                                           reference_tokenizer: Any) -> None:
    case = CASES[name]
    assert session.formatter is not None
    prompt = session.formatter.prompt(case.messages, session.tokenize, **case.engine_options())
    assert prompt.text == case.reference(reference_tokenizer, tokenize=False)
    assert prompt.tokens == case.reference(reference_tokenizer, tokenize=True)
