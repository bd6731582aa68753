"""engine/services/hub/listing.py: the checks every Hub listing value passes before it becomes a path or a size.

Real names pass unchanged; a fuzz (hypothesis) shows that any name the check accepts stays inside its folder
on POSIX and on Windows path rules alike."""

from __future__ import annotations

import ntpath
import posixpath
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.services.hub import listing
from engine.services.hub.listing import UntrustedHub

REAL_NAMES = [
    ".gitattributes", "README.md", "config.json", "model-00001-of-00013.safetensors", "modeling_nemotron_h.py",
    "Nemotron-3-Nano-30B-A3B-UD-Q4_K_XL.gguf", "BF16/Nemotron-3-Nano-30B-A3B-BF16-00001-of-00002.gguf",
    "nvidia_Nemotron-3-Nano-30B-A3B-Q4_K_M.gguf", "images/архитектура.png", "tokenizer_config.json",
]


@pytest.mark.parametrize("name", REAL_NAMES)
def test_real_names_pass_unchanged(name: str) -> None:
    assert listing.file_name(name) == name


@pytest.mark.parametrize(("name", "reason"), [
    ("../x.gguf", "climbs out"), ("a/../../x", "climbs out"), ("/etc/passwd", "absolute"),
    ("a\\b", "backslash"), ("C:x.gguf", "names a drive"), ("a\0b", "NUL"), ("a\x7fb", "U+007F"),
    ("a\u200bb", "U+200B"), ("a//b", "empty or '.' part"), ("a/", "empty or '.' part"), ("", "is empty"),
    ("a" * 256, "longer than 255 bytes"), ("x/" * 600, "longer than 1024"), ("aux.txt", "Windows device"),
    ("ab:c", "':'"), ("a?.gguf", "'?'"), ("trailing.", "ends with a dot"), (b"bytes", "not text"),
])
def test_unsafe_names_are_refused_with_the_reason(name: object, reason: str) -> None:
    with pytest.raises(UntrustedHub, match="not trustworthy") as refused:
        listing.file_name(name, "http://hub.example")
    assert reason in refused.value.message and "http://hub.example" in refused.value.message


_PIECES = st.sampled_from(["..", ".", "", "a", "B.gguf", "\\", "/", "C:", "~", " ", "\0", "\n", "é", "con"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(_PIECES, max_size=8).map("/".join), st.lists(_PIECES, max_size=8).map("".join),
                 st.text(max_size=40)))
def test_any_accepted_name_stays_inside_its_folder(name: str) -> None:
    try:
        listing.file_name(name)
    except UntrustedHub:
        return
    joined = posixpath.normpath(posixpath.join("/cache/snap", name))
    assert joined.startswith("/cache/snap/")
    windows = ntpath.normpath(ntpath.join("C:\\cache\\snap", name))
    assert windows.startswith("C:\\cache\\snap\\")


def test_shas_digests_and_sizes() -> None:
    assert listing.commit("AB" * 20) == "ab" * 20  # the cache names folders in lower case, as the Hub does
    assert listing.sha256("0f" * 32) == "0f" * 32 and listing.blob_id("1" * 40) == "1" * 40
    assert listing.size(0) == 0 and listing.size(listing.MAX_FILE_BYTES) == listing.MAX_FILE_BYTES
    for bad_commit in ("1" * 39, "g" * 40, "../" * 13 + "a", 12, None):
        with pytest.raises(UntrustedHub, match="40-character hexadecimal"):
            listing.commit(bad_commit)
    for bad_size, reason in ((-1, "negative"), (True, "whole number"), (1.5, "whole number"), ("9", "whole number"),
                             (listing.MAX_FILE_BYTES + 1, "more than 1 TiB")):
        with pytest.raises(UntrustedHub, match=reason):
            listing.size(bad_size)
    assert listing.repo_id("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16") and listing.repo_id("gpt2")
    for bad_repo in ("../x", "a/b/c", "a/..", "", "a/b\0"):
        with pytest.raises(UntrustedHub):
            listing.repo_id(bad_repo)


def sibling(name: object, size: object = 10, sha: object = "a" * 64, blob: object = "b" * 40) -> SimpleNamespace:
    lfs = SimpleNamespace(sha256=sha, size=size) if sha is not None else None
    return SimpleNamespace(rfilename=name, size=size, blob_id=blob, lfs=lfs)


def test_a_whole_listing() -> None:
    files = listing.checked_files([sibling("a-Q4_K_M.gguf"), sibling("README.md", 5, None)])
    assert [(f.path, f.size, f.etag) for f in files] == [("a-Q4_K_M.gguf", 10, "a" * 64), ("README.md", 5, "b" * 40)]
    assert listing.checked_files(None) == []
    clashes = [([sibling("A.gguf"), sibling("a.gguf")], "listed twice"),
               ([sibling("x"), sibling("x/y.gguf")], "also listed as a file"),
               ("not a list", "is not a list"),
               ([sibling("a", size=10, sha="a" * 64)] * 1 + [SimpleNamespace(rfilename="b", size=3, blob_id="b" * 40,
                                                                            lfs=SimpleNamespace(sha256="a" * 64,
                                                                                                size=4))],
                "differs from the listed size")]
    for siblings, reason in clashes:
        with pytest.raises(UntrustedHub, match=reason):
            listing.checked_files(siblings)
