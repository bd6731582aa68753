"""The menu entry and the AppStream metainfo the .deb installs: valid by the distributions' own
validators, and consistent with each other, the icons and the version in pyproject.toml."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests import REPO_ROOT

ROOT = REPO_ROOT
APP_ID = "io.github.nemotrondesk.NemotronDesk"
DESKTOP = ROOT / "resources" / f"{APP_ID}.desktop"
METAINFO = ROOT / "resources" / f"{APP_ID}.metainfo.xml"


def validator(tool: str, package: str) -> str:
    """The validator's path. CI (NEMOTRON_DESK_PACKAGE_TESTS=1) must have it; elsewhere its absence skips."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed: apt-get install {package} (bash installers/dev.sh test does, as root)"
        if os.environ.get("NEMOTRON_DESK_PACKAGE_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_desktop_entry_is_valid() -> None:
    result = subprocess.run([validator("desktop-file-validate", "desktop-file-utils"), str(DESKTOP)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_metainfo_is_valid() -> None:
    result = subprocess.run([validator("appstreamcli", "appstream"), "validate", "--no-net", str(METAINFO)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entry_metainfo_icons_and_version_agree() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(DESKTOP)
    section = entry["Desktop Entry"]
    assert section["Exec"].split()[0] == "nemotron-desk"
    icon = section["Icon"]
    assert (ROOT / "resources" / "icons" / f"{icon}.svg").is_file()
    for size in (48, 128, 256):  # installed as hicolor/SIZExSIZE/apps/ICON.png by installers/build_deb.sh
        assert (ROOT / "resources" / "icons" / f"{icon}-{size}.png").is_file()
    meta = ET.parse(METAINFO).getroot()
    assert meta.findtext("id") == APP_ID
    assert meta.findtext("launchable") == DESKTOP.name
    assert meta.findtext("provides/binary") == "nemotron-desk"
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    releases = [r.get("version") for r in meta.iter("release")]
    assert releases[0] == version.group(1), "add a <release> to the metainfo for the new version"
