#!/bin/bash
# Local migration with backend transfer (virsh migrate --live
# --local-backend-transfer) of a real guest under the built libvirt and the
# reference QEMU, pinged every 10 ms from its namespace.  The guest has two
# interfaces with <backend transfer='on'/>: a bridge one with queues=2 (the
# pings go through it) and an ethernet one whose <script>/<downscript> log
# their calls.  Checks:
#   - after the migration the new QEMU holds the very TAPs the old one had
#     (name, ifindex, bridge port, both queues; virt-tap-info), no packet is
#     lost, and the largest gap is printed beside a classic local
#     migration's on the same guest;
#   - faults (domjobabort, the new QEMU killed, the daemon killed): the
#     guest keeps answering on its original QEMU, which still holds the
#     same TAPs;
#   - the ifup script ran once at start and the ifdown script once at the
#     final destroy, whatever succeeded or failed in between;
#   - on Debian 12's QEMU 7.2 backend transfer is refused before anything
#     starts, naming the binary and what it lacks.
# TAP output.
#
# Usage: backend-transfer.sh [v10|upstream]
#   v10 (default): the reference QEMU exposing only the v10 generation.
#   upstream: the reference QEMU exposing both; libvirt must choose the
#     newer one (`local`, netdev_add after the parameter).  Its last part
#     is then, instead of QEMU 7.2, a pair of binaries with no generation
#     in common (v10 only, upstream only), refused naming the binary.
#
# Env: as local-migrate.sh; the reference QEMU comes from qemu/build.sh.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
SLOW_BANDWIDTH=${SLOW_BANDWIDTH:-2}
STOCK_QEMU=/usr/bin/qemu-system-x86_64

lv_reference_qemu
GEN=${1:-v10}
case $GEN in
    v10) QEMU=${QEMU_BIN_V10:-}; param=backend-transfer; conv_more=
         startprop='"backend-transfer":true' ;;
    upstream) QEMU=$QEMU_BIN; param=local
         conv_more=" (the newer generation; the new process's netdev_add and device_add after it)"
         startprop='"local-migration-supported":true' ;;
    *) echo "usage: $0 [v10|upstream]" >&2; exit 2 ;;
esac
[ -x "$QEMU_BIN" ] && [ -x "$QEMU" ] ||
    tap_skip_all "${QEMU:-the v10 wrapper} missing: run qemu/build.sh"

lv_guest_test 25 bt

# the ethernet interface's scripts log "up TAP" / "down TAP"
scripts=$LM_TMP/ifscripts.log
for dir in up down; do
    printf '#!/bin/sh\necho "%s $1" >>%s\n' "$dir" "$scripts" >"$LM_TMP/if$dir.sh"
    chmod +x "$LM_TMP/if$dir.sh"
done
: >"$scripts"
LV_NET_XML="
      <driver queues='2'/>
      <backend transfer='on'/>"
LV_DEVICES_XML="    <interface type='ethernet'>
      <mac address='52:54:00:4c:4d:12'/>
      <script path='$LM_TMP/ifup.sh'/>
      <downscript path='$LM_TMP/ifdown.sh'/>
      <model type='virtio'/>
      <rom enabled='no'/>
      <backend transfer='on'/>
    </interface>"
lv_domain_xml "$dom" "$serial" >"$LM_TMP/$dom.xml"

tap_info() {
    lm_nsexec "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virt-tap-info" "$@"
}

# taps: "bridge-TAP ethernet-TAP" of the domain
taps() {
    lv_virsh "$root" domiflist "$dom" |
        awk '$2 == "bridge" { b = $1 } $2 == "ethernet" { e = $1 } END { print b, e }'
}

# identity TAP...: "name ifindex master (port P)" of each TAP, a line each
identity() {
    local t
    for t in "$@"; do
        lm_tap_info ident "$t"
        echo
    done
}

# holders TAP: "PID queues=N" for each process holding a queue of TAP
holders() { lm_tap_info queues "$1"; }

# script_calls: the script log, one call per line, sorted
script_calls() { sort "$scripts" | tr '\n' ',' ; }

tap_check "define and start $dom on the reference QEMU, two interfaces with <backend transfer='on'/>" \
    lv_virsh "$root" "define $LM_TMP/$dom.xml; start $dom" || { show_logs; tap_bail "start failed"; }
lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial" ||
    tap_bail "guest did not boot"
tap_check "guest answers pings" answers || tap_bail "no ping"

read -r btap etap <<<"$(taps)"
if [ "$(grep -o "$startprop" "$root/log/qemu/$dom.log" | wc -l)" -ge 2 ] &&
   [ "$(script_calls)" = "up $etap," ]; then
    tap_ok "both interfaces started with $startprop ($GEN); the ifup script ran once for $etap"
else
    tap_not_ok "both interfaces started with $startprop, one ifup ($(script_calls))"
fi

# --- backend transfer ------------------------------------------------
id0=$(identity "$btap" "$etap")
tap_diag "before:" "$(tap_info "$btap" "$etap")"
# the QMP commands libvirt writes go to qmp.log
LV_LOG_OUTPUTS="1:file:$LM_TMP/qmp.log 3:file:$root/libvirt.log" \
LV_LOG_FILTERS="1:qemu.qemu_monitor" \
    migrate_pinged "migrate --live --local-backend-transfer" \
        --live --local-backend-transfer --verbose "$dom"
bt_gap=$(stat_of max_gap_ms); bt_lost=$(stat_of lost_after_first_reply)
if conv=$("$LM_LIB_DIR/qmplog" "$param" "$LM_TMP/qmp.log"); then
    tap_ok "QMP: $param on for both processes$conv_more, the stream over an fd: socket pair, the new process resumed before its reset"
else
    tap_not_ok "QMP conversation of a local migration with backend transfer"
fi
tap_diag "$conv"
tap_diag "after:" "$(tap_info "$btap" "$etap")"
id1=$(identity "$btap" "$etap")
if [ "$(taps)" = "$btap $etap" ] && [ "$id1" = "$id0" ]; then
    tap_ok "the same TAPs, ifindexes and bridge port: $(tr '\n' ';' <<<"$id1")"
else
    tap_not_ok "the same TAPs ($id0 -> $id1)"
fi
if [ "$(holders "$btap")" = "$pid1 queues=2 " ] &&
   [ "$(holders "$etap")" = "$pid1 queues=1 " ]; then
    tap_ok "the new QEMU $pid1 holds both queues of $btap and the queue of $etap, no other process does"
else
    tap_not_ok "the new QEMU holds the TAPs ($btap: $(holders "$btap"); $etap: $(holders "$etap"))"
fi
if [ "$(stat_of received)" -gt 0 ] && [ "$bt_lost" -eq 0 ] &&
   [ "$(stat_of unanswered_tail)" -le 1 ]; then
    tap_ok "no packet lost; largest ping gap $bt_gap ms"
else
    tap_not_ok "no packet lost (lost $bt_lost, largest gap $bt_gap ms)"
    tap_diag "$(cat "$LM_TMP/last.stats")"
fi
info=$(lv_virsh "$root" dominfo "$dom")
qlog=$root/log/qemu/$dom.log
if grep -q '^State: *running' <<<"$info" && grep -q '^Persistent: *yes' <<<"$info" &&
   [ "$(script_calls)" = "up $etap," ] &&
   grep -q "local migration: interface net0: TAP $btap handed over" "$qlog" &&
   grep -q "local migration: interface net1: TAP $etap handed over" "$qlog"; then
    tap_ok "domain running and still persistent; no script ran; the domain log says both TAPs were handed over"
else
    tap_not_ok "domain running and persistent, no script ran ($(script_calls)), the log names the handed-over TAPs"
    tap_diag "$info" "$(grep 'local migration:' "$qlog")"
fi

# the attribute cannot change on a running interface
lv_virsh "$root" dumpxml "$dom" |
    awk '/<interface type=.bridge./ { p = 1 } p { print } p && /<\/interface>/ { exit }' |
    sed "s/transfer='on'/transfer='off'/" >"$LM_TMP/iface.xml"
if out=$(lv_virsh "$root" update-device "$dom" "$LM_TMP/iface.xml" --live 2>&1); then
    tap_not_ok "changing transfer= on the running interface is refused (it succeeded)"
elif grep -q "backend" <<<"$out" &&
     lv_virsh "$root" dumpxml "$dom" | grep -q "transfer='on'"; then
    tap_ok "changing transfer= on the running interface is refused: $(sed 's/^error: //' <<<"$out" | tr '\n' ' ')"
else
    tap_not_ok "changing transfer= on the running interface is refused"
    tap_diag "$out"
fi

# vhost=on hands over the TAP and opens new vhost-net fds in the new
# process; that needs /dev/vhost-net
if [ -c /dev/vhost-net ]; then
    tap_skip "vhost=on end to end" "not written yet; its netdev is covered by qemumigrationlocaltest"
else
    tap_skip "vhost=on end to end" "no /dev/vhost-net on this machine; its netdev is covered by qemumigrationlocaltest"
fi

# --- faults ----------------------------------------------------------
# after_fault NAME: exactly one QEMU, the original one, answering pings and
# still the only holder of the same TAPs
after_fault() {
    local name=$1
    if one_qemu && [ "$(lv_qemu_pid "$root" "$dom")" = "$old" ] && answers &&
       [ "$(identity "$btap" "$etap")" = "$id0" ] &&
       [ "$(holders "$btap")" = "$old queues=2 " ] &&
       [ "$(holders "$etap")" = "$old queues=1 " ]; then
        tap_ok "$name: guest answers on its original QEMU $old, the only holder of its TAPs; gap $(stat_of max_gap_ms) ms"
    else
        tap_not_ok "$name: guest answers on its original QEMU $old with its TAPs"
        tap_diag "QEMUs: $(qemu_pids | tr '\n' ' ') pidfile: $(lv_qemu_pid "$root" "$dom")"
        tap_diag "$btap: $(holders "$btap"); $etap: $(holders "$etap")"
        tap_diag "$(cat "$LM_TMP/slow.out" 2>/dev/null)"
        show_logs
    fi
}

fault_abort --local-backend-transfer
fault_kill_new --local-backend-transfer
fault_kill_daemon --local-backend-transfer

if [ "$(script_calls)" = "up $etap," ]; then
    tap_ok "after one successful and three failed migrations the ifup script ran once, the ifdown script never"
else
    tap_not_ok "scripts ran once ($(script_calls))"
fi

# --- classic local migration of the same guest, for comparison -------
# new TAPs: the ethernet one gets its ifup, the old one its ifdown
if pinged lv_virsh "$root" migrate --live --local "$dom" >"$LM_TMP/migrate.out" 2>&1; then
    read -r cbtap cetap <<<"$(taps)"
    tap_diag "classic: bridge TAP $btap -> $cbtap, ethernet TAP $etap -> $cetap"
    if [ "$cbtap" != "$btap" ] && [ "$cetap" != "$etap" ] &&
       grep -q "local migration: interface net0: new TAP $cbtap (was $btap)" "$qlog" &&
       [ "$(script_calls)" = "$(printf '%s\n' "up $etap" "up $cetap" "down $etap" | sort | tr '\n' ',')" ]; then
        tap_ok "classic --local on the same guest: new TAPs; largest gap $(stat_of max_gap_ms) ms, $(stat_of lost_after_first_reply) lost (backend transfer: $bt_gap ms, $bt_lost lost)"
    else
        tap_not_ok "classic --local: new TAPs, one ifup and one ifdown each ($(script_calls))"
    fi
else
    tap_not_ok "classic --local on the same guest"
    tap_diag "$(cat "$LM_TMP/migrate.out")"
fi

# --- the domain's final stop: one ifdown per TAP ---------------------
pid=$(lv_qemu_pid "$root" "$dom")
lv_destroy "$root" "$dom" >/dev/null || :
lm_wait_until 10 lm_pid_gone "$pid" || :
# every TAP the script saw: one "up", one "down"
per_tap=$(cut -d' ' -f2 "$scripts" | sort | uniq -c | awk '{ printf "%s ", $1 }')
if [ "$(grep -c '^up ' "$scripts")" -eq 2 ] && [ "$(grep -c '^down ' "$scripts")" -eq 2 ] &&
   [ "$per_tap" = "2 2 " ]; then
    tap_ok "after destroy each TAP had exactly one ifup and one ifdown: $(script_calls)"
else
    tap_not_ok "one ifup and one ifdown per TAP ($(script_calls))"
fi

if [ "$GEN" = v10 ]; then
    # --- Debian 12's QEMU: the same guest without the attribute, which QEMU
    # 7.2 cannot start, restarted on it; backend transfer is refused before
    # anything starts
    : >"$serial"
    QEMU=$STOCK_QEMU LV_NET_XML= LV_DEVICES_XML= lv_domain_xml "$dom" "$serial" >"$LM_TMP/stock.xml"
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
else
    # --- a running binary with v10 only, a new one with the upstream
    # generation only: nothing in common, refused before anything starts
    : >"$serial"
    QEMU=$QEMU_BIN_V10 lv_domain_xml "$dom" "$serial" >"$LM_TMP/v10.xml"
    if lv_virsh "$root" "undefine $dom" >/dev/null &&
       lv_virsh "$root" "define $LM_TMP/v10.xml; start $dom" >/dev/null &&
       lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial"; then
        pid=$(lv_qemu_pid "$root" "$dom")
        lv_virsh "$root" dumpxml --migratable "$dom" |
            sed "s|<emulator>.*</emulator>|<emulator>$QEMU_BIN_LOCAL</emulator>|" >"$LM_TMP/to-local.xml"
        if out=$(lv_virsh "$root" migrate --live --local-backend-transfer \
                     --xml "$LM_TMP/to-local.xml" "$dom" 2>&1); then
            tap_not_ok "v10 only to upstream only refused (it succeeded)"
        elif grep -q "generation 'v10', which the new process's QEMU binary '$QEMU_BIN_LOCAL' lacks" <<<"$out" &&
             one_qemu && [ "$(lv_qemu_pid "$root" "$dom")" = "$pid" ] && answers; then
            tap_ok "a v10-only binary and an upstream-only one share no generation: refused, guest untouched: $(tr '\n' ' ' <<<"$out" | sed 's/^error: //')"
        else
            tap_not_ok "v10 only to upstream only refused naming the binary, guest untouched"
            tap_diag "$out"
        fi
    else
        tap_not_ok "the guest restarted on the v10-only binary"
        show_logs
    fi
fi

lv_guest_end
