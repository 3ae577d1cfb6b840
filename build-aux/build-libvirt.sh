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

# Everything not needed for a QEMU host is off, so the build stays short on
# two cores. The test driver stays: virsh's own tests run against it. Docs
# stay too: they make libvirt-api.xml (what language bindings generate
# from), the man pages, and validate the XML schemas' documentation.
# Warnings are errors, as in libvirt's own CI: our files meet that bar.
options=(
    -Dsystem=false
    -Dwerror=true
    -Ddocs=enabled
    -Dtests=enabled
    -Dnls=disabled
    -Ddriver_qemu=enabled
    -Ddriver_remote=enabled
    -Ddriver_libvirtd=enabled
    -Ddriver_test=enabled
    -Ddriver_bhyve=disabled
    -Ddriver_ch=disabled
    -Ddriver_esx=disabled
    -Ddriver_hyperv=disabled
    -Ddriver_interface=disabled
    -Ddriver_libxl=disabled
    -Ddriver_lxc=disabled
    -Ddriver_network=disabled
    -Ddriver_openvz=disabled
    -Ddriver_secrets=disabled
    -Ddriver_vbox=disabled
    -Ddriver_vmware=disabled
    -Ddriver_vz=disabled
    -Dstorage_dir=disabled
    -Dstorage_disk=disabled
    -Dstorage_fs=disabled
    -Dstorage_gluster=disabled
    -Dstorage_iscsi=disabled
    -Dstorage_iscsi_direct=disabled
    -Dstorage_lvm=disabled
    -Dstorage_mpath=disabled
    -Dstorage_rbd=disabled
    -Dstorage_scsi=disabled
    -Dstorage_vstorage=disabled
    -Dstorage_zfs=disabled
    -Dwireshark_dissector=disabled
)

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
    meson setup "$LIBVIRT_BUILDDIR" "$LIBVIRT_SRCDIR" "${options[@]}"
elif [ "$(sed -n 2p "$stamp")" != "${options[*]}" ]; then
    meson configure "$LIBVIRT_BUILDDIR" "${options[@]}"
fi
printf '%s\n%s\n' "$tools" "${options[*]}" >"$stamp"

# Two cores: three jobs keep both busy while one waits on I/O.
ninja -C "$LIBVIRT_BUILDDIR" -j "${LOCALMIG_JOBS:-3}"
