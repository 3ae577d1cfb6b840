#!/bin/bash
# Local migration (virsh migrate --live --local) of a real guest with
# classic networking under the built libvirt and Debian 12's QEMU, pinged
# every 10 ms from its namespace: success twice in a row, refusals, faults
# (domjobabort, the new QEMU killed, the daemon killed), then destroy,
# start, destroy with nothing left over.  TAP output.
#
# Env: as boot-ping.sh (LIBVIRT_BUILDDIR, LIBVIRT_WAIT, QEMU, LM_KEEP).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
# slow enough for a fault to land mid-migration (MiB/s)
SLOW_BANDWIDTH=${SLOW_BANDWIDTH:-2}

lv_guest_test 31 local

tap_check "define and start $dom" \
    lv_virsh "$root" "define $LM_TMP/$dom.xml; start $dom" || { show_logs; tap_bail "start failed"; }
lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial" ||
    tap_bail "guest did not boot"
tap_check "guest answers pings" answers || tap_bail "no ping"

# --- success, twice ---------------------------------------------------
for round in 1 2; do
    tap0=$(lv_domain_tap "$root" "$dom")
    migrate_pinged "#$round: migrate --live --local" --live --local --verbose "$dom"
    gap=$(stat_of max_gap_ms); lost=$(stat_of lost_after_first_reply)
    if [ "$(stat_of received)" -gt 0 ] && [ "$(stat_of unanswered_tail)" -le 1 ]; then
        tap_ok "#$round: guest answered throughout; largest ping gap $gap ms, $lost packets lost"
    else
        tap_not_ok "#$round: guest answers after the migration"
        tap_diag "$(cat "$LM_TMP/last.stats")"
    fi
    info=$(lv_virsh "$root" dominfo "$dom")
    if grep -q '^State: *running' <<<"$info" && grep -q '^Persistent: *yes' <<<"$info"; then
        tap_ok "#$round: domain running and still persistent"
    else
        tap_not_ok "#$round: domain running and still persistent"
        tap_diag "$info"
    fi
    tap1=$(lv_domain_tap "$root" "$dom")
    if [ -n "$tap1" ] && [ "$tap1" != "$tap0" ] &&
       ip -n "$LM_NS" -o link show dev "$tap1" | grep -q " master $LM_BRIDGE " &&
       ! ip -n "$LM_NS" link show dev "$tap0" >/dev/null 2>&1; then
        tap_ok "#$round: new TAP $tap1 on $LM_BRIDGE, old TAP $tap0 removed"
    else
        tap_not_ok "#$round: new TAP on the bridge ($tap0 -> '$tap1')"
    fi
done

# --- refusals ---------------------------------------------------------
# refused NAME PATTERN ARGS...: the migrate command fails, its error
# matches PATTERN, and the domain is untouched (same single QEMU).
refused() {
    local name=$1 pattern=$2 pid out; shift 2
    pid=$(lv_qemu_pid "$root" "$dom")
    if out=$(lv_virsh "$root" migrate --domain "$dom" "$@" 2>&1); then
        tap_not_ok "$name refused (it succeeded)"
    elif grep -q -- "$pattern" <<<"$out" && one_qemu &&
         [ "$(lv_qemu_pid "$root" "$dom")" = "$pid" ]; then
        tap_ok "$name refused, domain untouched: $(tr '\n' ' ' <<<"$out" | sed 's/^error: //')"
    else
        tap_not_ok "$name refused with a message matching '$pattern', domain untouched"
        tap_diag "$out"
    fi
}

# (a localhost URI: the client refuses it before connecting; connecting
# would open a second embedded driver on the root inside this virsh)
refused "same host without --local" "--local" \
    --live --p2p "qemu+ssh://localhost/system"
refused "--local --tls" "VIR_MIGRATE_TLS" --live --local --tls
refused "--local --p2p --tunnelled" "VIR_MIGRATE_TUNNELLED" \
    --live --local --p2p --tunnelled "qemu:///embed?root=$root"
refused "--local to another driver" "--local" --live --local test:///default
refused "--local --copy-storage-all" "VIR_MIGRATE_NON_SHARED_DISK" \
    --live --local --copy-storage-all
tap_check "guest still answers after the refusals" answers

# --- faults -----------------------------------------------------------
# after_fault NAME: exactly one QEMU, the original one, and the guest
# answers pings (after a later virsh has reconnected).
after_fault() {
    local name=$1
    if one_qemu && [ "$(lv_qemu_pid "$root" "$dom")" = "$old" ] && answers &&
       lv_virsh "$root" domstate "$dom" | grep -q running; then
        tap_ok "$name: guest answers on its original QEMU $old, the only one; gap $(stat_of max_gap_ms) ms"
    else
        tap_not_ok "$name: guest answers on exactly one QEMU (the original $old)"
        tap_diag "QEMUs: $(qemu_pids | tr '\n' ' ') pidfile: $(lv_qemu_pid "$root" "$dom")"
        tap_diag "$(cat "$LM_TMP/slow.out" 2>/dev/null)"
        show_logs
    fi
}

fault_abort --local
fault_kill_new --local
fault_kill_daemon --local

# --- a migration still works, then the domain's whole life ------------
old=$(lv_qemu_pid "$root" "$dom")
tap_check "a local migration after the faults" \
    lv_virsh "$root" migrate --live --local "$dom"
pid=$(lv_qemu_pid "$root" "$dom")
tap_check "destroy" lv_destroy "$root" "$dom" || :
lm_wait_until 10 lm_pid_gone "$pid" || :
if lv_virsh "$root" start "$dom" && answers; then
    tap_ok "start again, the guest boots and answers"
else
    tap_not_ok "start again, the guest boots and answers"
    show_logs
fi
lv_guest_end
if [ -z "$(ls "$root/run/qemu/$dom"*.pid 2>/dev/null)" ] &&
   [ -z "$(ls -d "$root/lib/qemu/domain-"* 2>/dev/null)" ]; then
    tap_ok "no pidfile or per-process directory left in the root"
else
    tap_not_ok "no pidfile or per-process directory left"
    tap_diag "$(ls "$root/run/qemu/" "$root/lib/qemu/" 2>&1)"
fi
