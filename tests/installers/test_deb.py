"""Build the packaged app and its .deb, install it with dpkg, use it, remove it.

Runs when NEMOTRON_DESK_PACKAGE_TESTS=1 (.ci/run sets it): it needs root, dpkg, and about five
minutes on two cores. It installs into /opt/nemotron-desk and /usr/bin of this machine, and removes
the package again whatever happens. Figures go to dist/package-figures.json (docs/benchmarks.md).
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import REPO_ROOT
from tests.fixtures.wheel_index import fill, served

__all__ = ["served"]  # the fixture
ROOT = REPO_ROOT
INSTALLED = Path("/opt/nemotron-desk")
ON_PATH = Path("/usr/bin/nemotron-desk")
APP_ID = "io.github.nemotrondesk.NemotronDesk"

pytestmark = [
    pytest.mark.package,
    pytest.mark.skipif(os.environ.get("NEMOTRON_DESK_PACKAGE_TESTS") != "1",
                       reason="builds and installs the .deb: set NEMOTRON_DESK_PACKAGE_TESTS=1 (.ci/run does)"),
]


def run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def package_installed() -> bool:
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "nemotron-desk"], capture_output=True, text=True)
    return "installed" in status.stdout and "not-installed" not in status.stdout


@pytest.fixture(scope="module")
def deb() -> Iterator[tuple[Path, dict[str, float]]]:
    if os.geteuid() != 0:
        pytest.fail("Installing the .deb needs root (dpkg -i); run as root, as CI does.")
    if package_installed() or INSTALLED.exists():
        pytest.fail(f"nemotron-desk is already installed here ({INSTALLED}); remove it first "
                    "(dpkg -P nemotron-desk): this test installs and removes its own build.")
    figures: dict[str, float] = {}
    start = time.monotonic()
    run(["bash", "installers/build_bundle.sh"], 1800, {"PYTHON": sys.executable})
    figures["bundle_build_s"] = time.monotonic() - start
    start = time.monotonic()
    run(["bash", "installers/build_deb.sh"], 1200)
    figures["deb_build_s"] = time.monotonic() - start
    debs = sorted((ROOT / "dist").glob("nemotron-desk_*.deb"), key=lambda p: p.stat().st_mtime)
    assert debs, "installers/build_deb.sh made no .deb in dist/"
    figures["bundle_bytes"] = du(ROOT / "dist" / "nemotron-desk")
    figures["deb_bytes"] = debs[-1].stat().st_size
    try:
        start = time.monotonic()
        run(["dpkg", "-i", str(debs[-1])], 600)
        figures["install_s"] = time.monotonic() - start
        yield debs[-1], figures
    finally:
        subprocess.run(["dpkg", "-P", "nemotron-desk"], capture_output=True, timeout=600)
        (ROOT / "dist" / "package-figures.json").write_text(json.dumps(figures, indent=1) + "\n")


def test_installed_self_test_passes(deb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, figures = deb
    assert ON_PATH.is_symlink() and ON_PATH.resolve() == INSTALLED / "nemotron-desk"
    start = time.monotonic()
    result = run(["nemotron-desk", "--self-test"], 300, {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)})
    figures["self_test_s"] = time.monotonic() - start
    assert "self-test passed" in result.stdout
    assert f"demo model at {INSTALLED}" in result.stdout  # the bundle's own demo model, not a checkout's


def test_package_depends_on_the_x11_libraries(deb) -> None:  # type: ignore[no-untyped-def]
    """Also those this machine lacked: without them a bare Debian cannot open the window."""
    path, _ = deb
    depends = run(["dpkg-deb", "-f", str(path), "Depends"], 60).stdout
    named = {item.strip().split()[0] for item in depends.replace("|", ",").split(",") if item.strip()}
    listed = (ROOT / "installers" / "x11-libraries.txt").read_text().splitlines()
    wanted = {line.split()[1] for line in listed if line.strip() and not line.startswith("#")}
    assert {"libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"} <= wanted <= named, depends


def workers_of(pid: int) -> list[int]:
    """The process's children, from /proc (no procps needed on a bare CI image)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_installed_gui_starts_offscreen_and_exits_cleanly(deb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("NEMOTRON_DESK_DATA_DIR", None)
    # The installed menu entry's command, as the desktop would run it.
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(Path("/usr/share/applications") / f"{APP_ID}.desktop")
    command = shlex.split(entry["Desktop Entry"]["Exec"])
    assert Path(f"/usr/share/icons/hicolor/256x256/apps/{entry['Desktop Entry']['Icon']}.png").is_file()
    assert Path(f"/usr/share/metainfo/{APP_ID}.metainfo.xml").is_file()
    app = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        time.sleep(8)
        assert app.poll() is None, f"the app ended early ({app.returncode}):\n{app.stdout.read() if app.stdout else ''}"
        children = workers_of(app.pid)
        assert children, "no engine process: the demo model did not start loading"
        database = tmp_path / "data" / "nemotron-desk" / "conversations.sqlite3"
        assert database.is_file(), "the app did not open its conversation store in the user's data folder"
        app.send_signal(signal.SIGTERM)  # as a logout would; the window closes like its close button
        output, _ = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 0, output
    assert "Traceback" not in output, output
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{c}").exists() for c in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{c}").exists() for c in children), "the engine process outlived the app"


def test_installed_app_installs_a_runtime_from_an_index(deb, served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The frozen app's own installer (packaging, urllib, zipfile inside the bundle) against a local
    index of small wheels; the real CUDA wheels are not reachable from CI."""
    indexes, urls = served
    fill(indexes)
    data = tmp_path / "data"
    args = [a for u in urls for a in ("--index-url", u)]
    result = run(["nemotron-desk", "install-torch", *args, "--package", "fake-torch==1.0", "--yes"], 120,
                 {"NEMOTRON_DESK_DATA_DIR": str(data)})
    assert "fake-helper 1.1" in result.stderr and "installed" in result.stderr
    assert (data / "runtime" / "site-packages" / "fake_torch" / "__init__.py").is_file()


def test_removal_leaves_nothing_under_opt(deb) -> None:  # type: ignore[no-untyped-def]
    run(["dpkg", "-r", "nemotron-desk"], 600)
    assert not INSTALLED.exists(), f"left behind: {sorted(p.name for p in INSTALLED.rglob('*'))[:20]}"
    assert not ON_PATH.exists() and not ON_PATH.is_symlink()
    run(["dpkg", "-P", "nemotron-desk"], 600)
    assert not package_installed()
