"""The system libraries Qt needs for a window on X11: the list is PySide6's own, the .deb depends on
all of them, and installers/dev.sh says which are missing, with the apt-get line, before starting."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import REPO_ROOT

LIST = REPO_ROOT / "installers" / "x11-libraries.txt"
BARE_DEBIAN_LACKS = ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"]


def entries() -> dict[str, str]:
    """soname -> package."""
    lines = [line.split() for line in LIST.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert all(len(fields) == 2 for fields in lines), "each line: SONAME PACKAGE"
    return dict((soname, package) for soname, package in lines)


def test_the_list_is_what_pyside6s_x11_plugin_links_against() -> None:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf is not installed: apt-get install binutils")
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    needed = set()
    for elf in (qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"):
        dynamic = subprocess.run([readelf, "-d", str(elf)], capture_output=True, text=True, check=True).stdout
        needed |= {line.split("[")[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line}
    system = {name for name in needed if not name.startswith("libQt6") and any(
        part in name for part in ("xcb", "X11", "xkbcommon"))}
    assert system == set(entries())
    assert set(BARE_DEBIAN_LACKS) <= set(entries().values())


def test_deb_depends_names_every_x11_package_once() -> None:
    found = "libc6 (>= 2.34), libxcb1 (>= 1.11.1), libxcb-cursor0 (>= 0.1.1), libfontconfig1 (>= 2.12.6)"
    result = subprocess.run(["bash", str(REPO_ROOT / "installers" / "deb_depends.sh"), found],
                            capture_output=True, text=True, check=True)
    depends = [item.strip() for item in result.stdout.strip().split(",")]
    names = [item.split()[0] for item in depends]
    assert depends[:4] == [item.strip() for item in found.split(",")]  # what dpkg-shlibdeps said, kept
    assert len(names) == len(set(names))
    assert set(entries().values()) <= set(names)


def test_build_deb_writes_that_depends_line_into_the_control_file() -> None:
    script = (REPO_ROOT / "installers" / "build_deb.sh").read_text()
    merged = script.index('depends=$(bash installers/deb_depends.sh "$depends")')
    assert merged < script.index("Depends: $depends")  # the package test checks the built .deb's field


@pytest.fixture
def dev_sh_env(tmp_path: Path) -> dict[str, str]:
    """dev.sh with a set-up virtual environment whose app only says it started (no real setup runs)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stamp = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()
                           + (REPO_ROOT / "installers" / "dev.sh").read_bytes()).hexdigest()
    (venv / ".nemotron-desk-stamp").write_text(stamp + "\n")
    app = venv / "bin" / "nemotron-desk"
    app.write_text('#!/bin/sh\necho "app started $*"\n')
    app.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return env | {"NEMOTRON_DESK_VENV": str(venv), "DISPLAY": ":7", "PATH": f"{tmp_path}:{os.environ['PATH']}"}


def fake_ldconfig(folder: Path, sonames: list[str]) -> None:
    """An ldconfig whose cache holds exactly these libraries."""
    lines = [f"{len(sonames)} libs found in cache `/etc/ld.so.cache'"]
    lines += [f"\t{name} (libc6,x86-64) => /lib/x86_64-linux-gnu/{name}" for name in sonames]
    tool = folder / "ldconfig"
    tool.write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
    tool.chmod(0o755)


def dev_sh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO_ROOT / "installers" / "dev.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_dev_sh_names_the_missing_libraries_and_the_apt_get_line(dev_sh_env: dict[str, str], tmp_path: Path) -> None:
    present = [s for s, package in entries().items() if package not in BARE_DEBIAN_LACKS]
    fake_ldconfig(tmp_path, present)
    result = dev_sh(dev_sh_env, "app")
    assert result.returncode == 1 and "app started" not in result.stdout
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert f"    {sudo}apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1\n" in result.stderr


def test_dev_sh_starts_the_app_when_the_libraries_are_there(dev_sh_env: dict[str, str], tmp_path: Path) -> None:
    fake_ldconfig(tmp_path, list(entries()))
    result = dev_sh(dev_sh_env, "app", "--flag")
    assert result.returncode == 0 and result.stdout == "app started --flag\n", result.stderr


def test_dev_sh_does_not_ask_without_an_x11_display(dev_sh_env: dict[str, str], tmp_path: Path) -> None:
    fake_ldconfig(tmp_path, [])
    for extra in ({"DISPLAY": ""}, {"WAYLAND_DISPLAY": "wayland-0"}, {"QT_QPA_PLATFORM": "offscreen"}):
        result = dev_sh(dev_sh_env | extra, "app")
        assert result.returncode == 0 and "app started" in result.stdout, (extra, result.stderr)
