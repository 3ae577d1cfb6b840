#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Install everything the build, the reference QEMU and the tests need on a
# fresh Debian 12. Safe to run again: apt skips what is installed.
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || localmig_die "run as root (apt, network namespaces, TAPs)"

"$LOCALMIG_TOP/build-aux/apt-sources.sh"

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "$@"
}

# libvirt 11.3.0 build
libvirt_deps=(
    build-essential ninja-build pkg-config rsync patch xz-utils dpkg-dev
    libxml2-dev libxml2-utils xsltproc libglib2.0-dev libgnutls28-dev
    libjson-c-dev libnl-3-dev libnl-route-3-dev libtirpc-dev
    python3-docutils libcap-ng-dev libudev-dev libpciaccess-dev
    libdevmapper-dev libreadline-dev gettext
    # xattrs: what remember_owner stores a file's original owner in
    libattr1-dev
    # tools some of libvirt's own tests need, or they are left out:
    # augparse (config file lenses), pdwtags (RPC wire structs), pytest
    augeas-tools dwarves python3-pytest
)

# reference QEMU 10.0.13 build and its firmware at run time; the -dev
# packages of the feature set of Debian 13's qemu-system-x86 (qemu/README.md)
qemu_deps=(
    libglib2.0-dev libpixman-1-dev libfdt-dev libslirp-dev python3-venv
    bzip2 seabios ipxe-qemu
    zlib1g-dev libcapstone-dev libnuma-dev libpmem-dev
    # displays (VNC, SPICE, curses, braille), USB
    libjpeg-dev libpng-dev libsasl2-dev libspice-server-dev
    libspice-protocol-dev libncurses-dev libbrlapi-dev
    libusb-1.0-0-dev libusbredirparser-dev libcacard-dev
    # audio
    libpipewire-0.3-dev libpulse-dev libasound2-dev libjack-jackd2-dev
    # network, storage, crypto, migration, sandbox
    libvdeplug-dev libbpf-dev libaio-dev liburing-dev libcap-ng-dev
    libfuse3-dev libgnutls28-dev nettle-dev libzstd-dev
    librdmacm-dev libibverbs-dev libseccomp-dev
)

# end-to-end tests: stock QEMU 7.2, the guest's ingredients, networking
e2e_deps=(
    qemu-system-x86 qemu-utils busybox-static cpio iproute2 iputils-ping
    bridge-utils ethtool procps psmisc python3
    # the network driver (type=network interfaces) needs a firewall tool
    nftables
)

# the fuzzer of the status XML parser (tests/fuzz/): clang with libFuzzer
fuzz_deps=(clang libclang-rt-14-dev)

apt_install "${libvirt_deps[@]}" "${qemu_deps[@]}" "${e2e_deps[@]}" "${fuzz_deps[@]}"

# QEMU 10.0 needs meson >= 1.5; libvirt builds with it as well, so one
# meson serves both.
apt_install -t bookworm-backports meson python3-pycotap

# The QEMU driver resolves its compiled-in default user before it reads
# qemu.conf, so the account has to exist even when qemu.conf says root.
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
    useradd --system --gid libvirt-qemu --no-create-home \
            --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
