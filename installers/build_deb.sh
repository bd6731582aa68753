#!/usr/bin/env bash
# Builds the Linux package from the PyInstaller bundle: dist/nemotron-desk_VERSION_ARCH.deb.
#   bash installers/build_deb.sh          builds the bundle first when dist/nemotron-desk is missing
#   bash installers/build_deb.sh --rebuild-bundle
# The architecture is this machine's (dpkg --print-architecture): amd64 here, arm64 on a DGX Spark.
# The package installs the bundle under /opt/nemotron-desk, `nemotron-desk` in /usr/bin, a menu entry,
# icons and AppStream metainfo. Its Depends line comes from dpkg-shlibdeps: the system libraries the
# bundle's own libraries link against (libc, OpenGL/EGL, fontconfig, xcb, ...), and always those of
# Qt's X11 platform plugin (installers/x11-libraries.txt, by installers/deb_depends.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
APP_ID=io.github.nemotrondesk.NemotronDesk
BUNDLE=$ROOT/dist/nemotron-desk

for tool in dpkg-deb dpkg-shlibdeps fakeroot; do
    if ! command -v "$tool" >/dev/null; then
        echo "$tool is missing: apt-get install dpkg-dev fakeroot" >&2
        exit 1
    fi
done
if [ "${1:-}" = "--rebuild-bundle" ] || [ ! -x "$BUNDLE/nemotron-desk" ]; then
    bash installers/build_bundle.sh
fi

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
ARCH=$(dpkg --print-architecture)
OUT=$ROOT/dist/nemotron-desk_${VERSION}_${ARCH}.deb
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/pkg

install -d "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" "$PKG/usr/share/metainfo" \
    "$PKG/usr/share/icons/hicolor/scalable/apps" "$PKG/DEBIAN"
cp -a "$BUNDLE" "$PKG/opt/nemotron-desk"
ln -s /opt/nemotron-desk/nemotron-desk "$PKG/usr/bin/nemotron-desk"
install -m644 "resources/$APP_ID.desktop" "$PKG/usr/share/applications/"
install -m644 "resources/$APP_ID.metainfo.xml" "$PKG/usr/share/metainfo/"
install -m644 resources/icons/nemotron-desk.svg "$PKG/usr/share/icons/hicolor/scalable/apps/"
for size in 48 128 256; do
    install -D -m644 "resources/icons/nemotron-desk-$size.png" \
        "$PKG/usr/share/icons/hicolor/${size}x$size/apps/nemotron-desk.png"
done
chmod -R u+rwX,go+rX,go-w "$PKG"

# Depends: the system libraries that the bundle's ELF files need and do not carry (dpkg-shlibdeps).
# Some Qt plugins need libraries this machine lacks (the Wayland and GTK ones on a server): they are
# optional, so they are left out of the Depends line, and the build says which. (The X11 platform
# plugin is not optional: its packages are added below.)
mapfile -t elves < <(find "$PKG/opt/nemotron-desk" -type f \( -name '*.so' -o -name '*.so.*' \) | sort)
elves+=("$PKG/opt/nemotron-desk/nemotron-desk")
libdirs=()
while IFS= read -r d; do libdirs+=("-l$d"); done < <(printf '%s\n' "${elves[@]}" | xargs -n1 dirname | sort -u)
mkdir "$STAGE/debian"
printf 'Source: nemotron-desk\n\nPackage: nemotron-desk\nArchitecture: any\n' > "$STAGE/debian/control"
shlibdeps() {
    (cd "$STAGE" && dpkg-shlibdeps -O --ignore-missing-info --warnings=0 "${libdirs[@]}" "${@/#/-e}" 2>"$STAGE/errors")
}
if ! depends=$(shlibdeps "${elves[@]}"); then
    mapfile -t unresolved < <(sed -n 's/.*needed by \([^ ]*\) .*/\1/p' "$STAGE/errors" | sort -u)
    if [ ${#unresolved[@]} -eq 0 ]; then cat "$STAGE/errors" >&2; exit 1; fi
    echo "==> Not in Depends (libraries missing on this machine; optional Qt plugins):" >&2
    sed -n 's/.*cannot find library \([^ ]*\) needed by [^ ]*\/\([^/ ]*\) .*/    \2 needs \1/p' "$STAGE/errors" \
        | sort -u >&2
    mapfile -t elves < <(printf '%s\n' "${elves[@]}" | grep -vxF -f <(printf '%s\n' "${unresolved[@]}"))
    depends=$(shlibdeps "${elves[@]}") || { cat "$STAGE/errors" >&2; exit 1; }
fi
depends=$(sed -n 's/^shlibs:Depends=//p' <<<"$depends")
if [ -z "$depends" ]; then
    echo "dpkg-shlibdeps found no dependencies: the bundle looks broken." >&2
    exit 1
fi
# Qt's X11 platform plugin is not optional: its libraries are named also where this machine lacks them.
depends=$(bash installers/deb_depends.sh "$depends")

cat > "$PKG/DEBIAN/control" <<CONTROL
Package: nemotron-desk
Version: $VERSION
Architecture: $ARCH
Maintainer: Nemotron Desk developers <maintainers@nemotron-desk.invalid>
Installed-Size: $(du -sk "$PKG" | cut -f1)
Depends: $depends
Section: utils
Priority: optional
Description: Chat with NVIDIA Nemotron reasoning models on your own machine
 Nemotron Desk runs NVIDIA Nemotron-3-Nano-30B-A3B through llama.cpp and shows
 its reasoning apart from the answer. It carries a small demo model, so it
 works at once; larger models are chosen or downloaded in the app. The torch
 backend is offered as a download from inside the app.
CONTROL
# The app writes nothing under /opt: a user's data lives in ~/.local/share/nemotron-desk and stays.
# Python's bytecode caches are already inside the bundle's archive, so `dpkg -r` leaves /opt empty.
fakeroot dpkg-deb --build --root-owner-group -Zzstd -z9 "$PKG" "$OUT" >/dev/null
echo "==> $OUT: $(du -h "$OUT" | cut -f1) ($ARCH)" >&2
