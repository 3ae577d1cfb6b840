#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build libvirt with our overlay: what the product needs (QEMU driver,
# remote driver and daemons, virsh, libvirt.so with libvirt-api.xml) and
# libvirt's own tests. Re-running with nothing changed neither downloads nor
# reconfigures; ninja then has nothing to do.
set -euo pipefail
. "$(dirname "$0")/common.sh"

"$LOCALMIG_TOP/build-aux/assemble.sh"

# Debian's python3, not another one first on PATH (pyenv's, say): libvirt's
# build and test scripts then find the modules Debian installs (pytest,
# docutils). It is recorded with meson's version below.
export PATH=/usr/bin:$PATH
tools="meson $(meson --version) python3 $(python3 --version | cut -d' ' -f2)"

# A build directory is tied to the meson that configured it: set up anew
# when meson changed, reconfigure in place when only the options changed,
# and leave it alone otherwise.
stamp=$LIBVIRT_BUILDDIR/.localmig-config
if [ ! -f "$LIBVIRT_BUILDDIR/build.ninja" ] ||
   [ "$(sed -n 1p "$stamp" 2>/dev/null)" != "$tools" ]; then
    rm -rf "$LIBVIRT_BUILDDIR"
    meson setup "$LIBVIRT_BUILDDIR" "$LIBVIRT_SRCDIR" "${LIBVIRT_MESON_OPTIONS[@]}"
elif [ "$(sed -n 2p "$stamp")" != "${LIBVIRT_MESON_OPTIONS[*]}" ]; then
    meson configure "$LIBVIRT_BUILDDIR" "${LIBVIRT_MESON_OPTIONS[@]}"
fi
printf '%s\n%s\n' "$tools" "${LIBVIRT_MESON_OPTIONS[*]}" >"$stamp"

# Two cores: three jobs keep both busy while one waits on I/O.
ninja -C "$LIBVIRT_BUILDDIR" -j "${LOCALMIG_JOBS:-3}"
