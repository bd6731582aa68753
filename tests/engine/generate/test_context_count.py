"""The context count (EngineSession.count, EngineClient.count_tokens) on the tiny Nemotron, on both
backends, against transformers' apply_chat_template with the official template and the model's
tokenizer: the total is the prompt's length as the request renders it, the old reasoning is what
truncate_history_thinking drops, the current turn is the last question with the generation prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.api import ContextCount, Error, GenerationRequest, LlamaLoadOptions, LoadSpec, Message, ModelInfo
from engine.client import EngineClient
from engine.worker.session import EngineSession
from tests.conftest import THREADS, load_session

CONVERSATION = (
    Message("system", "You are terse."),
    Message("user", "What is 12 times 7?"),
    Message("assistant", "84.", reasoning="Twelve sevens: 70 and 14, so 84. Check: 7 times 12 is 84 too."),
    Message("user", "And divided by 4?"),
    Message("assistant", "21.", reasoning="84 over 4: 80 over 4 is 20, 4 over 4 is 1, so 21."),
    Message("user", "Now write it as a fraction, please."),
)


@pytest.fixture(scope="module", params=["llama.cpp", "torch"])
def session(request: pytest.FixtureRequest, tiny_nemotron) -> Iterator[EngineSession]:  # type: ignore[no-untyped-def]
    path = tiny_nemotron.gguf_path if request.param == "llama.cpp" else tiny_nemotron.hf_dir
    loaded = load_session(Path(path), n_ctx=1024)
    assert loaded.info is not None and loaded.info.backend == request.param
    yield loaded
    loaded.unload()


@pytest.fixture(scope="module")
def reference(tiny_nemotron) -> Any:  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_nemotron.hf_dir))

    def ids(messages: tuple[Message, ...], *, generation_prompt: bool = True, **kwargs: Any) -> list[int]:
        result = tokenizer.apply_chat_template([m.to_template() for m in messages], tokenize=True,
                                               add_generation_prompt=generation_prompt, **kwargs)
        return list(result["input_ids"])

    return ids


def test_the_split_matches_the_reference_renders(session: EngineSession, reference: Any) -> None:
    count = session.count(GenerationRequest(CONVERSATION))
    assert isinstance(count, ContextCount) and count.known and count.can_drop_reasoning
    kept = reference(CONVERSATION, truncate_history_thinking=False)
    dropped = reference(CONVERSATION)  # the template's default drops old reasoning
    before = reference(CONVERSATION[:-1], generation_prompt=False, truncate_history_thinking=False)
    assert count.old_reasoning == len(kept) - len(dropped) > 20
    assert count.current_turn == len(kept) - len(before) > 5
    assert not count.reasoning_kept and count.total == len(dropped)
    assert count.history + count.current_turn == count.total
    assert count.n_ctx == 1024


def test_keeping_old_reasoning_counts_it_in_the_total(session: EngineSession, reference: Any) -> None:
    keep = session.count(GenerationRequest(CONVERSATION, chat_template_kwargs={"truncate_history_thinking": False}))
    drop = session.count(GenerationRequest(CONVERSATION, chat_template_kwargs={"truncate_history_thinking": True}))
    assert isinstance(keep, ContextCount) and isinstance(drop, ContextCount)
    assert keep.reasoning_kept and not drop.reasoning_kept
    assert keep.total == len(reference(CONVERSATION, truncate_history_thinking=False))
    assert keep.total - drop.total == keep.old_reasoning == drop.old_reasoning
    assert keep.history + keep.old_reasoning + keep.current_turn == keep.total


def test_thinking_off_and_a_first_question(session: EngineSession, reference: Any) -> None:
    first = (Message("user", "Hello there"),)
    count = session.count(GenerationRequest(first, thinking=False))
    assert isinstance(count, ContextCount)
    assert count.total == len(reference(first, enable_thinking=False))
    assert count.old_reasoning == 0 and count.history == 0  # nothing comes before the first turn


def test_a_conversation_ending_with_an_answer_counts_only_the_generation_prompt(session: EngineSession,
                                                                                reference: Any) -> None:
    convo = CONVERSATION[:-1]
    count = session.count(GenerationRequest(convo))
    assert isinstance(count, ContextCount)
    assert count.total == len(reference(convo))
    with_prompt = reference(convo, truncate_history_thinking=False)
    without = reference(convo, generation_prompt=False, truncate_history_thinking=False)
    assert count.current_turn == len(with_prompt) - len(without)


def test_a_template_without_the_switch_has_no_old_reasoning(demo_session: EngineSession) -> None:
    count = demo_session.count(GenerationRequest(CONVERSATION))
    assert isinstance(count, ContextCount)
    assert not count.can_drop_reasoning and count.old_reasoning == 0
    assert count.total == len(demo_session.formatter.prompt(  # type: ignore[union-attr]
        CONVERSATION, demo_session.tokenize).tokens) + (1 if demo_session.backend.add_bos else 0)  # type: ignore[union-attr]


def test_no_model_is_an_error() -> None:
    result = EngineSession().count(GenerationRequest(CONVERSATION))
    assert isinstance(result, Error) and result.kind == "no_model"


def test_the_client_asks_the_worker(tiny_nemotron, reference: Any) -> None:  # type: ignore[no-untyped-def]
    with EngineClient() as client:
        assert isinstance(client.count_tokens(GenerationRequest(CONVERSATION)), Error)  # nothing loaded yet
        spec = LoadSpec(str(tiny_nemotron.gguf_path), LlamaLoadOptions(n_ctx=2048, n_threads=THREADS, n_gpu_layers=0))
        info = [e for e in client.load(spec) if isinstance(e, ModelInfo)]
        assert info and "truncate_history_thinking" in info[0].template_variables
        count = client.count_tokens(GenerationRequest(CONVERSATION))
        assert isinstance(count, ContextCount) and count.n_ctx == 2048
        assert count.total == len(reference(CONVERSATION))
        events = list(client.generate(GenerationRequest(CONVERSATION[:2])))  # the pipe is still in step
        assert not [e for e in events if isinstance(e, Error)]
