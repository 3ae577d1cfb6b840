# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Shared settings of the build scripts; sourced, not run.

LOCALMIG_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Upstream inputs: fetched with apt, verified, never committed.
LIBVIRT_VERSION=11.3.0
LIBVIRT_ORIG=libvirt_${LIBVIRT_VERSION}.orig.tar.xz
LIBVIRT_SHA256=6bcb0c42c4580436fea262ced56f68a6afe20f7390b1bea2116718cc034a0283

# Downloads are cached outside the repository; build outputs live in the
# checkout (or wherever LOCALMIG_BUILD_ROOT points) so clones don't mix.
LOCALMIG_CACHE=${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}
LOCALMIG_BUILD_ROOT=${LOCALMIG_BUILD_ROOT:-$LOCALMIG_TOP/_build}
LIBVIRT_SRCDIR=$LOCALMIG_BUILD_ROOT/libvirt-src
LIBVIRT_BUILDDIR=${LIBVIRT_BUILDDIR:-$LOCALMIG_BUILD_ROOT/libvirt}

# Everything not needed for a QEMU host is off, so the build stays short on
# two cores. The test driver stays: virsh's own tests run against it. Docs
# stay too: they make libvirt-api.xml (what language bindings generate
# from), the man pages, and validate the XML schemas' documentation.
# Warnings are errors, as in libvirt's own CI: our files meet that bar.
LIBVIRT_MESON_OPTIONS=(
    -Dsystem=false
    -Dwerror=true
    -Ddocs=enabled
    -Dtests=enabled
    -Dnls=disabled
    # remember_owner (on by default) keeps a file's owner in an xattr;
    # without libattr it silently does nothing, unlike on a Debian host
    -Dattr=enabled
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
    -Ddriver_network=enabled
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

# Directories of ours whose files are added to the upstream tree.
LOCALMIG_OVERLAY_DIRS="src include tools tests docs po"

localmig_log() {
    printf '%s: %s\n' "${0##*/}" "$*" >&2
}

localmig_die() {
    localmig_log "error: $*"
    exit 1
}

# localmig_fetch_orig SRCPKG ORIGFILE SHA256
# Download an upstream tarball from the trixie deb-src entry (see
# apt-sources.sh) into the cache, unless a verified copy is there. The
# archive serves the .orig.tar.xz but may answer 404 for .dsc/.asc, so
# apt-get's exit status is not trusted: the checksum is.
localmig_fetch_orig() {
    local pkg=$1 orig=$2 sum=$3
    local dest=$LOCALMIG_CACHE/$orig

    if [ -f "$dest" ] && echo "$sum  $dest" | sha256sum -c --status; then
        return 0
    fi
    mkdir -p "$LOCALMIG_CACHE"
    localmig_log "fetching $orig with apt"
    (cd "$LOCALMIG_CACHE" &&
     apt-get source --download-only -t trixie "$pkg" >/dev/null 2>&1) || true
    [ -f "$dest" ] ||
        localmig_die "apt could not download $orig; run build-aux/apt-sources.sh"
    echo "$sum  $dest" | sha256sum -c --status ||
        localmig_die "checksum mismatch for $dest (expected $sum)"
}
