#!/bin/bash
# Local migration with backend transfer (virsh migrate --live
# --local-backend-transfer) of a real guest under the built libvirt and the
# reference QEMU, pinged every 10 ms from its namespace: the new QEMU holds
# the very TAP the old one had (same name, ifindex, bridge port, an open
# queue fd in the new process), no packet is lost, and the largest gap is
# printed beside a classic local migration's on the same guest.  On Debian
# 12's QEMU 7.2 backend transfer is refused before anything starts.
# TAP output.
#
# Env: as local-migrate.sh; the reference QEMU comes from qemu/build.sh.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
top=$(cd "$LM_E2E_DIR/../.." && pwd)
TAPTOOL="/usr/bin/python3 $top/qemu/tests/taptool.py"
STOCK_QEMU=/usr/bin/qemu-system-x86_64

qemu_env=${LOCALMIG_BUILD_ROOT:-$top/_build}/qemu/qemu.env
[ -f "$qemu_env" ] || tap_skip_all "no reference QEMU: run qemu/build.sh (./localmig build)"
. "$qemu_env"
[ -x "$QEMU_BIN" ] || tap_skip_all "$QEMU_BIN missing: run qemu/build.sh"
QEMU=$QEMU_BIN
LV_NET_XML="
      <backend transfer='on'/>"

lv_guest_test 14 bt

# tap_identity: "name ifindex bridge-port" of the domain's TAP
tap_identity() {
    local tap
    tap=$(lv_domain_tap "$root" "$dom")
    [ -n "$tap" ] || return 1
    echo "$tap $(ip netns exec "$LM_NS" cat "/sys/class/net/$tap/ifindex")" \
         "$(ip netns exec "$LM_NS" cat "/sys/class/net/$tap/brport/port_no" 2>/dev/null)"
}

# holders TAP: the QEMU pids holding a queue fd of TAP, from fdinfo
holders() {
    local p
    for p in $(qemu_pids); do
        $TAPTOOL fds "$p" | awk -v t="$1" '$2 == t { found = 1 } END { exit !found }' &&
            echo "$p"
    done
}

tap_check "define and start $dom on the reference QEMU with <backend transfer='on'/>" \
    lv_virsh "$root" "define $LM_TMP/$dom.xml; start $dom" || { show_logs; tap_bail "start failed"; }
lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial" ||
    tap_bail "guest did not boot"
tap_check "guest answers pings" answers || tap_bail "no ping"

if grep -q "backend-transfer=on\|\"backend-transfer\":true" "$root/log/qemu/$dom.log"; then
    tap_ok "virtio-net started with backend-transfer=on"
else
    tap_not_ok "virtio-net started with backend-transfer=on"
    tap_diag "$(grep -o -- '-device [^ ]*virtio-net[^ ]*' "$root/log/qemu/$dom.log" | tail -n1)"
fi

# --- backend transfer ------------------------------------------------
pid0=$(lv_qemu_pid "$root" "$dom")
id0=$(tap_identity)
read -r tap0 _ <<<"$id0"
tap_diag "before: QEMU $pid0, TAP (name ifindex bridge-port) $id0," \
    "held by $(holders "$tap0" | tr '\n' ' ')" \
    "$($TAPTOOL state "$pid0" "$($TAPTOOL fds "$pid0" | awk -v t="$tap0" '$2 == t { print $1; exit }')" | tr '\n' ' ')"
t0=$(lm_now)
if pinged lv_virsh "$root" migrate --live --local-backend-transfer --verbose "$dom" \
        >"$LM_TMP/migrate.out" 2>&1; then
    tap_ok "migrate --live --local-backend-transfer ($(lm_ms_since "$t0") ms incl. ping tail)"
else
    tap_not_ok "migrate --live --local-backend-transfer"
    tap_diag "$(cat "$LM_TMP/migrate.out")"
    show_logs
fi
bt_gap=$(stat_of max_gap_ms); bt_lost=$(stat_of lost_after_first_reply)
pid1=$(lv_qemu_pid "$root" "$dom")
if [ -n "$pid1" ] && [ "$pid1" != "$pid0" ] && lm_pid_alive "$pid1" &&
   lm_wait_until 10 lm_pid_gone "$pid0"; then
    tap_ok "QEMU pid $pid0 -> $pid1, the old process is gone"
else
    tap_not_ok "QEMU pid changed ($pid0 -> '$pid1')"
fi
id1=$(tap_identity || :)
if [ -n "$id1" ] && [ "$id1" = "$id0" ]; then
    tap_ok "the same TAP, ifindex and bridge port: $id1"
else
    tap_not_ok "the same TAP, ifindex and bridge port ($id0 -> '$id1')"
fi
h=$(holders "$tap0" | tr '\n' ' ')
if [ "$h" = "$pid1 " ]; then
    tap_ok "the new QEMU $pid1 holds the TAP's queue fd, no other process does"
else
    tap_not_ok "the new QEMU holds the TAP ('$h')"
fi
tap_diag "after: $($TAPTOOL state "$pid1" "$($TAPTOOL fds "$pid1" | awk -v t="$tap0" '$2 == t { print $1; exit }')" 2>&1 | tr '\n' ' ')"
if [ "$(stat_of received)" -gt 0 ] && [ "$bt_lost" -eq 0 ] &&
   [ "$(stat_of unanswered_tail)" -eq 0 ]; then
    tap_ok "no packet lost; largest ping gap $bt_gap ms"
else
    tap_not_ok "no packet lost (lost $bt_lost, largest gap $bt_gap ms)"
    tap_diag "$(cat "$LM_TMP/last.stats")"
fi
info=$(lv_virsh "$root" dominfo "$dom")
if grep -q '^State: *running' <<<"$info" && grep -q '^Persistent: *yes' <<<"$info"; then
    tap_ok "domain running and still persistent"
else
    tap_not_ok "domain running and still persistent"
    tap_diag "$info"
fi

# --- classic local migration of the same guest, for comparison -------
if pinged lv_virsh "$root" migrate --live --local "$dom" >"$LM_TMP/migrate.out" 2>&1 &&
   [ "$(tap_identity | cut -d' ' -f1)" != "$tap0" ]; then
    tap_ok "classic --local on the same guest: new TAP; largest gap $(stat_of max_gap_ms) ms, $(stat_of lost_after_first_reply) lost (backend transfer: $bt_gap ms, $bt_lost lost)"
else
    tap_not_ok "classic --local on the same guest"
    tap_diag "$(cat "$LM_TMP/migrate.out")"
fi

# --- Debian 12's QEMU: the same guest without the attribute, which QEMU
# 7.2 cannot start, restarted on it; backend transfer is refused before
# anything starts
pid=$(lv_qemu_pid "$root" "$dom")
lv_destroy "$root" "$dom" >/dev/null || :
lm_wait_until 10 lm_pid_gone "$pid" || :
: >"$serial"
QEMU=$STOCK_QEMU LV_NET_XML= lv_domain_xml "$dom" "$serial" >"$LM_TMP/stock.xml"
if lv_virsh "$root" "undefine $dom" >/dev/null &&
   lv_virsh "$root" "define $LM_TMP/stock.xml; start $dom" >/dev/null &&
   lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial"; then
    pid=$(lv_qemu_pid "$root" "$dom")
    if out=$(lv_virsh "$root" migrate --live --local-backend-transfer "$dom" 2>&1); then
        tap_not_ok "--local-backend-transfer on QEMU 7.2 refused (it succeeded)"
    elif grep -q "running QEMU binary '$STOCK_QEMU'.*lacks" <<<"$out" && one_qemu &&
         [ "$(lv_qemu_pid "$root" "$dom")" = "$pid" ] && answers; then
        tap_ok "--local-backend-transfer on QEMU 7.2 refused, guest untouched: $(tr '\n' ' ' <<<"$out" | sed 's/^error: //')"
    else
        tap_not_ok "--local-backend-transfer on QEMU 7.2 refused naming the binary, guest untouched"
        tap_diag "$out"
    fi
else
    tap_not_ok "the guest restarted on QEMU 7.2"
    show_logs
fi

pid=$(lv_qemu_pid "$root" "$dom")
tap_check "destroy and undefine" lv_virsh "$root" "domstats $dom; destroy $dom; undefine $dom" || :
lm_wait_until 10 lm_pid_gone "$pid" || :
tap_check "nothing left behind (processes, sockets, TAPs, dirs)" \
    lm_leftovers --ns "$LM_NS" --match "$root" "$LM_TMP" || :
