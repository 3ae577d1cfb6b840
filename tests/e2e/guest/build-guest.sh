#!/bin/bash
# Build the tiny test guest: an ELF kernel bootable through QEMU's PVH entry
# and a busybox initramfs that brings up virtio-net with a fixed address.
#
# Output (outside the repository, reused across runs):
#   ${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest/
#     vmlinux             ELF kernel from Debian 12's default kernel package
#     initramfs.cpio.gz   busybox-static + virtio-net modules + /init
#     guest.env           shell variables describing the guest (source it)
#
# Idempotent: the build is keyed on the sha256 of this script and the
# extractor; when neither changed, it returns at once (remove build.stamp to
# force a rebuild, e.g. to pick up a newer Debian kernel).
# Needs root only for apt (busybox-static if missing) and the /dev/console
# node in the initramfs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
extractor="$here/extract-vmlinux.py"
cache="${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest"

# The guest is fixed by the test design: one NIC, 198.18.0.2/24 on the
# namespace's bridge (198.18.0.1), 256 MiB of RAM.
GUEST_IP=198.18.0.2
GUEST_PREFIX=24
GUEST_MEM_MIB=256
READY_MARKER=LOCALMIG-GUEST-READY
FAIL_MARKER=LOCALMIG-GUEST-FAILED
# Load order matters: there is no modules.dep in our initramfs.
MODULES="failover net_failover virtio_ring virtio virtio_pci_modern_dev
virtio_pci_legacy_dev virtio_pci virtio_net"

log() { echo "build-guest: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$cache"

# Two test runs may build at the same time; serialise them on a lock file.
exec 9>"$cache/.lock"
flock 9

# Fast path first (no apt queries): the stamp holds the hash of the build
# scripts that produced the current files.
key=$(cat "${BASH_SOURCE[0]}" "$extractor" | sha256sum | cut -d' ' -f1)
if [ -f "$cache/build.stamp" ] && [ "$(cat "$cache/build.stamp")" = "$key" ] &&
   [ -s "$cache/vmlinux" ] && [ -s "$cache/initramfs.cpio.gz" ] &&
   [ -s "$cache/guest.env" ]; then
    log "up to date: $cache/guest.env"
    exit 0
fi
rm -f "$cache/build.stamp"

# Which kernel package does linux-image-amd64 point at today?
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !p { print $2; p = 1 }')
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64's kernel package"
kver=${kpkg#linux-image-}
log "building guest for kernel $kver into $cache"

# busybox-static provides a self-contained /bin/busybox for the initramfs.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q ' installed'; then
    log "installing busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y --no-install-recommends busybox-static >&2
fi
busybox=$(dpkg -L busybox-static | awk '/\/busybox$/ && !p { print; p = 1 }')
[ -x "$busybox" ] || die "busybox-static ships no busybox binary?"

work=$(mktemp -d "$cache/.work.XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

# Fetch the kernel package without installing it.  apt drops privileges to
# _apt for downloads, so give it the directory to avoid a warning.
mkdir "$work/dl"
chown _apt "$work/dl" 2>/dev/null || true
(cd "$work/dl" && apt-get -o DPkg::Lock::Timeout=600 -q download "$kpkg" >&2)
dpkg -x "$work"/dl/"$kpkg"_*.deb "$work/pkg"

# ELF kernel: booting it through the PVH entry skips the bzImage's xz
# decompressor, which is the slowest part of a boot under TCG.
/usr/bin/python3 "$extractor" "$work/pkg/boot/vmlinuz-$kver" "$work/vmlinux" >&2

# --- initramfs ---------------------------------------------------------------
root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,etc,lib/modules}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
# The kernel opens /dev/console for init before anything is mounted.
mknod -m 600 "$root/dev/console" c 5 1

# Modules, decompressed here so the guest's busybox insmod sees plain ELF.
moddir="$work/pkg/lib/modules/$kver"
for m in $MODULES; do
    src=$(find "$moddir" \( -name "$m.ko" -o -name "$m.ko.*" \) -print -quit)
    [ -n "$src" ] || die "module $m not found in $kpkg"
    case "$src" in
        *.ko) cp "$src" "$root/lib/modules/$m.ko" ;;
        *.ko.xz) xz -dc "$src" >"$root/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$src" >"$root/lib/modules/$m.ko" ;;
        *.ko.gz) gzip -dc "$src" >"$root/lib/modules/$m.ko" ;;
        *) die "unknown module compression: $src" ;;
    esac
done
# Unquoted on purpose: one line, names separated by single spaces.
# shellcheck disable=SC2086
echo $MODULES >"$root/etc/modules-order"

cat >"$root/init" <<EOF
#!/bin/sh
# PID 1 of the localmig test guest: bring up eth0, say so, then idle.
# The address can be overridden with localmig.ip=ADDR/PREFIX on the kernel
# command line (dotted parameters are ignored by the kernel itself).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

idle() { while :; do sleep 3600; done; }
fail() { echo "$FAIL_MARKER: \$*"; idle; }

addr=$GUEST_IP/$GUEST_PREFIX
for arg in \$(cat /proc/cmdline); do
    case "\$arg" in localmig.ip=*) addr=\${arg#localmig.ip=} ;; esac
done

for m in \$(cat /etc/modules-order); do
    insmod /lib/modules/\$m.ko || fail "insmod \$m"
done
# virtio probing may finish a little after insmod returns.
n=0
while [ ! -e /sys/class/net/eth0 ]; do
    n=\$((n + 1)); [ \$n -le 200 ] || fail "no eth0"
    sleep 0.05
done
ip link set lo up
ip addr add "\$addr" dev eth0 || fail "ip addr add \$addr"
ip link set eth0 up || fail "eth0 up"
echo "$READY_MARKER addr=\$addr mac=\$(cat /sys/class/net/eth0/address) uptime=\$(cut -d' ' -f1 /proc/uptime)"
idle
EOF
chmod 755 "$root/init"

# Fixed ownership and sorted names keep the archive independent of the host.
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0) | gzip -9n >"$work/initramfs.cpio.gz"

# --- publish -----------------------------------------------------------------
mv -f "$work/vmlinux" "$cache/vmlinux"
mv -f "$work/initramfs.cpio.gz" "$cache/initramfs.cpio.gz"
{
    echo "# Generated by tests/e2e/guest/build-guest.sh; source this file."
    printf 'GUEST_KERNEL=%q\n' "$cache/vmlinux"
    printf 'GUEST_INITRD=%q\n' "$cache/initramfs.cpio.gz"
    printf 'GUEST_KERNEL_VERSION=%q\n' "$kver"
    # quiet: fewer serial writes while booting; panic=-1: reboot (and so
    # exit with on_reboot=destroy / -no-reboot) instead of hanging.
    printf 'GUEST_CMDLINE=%q\n' "console=ttyS0 quiet panic=-1"
    printf 'GUEST_IP=%q\n' "$GUEST_IP"
    printf 'GUEST_PREFIX=%q\n' "$GUEST_PREFIX"
    printf 'GUEST_MEM_MIB=%q\n' "$GUEST_MEM_MIB"
    printf 'GUEST_READY_MARKER=%q\n' "$READY_MARKER"
    printf 'GUEST_FAIL_MARKER=%q\n' "$FAIL_MARKER"
} >"$cache/guest.env"
echo "$key" >"$cache/build.stamp"
log "done: $cache/guest.env"
