"""The on-demand runtime installer against real package indexes on 127.0.0.1 serving small wheels
(tests/fixtures/wheel_index.py). Not tested here: the real multi-GB CUDA wheels and the real indexes
(CI has no internet)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.services.runtime_install import RuntimeInstallError, install, plan_install
from tests.fixtures.wheel_index import HERE_TAG, OTHER_TAG, fill, served

__all__ = ["served"]  # the fixture

def test_plan_follows_dependencies_markers_tags_and_what_is_installed(served, tmp_path: Path) -> None:
    indexes, urls = served
    fill(indexes)
    plan = plan_install(["fake-torch"], tmp_path / "site-packages", urls)
    chosen = {(w.project, w.version) for w in plan.wheels}
    assert chosen == {("fake-torch", "1.0"), ("fake-helper", "1.1")}  # the s390x 2.0 and win32 dep are not
    assert any(s.startswith("jinja2 ") for s in plan.satisfied)       # the app already has jinja2
    assert plan.download_bytes == sum(len(indexes.wheels[w.filename]) for w in plan.wheels)
    assert all(w.size > 0 for w in plan.wheels)  # HTML index: size from a HEAD request; JSON: from the index
    assert "fake-torch 1.0" in plan.describe() and "Total:" in plan.describe()
    with_extra = plan_install(["fake-torch[cuda]"], tmp_path / "site-packages", urls)
    assert "fake-extra-dep" in {w.project for w in with_extra.wheels}


def test_install_unpacks_verified_wheels_that_the_app_then_imports(served, tmp_path: Path) -> None:
    indexes, urls = served
    fill(indexes)
    data_dir = tmp_path / "data"
    target = data_dir / "runtime" / "site-packages"
    plan = plan_install(["fake-torch==1.0"], target, urls)
    seen: list[tuple[str, int, int]] = []
    install(plan, target, lambda what, done, total: seen.append((what, done, total)))
    downloads = [s for s in seen if s[0].startswith("Downloading")]
    assert downloads and downloads[-1][1] == downloads[-1][2] == plan.download_bytes
    assert seen[-1][0] == "Installed"
    assert (target / "fake_helper_extra.py").is_file()  # .data/purelib lands in site-packages
    assert not (target / "fake_helper-1.1.data").exists()  # scripts are not installed
    assert not (target.parent / "downloads").exists()
    # The app's start-up puts the folder on sys.path (app/runtime_path.py), in a fresh process:
    code = ("from app.runtime_path import add_installed_runtimes; add_installed_runtimes(); "
            "import fake_torch, fake_helper; print(fake_torch.VERSION, fake_helper.VERSION)")
    env = {**os.environ, "NEMOTRON_DESK_DATA_DIR": str(data_dir), "PYTHONPATH": str(Path.cwd())}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1.0 1.1", out.stderr
    # Planned again, everything is there already: nothing to download.
    again = plan_install(["fake-torch==1.0"], target, urls)
    assert again.wheels == ()


def test_a_wheel_that_does_not_match_its_checksum_is_deleted_and_nothing_is_installed(served, tmp_path: Path) -> None:
    indexes, urls = served
    indexes.add("torch", "fake-torch", "1.0", str(HERE_TAG), sha256="0" * 64)
    target = tmp_path / "site-packages"
    plan = plan_install(["fake-torch"], target, urls)
    with pytest.raises(RuntimeInstallError, match="does not match the checksum") as caught:
        install(plan, target)
    assert "Try again" in caught.value.action
    assert not target.exists()
    assert list((tmp_path / "downloads").iterdir()) == []


def test_clear_errors_for_a_missing_package_and_an_unreachable_index(served, tmp_path: Path) -> None:
    indexes, urls = served
    indexes.add("torch", "fake-torch", "1.0", OTHER_TAG)  # only for another machine
    with pytest.raises(RuntimeInstallError, match=r"No wheel of fake-torch.*fits this system"):
        plan_install(["fake-torch"], tmp_path, urls)
    with pytest.raises(RuntimeInstallError, match="No wheel of not-there"):
        plan_install(["not-there"], tmp_path, urls)
    with pytest.raises(RuntimeInstallError, match="Cannot reach the package index") as caught:
        plan_install(["fake-torch"], tmp_path, ["http://127.0.0.1:9/simple"])
    assert "internet connection" in caught.value.action


def test_cancelling_stops_the_download(served, tmp_path: Path) -> None:
    indexes, urls = served
    fill(indexes)
    plan = plan_install(["fake-torch==1.0"], tmp_path / "site-packages", urls)
    with pytest.raises(RuntimeInstallError, match="cancelled"):
        install(plan, tmp_path / "site-packages", cancelled=lambda: True)
    assert not (tmp_path / "site-packages").exists()


def test_install_torch_command_lists_then_installs(served, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from app.cli.main import main

    indexes, urls = served
    fill(indexes)
    monkeypatch.setenv("NEMOTRON_DESK_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() adds the runtime folder; later tests must not see it
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: without --yes it must not download
    args = ["install-torch", *(a for u in urls for a in ("--index-url", u)), "--package", "fake-torch==1.0"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "fake-helper 1.1" in err and "add --yes" in err
    assert not (tmp_path / "runtime" / "site-packages").exists()
    assert main([*args, "--yes"]) == 0
    err = capsys.readouterr().err
    assert "Downloading fake_torch-1.0" in err and "installed" in err
    assert (tmp_path / "runtime" / "site-packages" / "fake_torch" / "__init__.py").is_file()
    assert main([*args, "--yes"]) == 0 and "already installed" in capsys.readouterr().err
