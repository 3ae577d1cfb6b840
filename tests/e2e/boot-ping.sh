#!/bin/bash
# Foundation test: the BUILT libvirt (embedded QEMU driver, run from the
# build dir) defines and starts the test guest on bridge br0 in a private
# network namespace; the guest answers pings; destroy and undefine leave
# nothing behind.  TAP output.
#
# Env: LIBVIRT_BUILDDIR (default _build/libvirt of this checkout),
#      LIBVIRT_WAIT (s to wait for a build in progress, default 0: skip),
#      QEMU (emulator, default /usr/bin/qemu-system-x86_64),
#      LOCALMIG_CACHE, BOOT_TIMEOUT (s, default 90), LM_KEEP=1.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}

lv_guest_test 11 boot

# Failure details worth seeing: libvirt's per-domain QEMU log and the
# guest's console.
show_logs() {
    tap_diag "libvirt QEMU log:" "$(tail -n 20 "$root/log/qemu/$dom.log" 2>/dev/null)"
    tap_diag "guest console:" "$(tail -n 20 "$serial" 2>/dev/null)"
}

# define also probes the QEMU binary's capabilities (cached in the root),
# which keeps that cost out of the start measurement below.
tap_check "define $dom (embedded driver in netns $LM_NS)" \
    lv_virsh "$root" define "$LM_TMP/$dom.xml" || tap_bail "define failed"

lm_nsexec "$LM_PINGSTAT" start "$LM_TMP/ping.log" "$GUEST_IP" >/dev/null
t0=$(lm_now)
if tap_check "start $dom" lv_virsh "$root" start "$dom"; then
    tap_diag "virsh start returned after $(lm_ms_since "$t0") ms"
else
    show_logs
    tap_bail "start failed"
fi

if lm_wait_until "$BOOT_TIMEOUT" grep "$GUEST_READY_MARKER" "$serial"; then
    tap_ok "guest console: $(grep -m1 "$GUEST_READY_MARKER" "$serial" | tr -d '\r')"
else
    tap_not_ok "guest console shows $GUEST_READY_MARKER"
fi

if "$LM_PINGSTAT" wait "$LM_TMP/ping.log" "$BOOT_TIMEOUT" >/dev/null; then
    sleep 1   # one second of steady state for the figures
    stats=$("$LM_PINGSTAT" stop "$LM_TMP/ping.log")
    first=$(sed -n 's/^first_reply_at=//p' <<<"$stats")
    tap_ok "guest answers pings; start-to-first-ping $(awk -v a="$t0" -v b="$first" 'BEGIN { printf "%d", (b - a) * 1000 }') ms"
    tap_diag "$stats"
else
    "$LM_PINGSTAT" stop "$LM_TMP/ping.log" >/dev/null || :
    tap_not_ok "guest answers pings"
    show_logs
fi

qemu_pid=$(lv_qemu_pid "$root" "$dom" || :)
if [ -n "$qemu_pid" ] && lm_pid_alive "$qemu_pid" &&
   ip netns pids "$LM_NS" | grep -x "$qemu_pid" >/dev/null; then
    tap_ok "QEMU runs in the namespace (pid $qemu_pid)"
else
    tap_not_ok "QEMU runs in the namespace (pid '${qemu_pid}')"
fi

tapdev=$(lv_domain_tap "$root" "$dom" || :)
if [ -n "$tapdev" ] &&
   ip -n "$LM_NS" -o link show dev "$tapdev" | grep " master $LM_BRIDGE " >/dev/null; then
    tap_ok "TAP $tapdev is a port of $LM_BRIDGE"
else
    tap_not_ok "TAP '$tapdev' is a port of $LM_BRIDGE"
    tap_diag "$(ip -n "$LM_NS" -o link show 2>&1)"
fi

tap_check "destroy $dom" lv_destroy "$root" "$dom" || :
if [ -n "$qemu_pid" ] && lm_wait_until 10 lm_pid_gone "$qemu_pid"; then
    tap_ok "QEMU exited after destroy"
else
    tap_not_ok "QEMU exited after destroy"
fi

tap_check "undefine $dom" lv_virsh "$root" undefine "$dom" || :

# The TAP must be gone with the domain (libvirt deletes the TAPs it made),
# so this looks before the namespace itself is removed.
tap_check "nothing left behind (process, TAP, socket)" \
    lm_leftovers --ns "$LM_NS" --match "$root" "$LM_TMP" || :
