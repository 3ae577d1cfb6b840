#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build the reference QEMU: Debian 13's QEMU 10.0.13 source plus our patch
# series (qemu/patches/), which implements the QEMU interface of
# ../shared/docs/DESIGN.md section 5 (backend-transfer, tap incoming-fds).  Only
# qemu-system-x86_64 is built.
#
# Inputs (outside the repository):
#   ${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/qemu-src/
#       qemu_10.0.13+ds.orig.tar.xz (sha256-verified) and Debian's
#       .debian.tar.xz, fetched with `apt-get source --download-only`
# Outputs:
#   ${LOCALMIG_BUILD_ROOT:-_build}/qemu/
#       src/qemu-10.0.13/   patched source tree
#       build/              meson/ninja build directory
#       bin/qemu-system-x86_64
#                           the emulator; it finds its firmware in
#                           firmware/ without -L (configured firmware path)
#       firmware/           runtime firmware: symlinks to Debian 12's
#                           seabios, ipxe-qemu and qemu-system-data files;
#                           keymaps/ -> the source tree's pc-bios/keymaps
#       bin/qemu-system-x86_64-v10, -local
#                           the same binary exposing one generation of the
#                           TAP hand-over (QEMU_LOCALMIG_GENERATIONS)
#       qemu.env            QEMU_BIN=, QEMU_BIN_V10=, QEMU_BIN_LOCAL=,
#                           QEMU_FIRMWARE_DIR= (source it)
#
# Reuse: nothing is unpacked or configured again while the tarballs, the
# patches and the configure flags are unchanged, and ninja then has nothing
# to do.  A changed series is applied to a scratch copy and only the files
# whose content changed are rewritten, so ninja rebuilds just what depends
# on them.  LOCALMIG_QEMU_FRESH=1 forces a fresh unpack and configure.  A
# run that configured afresh prints how long configure and compile took.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache="${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/qemu-src"
out="${LOCALMIG_BUILD_ROOT:-$repo/_build}/qemu"

QEMU_VERSION=10.0.13
ORIG=qemu_${QEMU_VERSION}+ds.orig.tar.xz
ORIG_SHA256=6a0888e806c2ffc0c5f0733e974f9aea55491950d3c47c98669c8b236dde59ae
DEBIAN_PATCH=debian/patches/skip-unpack-edk2-blobs.patch

src="$out/src/qemu-$QEMU_VERSION"
build="$out/build"
fwdir="$out/firmware"
bindir="$out/bin"

# The x86_64 feature set of Debian 13's qemu-system-x86 (its debian/rules
# and the configure comments of its debian/control, with the modules of
# qemu-system-common, -modules-spice and the audio modules of -gui built
# in), so that a VM that runs on Debian's QEMU 10.0 runs on this one; what is
# left out and why: qemu/README.md.  Every feature is named: with
# --without-default-features nothing depends on what else is installed, and
# an --enable whose library is missing stops configure.  --disable-modules:
# a modular build looks for its modules in one directory, and a 10.0 binary
# aborts on the modules of Debian 12's 7.2 there.
# shellcheck disable=SC2054  # the commas of --audio-drv-list are meant
CONFIGURE_ARGS=(
    --python=/usr/bin/python3
    --prefix="$out"
    --firmwarepath="$fwdir"
    --disable-download
    --disable-install-blobs
    --target-list=x86_64-softmmu
    --without-default-features
    --disable-modules
    --disable-docs --disable-tools --disable-guest-agent --disable-containers
    --disable-xkbcommon
    # accelerators, host code
    --enable-tcg --enable-kvm
    --enable-malloc-trim --enable-stack-protector --enable-avx2 --enable-avx512bw
    --enable-capstone --enable-fdt=system --enable-numa --enable-libpmem
    # displays: VNC (TLS/SASL, JPEG/PNG), SPICE (qxl, spice-app,
    # spicevmc), curses; chardev baum (brlapi); USB host/redir/smartcard
    --enable-pixman --enable-vnc --enable-vnc-jpeg --enable-png --enable-vnc-sasl
    --enable-spice --enable-spice-protocol --enable-gio
    --enable-curses --enable-iconv --enable-brlapi
    --enable-libusb --enable-usb-redir --enable-smartcard
    # audio (Debian's list, less SDL, which is a GUI module)
    --enable-pipewire --enable-pa --enable-alsa --enable-jack --enable-oss
    --audio-drv-list=pipewire,pa,alsa,jack,oss
    # networking
    --enable-slirp --enable-slirp-smbd --enable-vde --enable-l2tpv3 --enable-bpf
    --enable-vhost-kernel --enable-vhost-net --enable-vhost-user
    --enable-vhost-vdpa --enable-vhost-crypto
    # storage: AIO, virtfs, exports, the image formats built into QEMU
    --enable-linux-aio --enable-linux-io-uring
    --enable-virtfs --enable-attr --enable-cap-ng
    --enable-fuse --enable-fuse-lseek
    --enable-vhost-user-blk-server --enable-libvduse --enable-vduse-blk-export
    --enable-bochs --enable-cloop --enable-dmg --enable-qcow1 --enable-vdi
    --enable-vhdx --enable-vmdk --enable-vpc --enable-vvfat --enable-qed
    --enable-parallels --enable-replication
    # crypto, compression, migration, the rest
    --enable-gnutls --enable-nettle --enable-zstd --enable-rdma
    --enable-seccomp --enable-tpm --enable-keyring --enable-multiprocess
    --enable-hv-balloon --enable-colo-proxy
)

log() { echo "qemu/build.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt, firmware links)"

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y --no-install-recommends "$@" >&2
}

missing_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed' ||
            echo "$p"
    done
}

# ---- dependencies --------------------------------------------------------
# Build: Debian 12 packages (the -dev packages of the features in
# CONFIGURE_ARGS), plus meson >= 1.5 and python3-pycotap from
# bookworm-backports.  Runtime firmware: seabios, ipxe-qemu, and the x86
# option ROMs (linuxboot_dma.bin, kvmvapic.bin, pvh.bin) of Debian 12's
# qemu-system-data, which configure cannot build without gcc-multilib.
install_deps() {
    local pkgs
    pkgs=$(missing_pkgs gcc make pkg-config ninja-build bzip2 xz-utils patch rsync \
        libglib2.0-dev libpixman-1-dev libfdt-dev libslirp-dev python3-venv \
        dpkg-dev seabios ipxe-qemu qemu-system-data \
        zlib1g-dev libcapstone-dev libnuma-dev libpmem-dev \
        libjpeg-dev libpng-dev libsasl2-dev libspice-server-dev \
        libspice-protocol-dev libncurses-dev libbrlapi-dev \
        libusb-1.0-0-dev libusbredirparser-dev libcacard-dev \
        libpipewire-0.3-dev libpulse-dev libasound2-dev libjack-jackd2-dev \
        libvdeplug-dev libbpf-dev libaio-dev liburing-dev libcap-ng-dev \
        libfuse3-dev libgnutls28-dev nettle-dev libzstd-dev \
        librdmacm-dev libibverbs-dev libseccomp-dev)
    if [ -n "$pkgs" ]; then
        log "installing: $pkgs"
        # shellcheck disable=SC2086
        apt_install $pkgs
    fi
    if ! /usr/bin/python3 - <<'EOF' 2>/dev/null
import subprocess, sys
v = subprocess.run(["meson", "--version"], capture_output=True, text=True).stdout
sys.exit(0 if tuple(map(int, v.split(".")[:2])) >= (1, 5) else 1)
EOF
    then
        need_sources
        log "installing meson from bookworm-backports"
        apt_install -t bookworm-backports meson
    fi
    if [ -n "$(missing_pkgs python3-pycotap)" ]; then
        need_sources
        log "installing python3-pycotap from bookworm-backports"
        apt_install -t bookworm-backports python3-pycotap
    fi
}

# The trixie deb-src and bookworm-backports entries, derived from the
# machine's own sources by the project's helper.
sources_done=
need_sources() {
    [ -z "$sources_done" ] || return 0
    sources_done=1
    if [ -x "$repo/build-aux/apt-sources.sh" ]; then
        "$repo/build-aux/apt-sources.sh" >&2
    fi
}

# ---- source tarballs -----------------------------------------------------
fetch_sources() {
    local have_debian
    mkdir -p "$cache"
    have_debian=$(ls "$cache"/qemu_"$QEMU_VERSION"+ds-*.debian.tar.xz 2>/dev/null | tail -n1 || true)
    if [ -f "$cache/$ORIG" ] && [ -n "$have_debian" ] &&
       echo "$ORIG_SHA256  $cache/$ORIG" | sha256sum -c --quiet - 2>/dev/null; then
        return 0
    fi
    if ! apt-cache showsrc qemu 2>/dev/null | grep -q "^Version: 1:$QEMU_VERSION+ds"; then
        need_sources
    fi
    log "fetching QEMU $QEMU_VERSION source from trixie into $cache"
    # The .dsc/.asc may answer 404 on some mirrors: what matters is that
    # the tarballs arrive, which the checks below establish.
    (cd "$cache" && apt-get -q source --download-only "qemu/trixie" >&2) ||
        log "apt-get source reported an error; checking what arrived"
    [ -f "$cache/$ORIG" ] || die "$ORIG did not download"
    echo "$ORIG_SHA256  $cache/$ORIG" | sha256sum -c --quiet - ||
        die "$ORIG: sha256 mismatch (want $ORIG_SHA256)"
    ls "$cache"/qemu_"$QEMU_VERSION"+ds-*.debian.tar.xz >/dev/null 2>&1 ||
        die "the Debian .debian.tar.xz for $QEMU_VERSION did not download"
}

debian_tarball() {
    ls "$cache"/qemu_"$QEMU_VERSION"+ds-*.debian.tar.xz | sort -V | tail -n1
}

# ---- source tree ---------------------------------------------------------
# $src/.localmig/ records what the tree was made from: base.key (tarball and
# Debian's patch) and series.key (our patches).

# unpack_into DIR: the pristine tarball plus Debian's patch plus our series.
unpack_into() {
    local dir=$1 p deb
    deb=$(debian_tarball)
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -xJf "$cache/$ORIG" -C "$dir" --no-same-owner
    [ -d "$dir/qemu-$QEMU_VERSION" ] ||
        die "$ORIG did not unpack to qemu-$QEMU_VERSION/"
    # Debian's fix for the +ds tarball, which lacks the edk2 blobs.
    tar -xOJf "$deb" "$DEBIAN_PATCH" |
        patch -d "$dir/qemu-$QEMU_VERSION" -p1 -F0 -N --batch --quiet ||
        die "Debian's $(basename "$DEBIAN_PATCH") does not apply"
    for p in "$here"/patches/*.patch; do
        [ -e "$p" ] || continue
        patch -d "$dir/qemu-$QEMU_VERSION" -p1 -F0 -N --batch --quiet \
            --no-backup-if-mismatch <"$p" >&2 ||
            die "patch $(basename "$p") does not apply to QEMU $QEMU_VERSION"
    done
}

series_key() {
    { cat "$here"/patches/*.patch 2>/dev/null || true; } |
        sha256sum | cut -d' ' -f1
}

prepare_source() {
    local base_key series new="$out/src.new"
    base_key=$( (echo "$ORIG_SHA256"; tar -xOJf "$(debian_tarball)" "$DEBIAN_PATCH") |
               sha256sum | cut -d' ' -f1)
    series=$(series_key)

    if [ "${LOCALMIG_QEMU_FRESH:-0}" != 1 ] &&
       [ "$(cat "$src/.localmig/base.key" 2>/dev/null)" = "$base_key" ]; then
        if [ "$(cat "$src/.localmig/series.key" 2>/dev/null)" = "$series" ]; then
            log "source tree up to date: $src"
            return 0
        fi
        # Same base, other patches: rewrite only the files whose content
        # changed, so that ninja rebuilds only what depends on them.
        log "patch series changed: updating the source tree in place"
        unpack_into "$new"
        rsync -rlc --delete --exclude=/.localmig \
            "$new/qemu-$QEMU_VERSION/" "$src/"
        rm -rf "$new"
        echo "$series" >"$src/.localmig/series.key"
        return 0
    fi

    log "unpacking $ORIG and applying the patches"
    unpack_into "$new"
    rm -rf "$out/src"
    mv "$new" "$out/src"
    mkdir -p "$src/.localmig"
    echo "$base_key" >"$src/.localmig/base.key"
    echo "$series" >"$src/.localmig/series.key"
    rm -rf "$build"     # a new tree gets a new configure
}

# ---- configure and build -------------------------------------------------
# Set when this run configured afresh: the build time is then reported.
fresh_t0=
configure_t=

configure_build() {
    local key
    key=$(printf '%s\n' "${CONFIGURE_ARGS[@]}" | sha256sum | cut -d' ' -f1)
    if [ -f "$build/build.ninja" ] &&
       [ "$(cat "$build/.localmig-configure.key" 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    log "configuring in $build"
    fresh_t0=$(date +%s)
    rm -rf "$build"
    mkdir -p "$build"
    # configure finds meson through --python; keep a pyenv python off PATH.
    (cd "$build" &&
     PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
         "$src/configure" "${CONFIGURE_ARGS[@]}" >configure.log 2>&1) || {
        tail -n 30 "$build/configure.log" >&2
        die "configure failed, see $build/configure.log"
    }
    echo "$key" >"$build/.localmig-configure.key"
    configure_t=$(( $(date +%s) - fresh_t0 ))
}

run_ninja() {
    log "building qemu-system-x86_64 (ninja, incremental)"
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        ninja -C "$build" -j"$(nproc)" qemu-system-x86_64 >&2 ||
        die "build failed"
    if [ -n "$fresh_t0" ]; then
        local now
        now=$(date +%s)
        log "fresh build: $((now - fresh_t0)) s" \
            "(configure $configure_t s, compile $((now - fresh_t0 - configure_t)) s," \
            "$(nproc) cores)"
    fi
    # Outside the build directory: there, a qemu-bundle/ next to the binary
    # would take precedence over the configured firmware path.
    mkdir -p "$bindir"
    if ! cmp -s "$build/qemu-system-x86_64" "$bindir/qemu-system-x86_64"; then
        install -m 0755 "$build/qemu-system-x86_64" "$bindir/qemu-system-x86_64.new"
        mv -f "$bindir/qemu-system-x86_64.new" "$bindir/qemu-system-x86_64"
    fi
}

# ---- one generation per emulator path --------------------------------------
# The binary exposes both generations of the TAP hand-over; a wrapper that
# sets QEMU_LOCALMIG_GENERATIONS stands for a binary that has only one
# (libvirt clears QEMU's environment, so the wrapper is the emulator).
# Rewritten only when it changes: libvirt probes an emulator again when its
# file changes.
write_generation_wrappers() {
    local gen w new
    for gen in v10 local; do
        w="$bindir/qemu-system-x86_64-$gen"
        new=$(printf '%s\n' '#!/bin/sh' \
            "# Generated by qemu/build.sh: the reference QEMU with only the $gen" \
            '# generation of the TAP hand-over.' \
            "QEMU_LOCALMIG_GENERATIONS=$gen exec $(printf %q "$bindir/qemu-system-x86_64") \"\$@\"")
        if [ ! -f "$w" ] || [ "$(cat "$w")" != "$new" ]; then
            printf '%s\n' "$new" >"$w.new"
            chmod 0755 "$w.new"
            mv -f "$w.new" "$w"
        fi
    done
}

# ---- runtime firmware ----------------------------------------------------
populate_firmware() {
    local f
    mkdir -p "$fwdir"
    for f in /usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom \
             /usr/share/qemu/{kvmvapic,linuxboot,linuxboot_dma,multiboot,multiboot_dma,pvh}.bin; do
        [ -e "$f" ] || continue
        ln -sfn "$f" "$fwdir/$(basename "$f")"
    done
    # VNC needs a keymap (-k, default en-us): QEMU 10.0's own, which it
    # finds under keymaps/ of any firmware directory.
    ln -sfn "$src/pc-bios/keymaps" "$fwdir/keymaps"
    for f in bios-256k.bin efi-virtio.rom kvmvapic.bin linuxboot_dma.bin pvh.bin \
             keymaps/en-us; do
        [ -e "$fwdir/$f" ] || die "firmware $f missing from $fwdir"
    done
}

main() {
    install_deps
    fetch_sources
    prepare_source
    configure_build
    run_ninja
    write_generation_wrappers
    populate_firmware
    "$bindir/qemu-system-x86_64" -version | head -n1 | grep -q "$QEMU_VERSION" ||
        die "the built binary does not run"
    {
        echo "# Generated by qemu/build.sh; source this file."
        printf 'QEMU_BIN=%q\n' "$bindir/qemu-system-x86_64"
        printf 'QEMU_BIN_V10=%q\n' "$bindir/qemu-system-x86_64-v10"
        printf 'QEMU_BIN_LOCAL=%q\n' "$bindir/qemu-system-x86_64-local"
        printf 'QEMU_FIRMWARE_DIR=%q\n' "$fwdir"
    } >"$out/qemu.env"
    cat "$out/qemu.env" | grep -v '^#'
}

main "$@"
