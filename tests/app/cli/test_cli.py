"""The `nemotron-desk` command as a person runs it: a real process, the real demo model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests import REPO_ROOT

ROOT = REPO_ROOT
PARIS = "What is the capital of France? Answer in one word."


def cli() -> list[str]:
    exe = shutil.which("nemotron-desk", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "app.cli.main"]


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli(), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def test_chat_one_prompt_names_paris() -> None:
    result = run("chat", "-p", PARIS, "--no-think", "--temperature", "0", "--threads", "2")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "demo model" in result.stderr  # the model is labelled, on stderr, apart from the answer


def test_chat_json_events() -> None:
    result = run("chat", "-p", PARIS, "--no-think", "--temperature", "0", "--json", "--threads", "2")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "Finished" and events[-1]["reason"] == "stop"
    assert "ModelInfo" in kinds and "Usage" in kinds
    assert "Paris" in "".join(e["text"] for e in events if e["event"] == "ContentDelta")


def test_bad_flag_values_are_explained() -> None:
    result = run("chat", "-p", "hi", "--temperature", "-1")
    assert result.returncode == 2
    assert "temperature must be in" in result.stderr
    bad_model = run("chat", "-p", "hi", "--model", "/nonexistent/model.gguf")
    assert bad_model.returncode == 1
    assert "No model file" in bad_model.stderr and "Traceback" not in bad_model.stderr


def test_ctrl_c_cancels_the_answer_not_the_program() -> None:
    proc = subprocess.Popen([*cli(), "chat", "--threads", "2", "--max-tokens", "3000", "--temperature", "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("Write a very long essay about the history of bread.\n")
    proc.stdin.flush()
    proc.stdout.read(20)  # the answer is streaming
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None, "Ctrl-C during an answer must not end the program"
    proc.stdin.write("/exit\n")
    proc.stdin.flush()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "[stopped: cancelled]" in err


def test_bench_prints_figures() -> None:
    result = run("bench", "--prompt-tokens", "64", "--gen-tokens", "8", "--rounds", "1", "--threads", "2")
    assert result.returncode == 0, result.stderr
    assert "decode t/s" in result.stdout
    assert "engine decode speed / bare llama-cpp-python:" in result.stdout


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash installers/dev.sh app" in readme and "bash installers/dev.sh test" in readme
    assert "bash installers/dev.sh test" in (ROOT / ".ci" / "run").read_text()


def test_serve_command_serves_the_demo_model() -> None:
    import httpx

    from tests.app.server.live_server import free_port

    port = free_port()
    proc = subprocess.Popen([*cli(), "serve", "--port", str(port), "--threads", "2", "--ctx", "2048",
                             "--served-model-name", "demo"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "Serving demo at http://127.0.0.1:" in line:
                break
        else:
            raise AssertionError("the server did not start")
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60, json={
            "model": "demo", "temperature": 0, "max_tokens": 12,
            "messages": [{"role": "user", "content": PARIS}]})
        assert reply.status_code == 200 and "Paris" in reply.json()["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_serve_reasoning_format_none_leaves_the_reasoning_in_content(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from tests.app.server.live_server import free_port

    port = free_port()
    proc = subprocess.Popen([*cli(), "serve", "-m", str(tiny_nemotron.gguf_path), "--port", str(port),
                             "--threads", "2", "--ctx", "1024", "--served-model-name", "tiny",
                             "--reasoning-format", "none"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "Serving tiny at http://127.0.0.1:" in line:
                break
        else:
            raise AssertionError("the server did not start")
        _wait_until_listening(port)
        body = {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        inline = httpx.post(url, json=body, timeout=60).json()["choices"][0]["message"]
        split = httpx.post(url, json={**body, "reasoning_format": "split"}, timeout=60).json()["choices"][0]["message"]
        assert inline["content"] and inline["reasoning_content"] is None  # 4 tokens of reasoning, in content
        assert split["content"] is None and split["reasoning_content"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert run("serve", "--reasoning-format", "deepseek").returncode == 2


def _wait_until_listening(port: int) -> None:
    """serve prints its address just before uvicorn binds the port: wait for the bind itself."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.05)


def test_serve_warns_when_exposed() -> None:
    result = run("serve", "--host", "0.0.0.0", "--model", "/nonexistent.gguf")
    assert "reachable from other machines" in result.stderr and "no API key is set" in result.stderr
    assert result.returncode == 1 and "No model file" in result.stderr
    assert run("serve", "--port", "70000").returncode == 2


def test_self_test_passes_and_says_what_it_checked() -> None:
    result = run("--self-test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    demo model at" in result.stdout and "Paris" in result.stdout
    assert result.stdout.strip().endswith("self-test passed")


def test_chat_with_a_hugging_face_folder_runs_on_torch_with_the_budget(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    result = run("chat", "-m", str(tiny_nemotron.hf_dir), "-p", "Why is the sky blue?", "--budget", "8",
                 "--max-tokens", "120", "--seed", "2", "--threads", "1", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    info = next(e for e in events if e["event"] == "ModelInfo")
    assert info["backend"] == "torch" and info["architecture"] == "nemotron_h" and info["device"] == "CPU float32"
    assert "PyTorch" in info["kernels"]
    (ended,) = [e for e in events if e["event"] == "ReasoningEnded"]
    assert ended["by_budget"] and 8 <= ended["reasoning_tokens"] <= 8 + 500 + 5
    assert any(e["event"] == "ReasoningDelta" for e in events)


def test_a_prompt_that_is_not_unicode_is_an_error_not_a_traceback() -> None:
    """Bytes the terminal could not decode reach Python as lone surrogates (issue 12, item 7)."""
    result = run("chat", "-p", "a\udcffb", "--threads", "2")
    assert result.returncode == 1
    assert "messages[0].content holds a lone surrogate" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_backslash_answers_now(tiny_nemotron) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-\\ (SIGQUIT from the terminal, to the whole process group) while the tiny Nemotron thinks:
    the reasoning ends, the model answers, and neither the program nor its engine process dies."""
    proc = subprocess.Popen([*cli(), "chat", "--model", str(tiny_nemotron.gguf_path), "--threads", "2",
                             "--max-tokens", "2000", "--seed", "3", "-p", "Why is the sky blue?"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)
    assert proc.stderr is not None
    seen = ""
    while "Thinking…" not in seen:  # the reasoning is streaming
        seen += proc.stderr.readline()
    proc.stderr.read(40)
    os.killpg(proc.pid, signal.SIGQUIT)  # as the terminal sends it: to the app and its engine process
    line = ""
    while "[thought for" not in line:
        line = proc.stderr.readline()
        assert line, "the reasoning never ended"
    assert "ended by you" in line
    out, err = proc.communicate(timeout=300)  # the answer runs to --max-tokens: the random model never stops
    assert proc.returncode == 0, err
    assert out.strip(), "the model answered after Ctrl-\\"
    assert "Error" not in err
