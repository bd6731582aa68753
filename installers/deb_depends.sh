#!/usr/bin/env bash
# Prints the .deb's Depends line: what dpkg-shlibdeps found (the first argument), and every package
# of installers/x11-libraries.txt that it does not already name. dpkg-shlibdeps can only name the
# packages installed on the building machine, and Qt's X11 platform plugin is not optional.
#   bash installers/deb_depends.sh "libc6 (>= 2.34), libxcb1"
set -euo pipefail
cd "$(dirname "$0")/.."
depends=${1:?usage: bash installers/deb_depends.sh SHLIBS_DEPENDS}
while read -r soname package; do
    case "$soname" in ''|'#'*) continue ;; esac
    # Named already, maybe with a version ("libxcb1 (>= 1.11.1)") or as one of alternatives ("a | b").
    if ! grep -qE "(^|[,|] *)$package( |,|\$)" <<<"$depends"; then
        depends="$depends, $package"
    fi
done < installers/x11-libraries.txt
echo "$depends"
