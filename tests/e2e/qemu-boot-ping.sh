#!/bin/bash
# Boot the test guest under plain QEMU (no libvirt) on a TAP in a private
# network namespace and check that it answers pings.  This proves the guest,
# the namespace helpers and pingstat independently of libvirt, and gives the
# reference start-to-first-ping time.
#
# Env: QEMU (default /usr/bin/qemu-system-x86_64), QEMU_EXTRA_ARGS (e.g.
#      "-L DIR" for a built QEMU's firmware), LOCALMIG_CACHE,
#      LM_KEEP=1 to keep the scratch dir, BOOT_TIMEOUT (s, default 90).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
TAP=lmtap0

tap_plan 7
[ "$(id -u)" = 0 ] || tap_bail "must run as root"

tap_check "guest image built" "$LM_E2E_DIR/guest/build-guest.sh" ||
    tap_bail "no guest image"
. "${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest/guest.env"

lm_tmpdir
lm_netns_create qemu
# A TAP owned by the namespace, enslaved to br0, opened by QEMU by name.
ip -n "$LM_NS" tuntap add dev "$TAP" mode tap
ip -n "$LM_NS" link set "$TAP" master "$LM_BRIDGE" up
tap_ok "netns $LM_NS with $LM_BRIDGE and $TAP"

# Ping from the start, so the first reply measures boot-to-network.
lm_nsexec "$LM_PINGSTAT" start "$LM_TMP/ping.log" "$GUEST_IP" >/dev/null
t0=$(lm_now)
# romfile= : no NIC option ROM; with -kernel SeaBIOS would only scan it.
# `ip netns exec` execs QEMU, so $! is QEMU's pid.
# shellcheck disable=SC2086  # QEMU_EXTRA_ARGS: split into arguments
ip netns exec "$LM_NS" "$QEMU" -accel tcg -machine pc -m "$GUEST_MEM_MIB" -smp 1 \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" -append "$GUEST_CMDLINE" \
    -netdev tap,id=net0,ifname="$TAP",script=no,downscript=no,vhost=off \
    -device virtio-net-pci,netdev=net0,mac=52:54:00:4c:4d:02,romfile= \
    -serial file:"$LM_TMP/serial.log" ${QEMU_EXTRA_ARGS:-} \
    >"$LM_TMP/qemu.log" 2>&1 &
qemu_pid=$!
sleep 0.2
if lm_pid_alive "$qemu_pid"; then
    tap_ok "QEMU started (pid $qemu_pid)"
else
    tap_not_ok "QEMU started"
    tap_diag "$(cat "$LM_TMP/qemu.log")"
    tap_bail "QEMU did not start"
fi

if lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$LM_TMP/serial.log"; then
    tap_ok "guest init reports ready after $(lm_ms_since "$t0") ms: $(grep -m1 "$GUEST_READY_MARKER" "$LM_TMP/serial.log" | tr -d '\r')"
else
    tap_not_ok "guest init reports ready"
    tap_diag "serial console:" "$(tail -n 30 "$LM_TMP/serial.log")"
fi

if "$LM_PINGSTAT" wait "$LM_TMP/ping.log" "$BOOT_TIMEOUT" >/dev/null; then
    sleep 1   # a second of steady-state pings for the figures below
    stats=$("$LM_PINGSTAT" stop "$LM_TMP/ping.log")
    first=$(sed -n 's/^first_reply_at=//p' <<<"$stats")
    boot_ms=$(awk -v a="$t0" -v b="$first" 'BEGIN { printf "%d", (b - a) * 1000 }')
    tap_ok "guest answers pings; start-to-first-ping ${boot_ms} ms"
    tap_diag "$stats"
else
    "$LM_PINGSTAT" stop "$LM_TMP/ping.log" >/dev/null || :
    tap_not_ok "guest answers pings"
    tap_diag "serial console:" "$(tail -n 30 "$LM_TMP/serial.log")"
fi

# SIGTERM makes QEMU shut down cleanly.
kill -TERM "$qemu_pid"
if lm_wait_until 10 lm_pid_gone "$qemu_pid"; then
    tap_ok "QEMU stopped"
else
    tap_not_ok "QEMU stopped"
fi
wait "$qemu_pid" 2>/dev/null || :

ip -n "$LM_NS" link del "$TAP"
tap_check "nothing left behind" lm_leftovers --ns "$LM_NS" --match "$LM_TMP" "$LM_TMP" || :
