#!/bin/bash
# Build the tiny test guest: an ELF kernel bootable through QEMU's PVH entry
# and a busybox initramfs that brings up virtio-net with a fixed address
# (and, when the realistic guest's devices are there, a second NIC, ticks on
# a serial port and a disk writer: see below).
#
# Output (outside the repository, reused across runs):
#   ${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest/
#     vmlinux             ELF kernel from Debian 12's default kernel package
#     initramfs.cpio.gz   busybox-static + virtio modules + /init
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
# What the realistic guest (tests/e2e/lib/realistic.sh) adds, each only if
# its device is there, so the one-NIC guest above behaves as before:
#   eth1 (a second virtio NIC): 198.18.1.2/24, or localmig.ip2=ADDR/PREFIX;
#   localmig.tick=TTY: "LOCALMIG-TICK n" to /dev/TTY every 0.5 s, so a
#     console attached to that serial port sees the guest alive; a line
#     "LOCALMIG-POWEROFF" typed there powers the guest off (ACPI);
#   /dev/vda (virtio-blk): the disk writer, see disk_writer in /init.
# And for the benchmark's memory dimension, localmig.dirty=MIB: the guest
# rewrites MIB MiB of its RAM (a file in its RAM-backed root, new non-zero
# content each pass), then rests 1 s, again and again: the stated share of
# its memory a migration must send again while the guest runs.
GUEST_IP2=198.18.1.2
GUEST_PREFIX2=24
TICK_MARKER=LOCALMIG-TICK
# a line with it typed on the tick port powers the guest off from inside
POWEROFF_COMMAND=LOCALMIG-POWEROFF
# on the console when the ACPI power button (virsh shutdown) powers it off
POWER_BUTTON_MARKER=LOCALMIG-POWER-BUTTON
DISK_START_MARKER=LOCALMIG-DISK-START
DISK_ACK_MARKER=LOCALMIG-DISK-ACK
DISK_ERROR_MARKER=LOCALMIG-DISK-ERROR
# One record is one 4096-byte block: 64 identical 64-byte lines
#   "LOCALMIG-REC n=%010d slot=%05d sum=%08x .............\n"
# with sum = (n * 2654435761 + slot) mod 2^32, written at block slot
# n % slots.  Every 512-byte sector holds n, so a torn write (sectors of
# two records) shows, and so does any flipped byte.  slots = the disk's
# size in blocks, at most 99999 (the slot field's width); the 64 MiB disk
# of tests/e2e/lib/guest-disk has 16384.
DISK_REC_SIZE=4096
DISK_SLOTS_MAX=99999
GUEST_DISK_MIB=64
GUEST_DISK_SLOTS=$((GUEST_DISK_MIB * 1024 * 1024 / DISK_REC_SIZE))
# pause between two records (s): the ring of 16384 slots lasts well beyond
# a test (the writer manages 5-20 records/s under TCG)
DISK_PACE=0.05
# Load order matters: there is no modules.dep in our initramfs.  virtio_blk,
# virtio_balloon and virtio-rng (module name virtio_rng) depend only on
# virtio and virtio_ring in Debian 12's kernel; hw_random itself is built in.
MODULES="failover net_failover virtio_ring virtio virtio_pci_modern_dev
virtio_pci_legacy_dev virtio_pci virtio_net virtio_blk virtio_balloon
virtio-rng"
# The ACPI power button (virsh shutdown --mode acpi) reaches the guest as a
# key on an input device: "button" makes the device, "evdev" the node the
# guest reads it from.  Either may be built into the kernel.
MODULES_IF_ANY="evdev button"

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
loaded=
for m in $MODULES $MODULES_IF_ANY; do
    src=$(find "$moddir" \( -name "$m.ko" -o -name "$m.ko.*" \) -print -quit)
    if [ -z "$src" ] && [[ " $MODULES_IF_ANY " == *" $m "* ]]; then
        log "module $m not in $kpkg: taken as built in"
        continue
    fi
    [ -n "$src" ] || die "module $m not found in $kpkg"
    loaded+=" $m"
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
echo $loaded >"$root/etc/modules-order"

cat >"$root/init" <<EOF
#!/bin/sh
# PID 1 of the localmig test guest: bring up eth0, say so, then idle.
# The address can be overridden with localmig.ip=ADDR/PREFIX on the kernel
# command line (dotted parameters are ignored by the kernel itself).
# With more devices (the realistic guest): eth1 (localmig.ip2=ADDR/PREFIX),
# ticks on localmig.tick=TTY, and the disk writer on /dev/vda; with
# localmig.dirty=MIB, MIB MiB of RAM rewritten every second or so.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

idle() { while :; do sleep 3600; done; }
fail() { echo "$FAIL_MARKER: \$*"; idle; }

# virtio_devices ID: how many virtio devices of type ID (1 net, 2 block)
virtio_devices() {
    c=0
    for d in /sys/bus/virtio/devices/*/device; do
        [ "\$(cat "\$d" 2>/dev/null)" = "\$1" ] && c=\$((c + 1))
    done
    echo \$c
}

# wait_for PATH WHAT: virtio probing may finish a little after insmod
# returns.
wait_for() {
    n=0
    while [ ! -e "\$1" ]; do
        n=\$((n + 1)); [ \$n -le 200 ] || fail "no \$2"
        sleep 0.05
    done
}

# The disk writer: record n (1, 2, ...) as one block at slot n % slots,
# written with fsync (a flush of the virtio-blk disk), so once dd returned
# the record is in the image; only then "$DISK_ACK_MARKER n" on the console.
# A failed write says "$DISK_ERROR_MARKER n=N ..." and the writer goes on
# with the next record.
disk_writer() {
    slots=\$1
    mkdir -p /tmp
    echo "$DISK_START_MARKER dev=/dev/vda slots=\$slots rec=$DISK_REC_SIZE"
    fmt='LOCALMIG-REC n=%010d slot=%05d sum=%08x .............\n'
    n=0
    while :; do
        n=\$((n + 1))
        slot=\$((n % slots))
        a="\$n \$slot \$(( (n * 2654435761 + slot) & 0xffffffff ))"
        # 64 copies of the arguments: printf repeats the format for them
        a="\$a \$a"; a="\$a \$a"; a="\$a \$a"; a="\$a \$a"; a="\$a \$a"; a="\$a \$a"
        printf "\$fmt" \$a >/tmp/rec
        if dd if=/tmp/rec of=/dev/vda bs=$DISK_REC_SIZE seek=\$slot count=1 \\
              conv=notrunc,sync,fsync 2>/tmp/dd.err; then
            echo "$DISK_ACK_MARKER \$n"
        else
            echo "$DISK_ERROR_MARKER n=\$n slot=\$slot: \$(tr '\n' ' ' </tmp/dd.err)"
            sleep 1
        fi
        sleep $DISK_PACE
    done
}

# The ACPI power button (virsh shutdown --mode acpi) powers the guest off,
# as a distribution's init would.  One input event is 24 bytes: a timeval
# (8 words of od -tu2), then type, code and value; a press of KEY_POWER
# (116) is EV_KEY (1) with value 1.  Sets buttons to how many it watches.
power_button() {
    buttons=0
    for n in /sys/class/input/event*; do
        [ "\$(cat "\$n/device/name" 2>/dev/null)" = "Power Button" ] || continue
        buttons=\$((buttons + 1))
        (exec 3<"/dev/input/\${n##*/}"
         while ev=\$(dd bs=24 count=1 <&3 2>/dev/null | od -An -v -tu2) &&
               [ -n "\$ev" ]; do
             set -- \$ev
             if [ "\$9" = 1 ] && [ "\${10}" = 116 ] && [ "\${11}" = 1 ]; then
                 echo "$POWER_BUTTON_MARKER: powering off" >/dev/console
                 sync; poweroff -f
             fi
         done) &
    done
}

addr=$GUEST_IP/$GUEST_PREFIX
addr2=$GUEST_IP2/$GUEST_PREFIX2
tick=
dirty=
for arg in \$(cat /proc/cmdline); do
    case "\$arg" in
        localmig.ip=*) addr=\${arg#localmig.ip=} ;;
        localmig.ip2=*) addr2=\${arg#localmig.ip2=} ;;
        localmig.tick=*) tick=\${arg#localmig.tick=} ;;
        localmig.dirty=*) dirty=\${arg#localmig.dirty=} ;;
    esac
done

for m in \$(cat /etc/modules-order); do
    insmod /lib/modules/\$m.ko || fail "insmod \$m"
done
wait_for /sys/class/net/eth0 eth0
ip link set lo up
ip addr add "\$addr" dev eth0 || fail "ip addr add \$addr"
ip link set eth0 up || fail "eth0 up"
extra=
if [ "\$(virtio_devices 0x0001)" -ge 2 ]; then
    wait_for /sys/class/net/eth1 eth1
    ip addr add "\$addr2" dev eth1 || fail "ip addr add \$addr2 dev eth1"
    ip link set eth1 up || fail "eth1 up"
    extra="\$extra addr2=\$addr2 mac2=\$(cat /sys/class/net/eth1/address)"
fi
slots=
if [ "\$(virtio_devices 0x0002)" -ge 1 ]; then
    wait_for /dev/vda vda
    slots=\$((\$(cat /sys/block/vda/size) * 512 / $DISK_REC_SIZE))
    [ \$slots -le $DISK_SLOTS_MAX ] || slots=$DISK_SLOTS_MAX
    [ \$slots -ge 2 ] || fail "vda too small"
    extra="\$extra disk=vda slots=\$slots"
fi
if [ -n "\$tick" ]; then
    [ -c "/dev/\$tick" ] || fail "no /dev/\$tick for localmig.tick"
    extra="\$extra tick=\$tick"
fi
power_button
extra="\$extra power-buttons=\$buttons"
[ -z "\$dirty" ] || extra="\$extra dirty=\${dirty}MiB"
echo "$READY_MARKER addr=\$addr mac=\$(cat /sys/class/net/eth0/address)\$extra uptime=\$(cut -d' ' -f1 /proc/uptime)"
if [ -n "\$tick" ]; then
    # kept open: no open/close (and no hangup) of the port per line
    (exec >"/dev/\$tick" 2>&1
     i=0
     while :; do i=\$((i + 1)); echo "$TICK_MARKER \$i"; sleep 0.5; done) &
    # the guest shutting itself down, when a test asks on that port
    (exec <"/dev/\$tick"
     while read -r line; do
         case "\$line" in
             *$POWEROFF_COMMAND*)
                 echo "$POWEROFF_COMMAND: powering off" >/dev/console
                 sync; poweroff -f ;;
         esac
     done) &
fi
[ -z "\$slots" ] || disk_writer "\$slots" >/dev/console 2>&1 &
if [ -n "\$dirty" ]; then
    (i=0
     while :; do
         i=\$((i + 1))
         yes "LOCALMIG-DIRTY pass \$i" |
             dd of=/dirty bs=1M count="\$dirty" iflag=fullblock conv=notrunc 2>/dev/null
         sleep 1
     done) &
fi
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
    # the realistic guest (tests/e2e/lib/realistic.sh)
    printf 'GUEST_IP2=%q\n' "$GUEST_IP2"
    printf 'GUEST_PREFIX2=%q\n' "$GUEST_PREFIX2"
    printf 'GUEST_TICK_MARKER=%q\n' "$TICK_MARKER"
    printf 'GUEST_POWEROFF_COMMAND=%q\n' "$POWEROFF_COMMAND"
    printf 'GUEST_POWER_BUTTON_MARKER=%q\n' "$POWER_BUTTON_MARKER"
    printf 'GUEST_DISK_MIB=%q\n' "$GUEST_DISK_MIB"
    printf 'GUEST_DISK_SLOTS=%q\n' "$GUEST_DISK_SLOTS"
    printf 'GUEST_DISK_REC_SIZE=%q\n' "$DISK_REC_SIZE"
    printf 'GUEST_DISK_START_MARKER=%q\n' "$DISK_START_MARKER"
    printf 'GUEST_DISK_ACK_MARKER=%q\n' "$DISK_ACK_MARKER"
    printf 'GUEST_DISK_ERROR_MARKER=%q\n' "$DISK_ERROR_MARKER"
} >"$cache/guest.env"
echo "$key" >"$cache/build.stamp"
log "done: $cache/guest.env"
