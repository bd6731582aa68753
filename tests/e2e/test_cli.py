"""The `nemotron-desk` command as a person runs it: a real process, the real demo model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
    assert "engine decode speed / bare:" in result.stdout


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash installers/dev.sh app" in readme and "bash installers/dev.sh test" in readme
    assert "bash installers/dev.sh test" in (ROOT / ".ci" / "run").read_text()
