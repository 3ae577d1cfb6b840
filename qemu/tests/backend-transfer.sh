#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The reference QEMU's backend transfer, end to end, without libvirt.
#
# Two processes of qemu/build.sh's QEMU; a guest whose virtio-net has a TAP
# on bridge br0 inside a network namespace made (and always removed) here;
# addresses only from 198.18.0.0/24 (bridge .1, guest .2).  Checks:
#   - the QMP/qdev interface of DESIGN.md section 5 is there;
#   - a destination with incoming-fds=on disturbs nothing while it waits:
#     the source TAP's settings read before and after it started are
#     identical, and pings with payload verification keep passing;
#   - migration over a socketpair handed over as fd: URIs (as libvirt does)
#     moves the very TAP: the destination holds the same open file (kcmp),
#     /proc/PID/fdinfo shows iff: with the same name, the ifindex is the
#     same, the TAP outlives the source; the guest answers pings throughout
#     (largest gap and losses are printed);
#   - killing the destination mid-migration (here over a unix: socket)
#     leaves the source running on its TAP;
#   - a stream without the TAP's fd fails the destination's load, and the
#     source keeps running;
#   - the refusals: incoming-fds with fd=/fds=/helper=/ifname=/vnet_hdr=/br=
#     or without script=no/downscript=no, backend-transfer on a tcp (or
#     non-UNIX fd:) channel, with TLS, with postcopy, changed during a
#     migration, backend-transfer=on for a non-tap peer;
#   - multiqueue: queues=2 hands over 2 fds.
#
# Run as root after qemu/build.sh:  qemu/tests/backend-transfer.sh
# Output is TAP.  LM_KEEP=1 keeps the scratch dir (QEMU logs, ping logs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

qemu_test_begin 49 bt

# ---- 1. interface probes -----------------------------------------------------
start_qemu probe -S -netdev user,id=u0 || tap_bail "QEMU does not start"
tap_check "QMP schema has migrate-set-parameters/arg-type/backend-transfer" \
    $QMP "$T/probe.qmp" schema-has migrate-set-parameters/arg-type/backend-transfer || :
tap_check "QMP schema has netdev_add/arg-type/+tap/incoming-fds" \
    $QMP "$T/probe.qmp" schema-has netdev_add/arg-type/+tap/incoming-fds || :
props=$(qmp probe device-list-properties '{"typename": "virtio-net-pci"}')
echo "$props" | $PY -c '
import json, sys
p = {x["name"]: x for x in json.load(sys.stdin)}
b = p["backend-transfer"]
sys.exit(0 if b["type"] == "bool" and b.get("default-value") is False else 1)' && rc=0 || rc=$?
tap_result "$rc" "virtio-net-pci has property backend-transfer (bool, default off)" || :
params() { qmp probe query-migrate-parameters | $PY -c 'import json,sys; print(json.load(sys.stdin)["backend-transfer"])'; }
before=$(params); set_backend_transfer probe true; after=$(params)
[ "$before/$after" = "False/True" ] && rc=0 || rc=$?
tap_result "$rc" "query-migrate-parameters shows backend-transfer (off, then on)" || :

# ---- 2. refusals ---------------------------------------------------------------
# refuse DESC EXPECTED-SUBSTRING QMP-COMMAND JSON
refuse() { refuse_on probe "$@"; }
inc='"type": "tap", "id": "bad", "incoming-fds": true'
for opt in '"fd": "x"' '"fds": "x:y"' '"helper": "/bin/true"' \
           '"ifname": "lmbad0"' '"vnet_hdr": true'; do
    name=${opt#\"}; name=${name%%\"*}
    refuse "netdev_add incoming-fds=on refuses $name=" "$name= is invalid" \
        netdev_add "{$inc, \"script\": \"no\", \"downscript\": \"no\", $opt}"
done
refuse "netdev_add incoming-fds=on refuses a missing script=no" "script=no" \
    netdev_add "{$inc, \"downscript\": \"no\"}"
refuse "netdev_add incoming-fds=on refuses a missing downscript=no" "downscript=no" \
    netdev_add "{$inc, \"script\": \"no\"}"
out=$("$QEMU_BIN" -machine none -nodefaults -display none \
      -netdev tap,id=x,incoming-fds=on,script=no 2>&1) && rc=0 || rc=$?
[ "$rc" -ne 0 ] && [[ "$out" == *"downscript=no"* ]] && rc=0 || rc=$?
tap_result "$rc" "-netdev tap,incoming-fds=on without downscript=no fails to start" || :
tap_diag "error: $out"
refuse "TLS with backend-transfer on is refused" "cannot be used with TLS" \
    migrate-set-parameters '{"tls-creds": "tls0"}'
refuse "migrate over tcp with backend-transfer on is refused" \
    "needs a channel that can pass file descriptors" \
    migrate '{"uri": "tcp:127.0.0.1:9"}'
out=$(PYTHONPATH=$here $PY -c '
import socket, sys, lmqmp
q = lmqmp.QMP(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
q.cmd("getfd", {"fdname": "tcpfd"}, fds=[s.fileno()])
try:
    q.cmd("migrate", {"uri": "fd:tcpfd"})
except lmqmp.QMPError as e:
    print(e); sys.exit(1)' "$T/probe.qmp") && rc=0 || rc=$?
[ "$rc" -ne 0 ] && [[ "$out" == *"not a UNIX domain socket"* ]] && rc=0 || rc=$?
tap_result "$rc" "migrate to an fd: that is a TCP socket is refused" || :
tap_diag "error: $out"
refuse "backend-transfer=on with a non-tap netdev is refused" \
    "backend-transfer needs a tap netdev" \
    device_add '{"driver": "virtio-net-pci", "netdev": "u0", "backend-transfer": true}'
quit_qemu probe

start_qemu dprobe -incoming defer || tap_bail "QEMU does not start"
set_backend_transfer dprobe true
out=$(qmp dprobe migrate-incoming '{"uri": "tcp:127.0.0.1:0"}') && rc=0 || rc=$?
[ "$rc" -ne 0 ] && [[ "$out" == *"needs a channel that can pass file descriptors"* ]] && rc=0 || rc=$?
tap_result "$rc" "migrate-incoming over tcp with backend-transfer on is refused" || :
tap_diag "error: $out"
quit_qemu dprobe

# ---- 3. the handover, fd: socketpair --------------------------------------------
boot_guest src lmtap0 1 ",backend-transfer=on" ||
    tap_bail "the guest did not boot on the reference QEMU"
tap_ok "guest boots on the reference QEMU (firmware found without -L) and answers pings"

ping_start "$T/ping.log"
idx0=$(ifindex lmtap0)
state0=$(tap_state src lmtap0)
tap_diag "source TAP before the destination starts:" "$(echo "$state0" | head -n 7)"

# shellcheck disable=SC2046
start_qemu dst $(dest_args 1 ",backend-transfer=on") || tap_bail "destination does not start"
lm_wait_until 10 status_is dst inmigrate || tap_bail "the destination does not wait for a migration"
sleep 0.5
state1=$(tap_state src lmtap0)
if [ "$state0" = "$state1" ] && [ -z "$($TAPTOOL fds "$(qpid dst)")" ]; then
    tap_ok "waiting destination leaves the TAP alone (vnet header size, flags, sndbuf, O_NONBLOCK, ethtool -k unchanged; it holds no TAP)"
else
    tap_not_ok "waiting destination leaves the TAP alone"
    tap_diag "$(diff <(echo "$state0") <(echo "$state1"))" "dst fds: $($TAPTOOL fds "$(qpid dst)")"
fi
tap_check "pings with payload verification pass while the destination waits" payload_ping 200 || :

set_backend_transfer src true
set_backend_transfer dst true
migrate_to_running src dst "migration over an fd: socketpair with backend-transfer"

dfds=$($TAPTOOL fds "$(qpid dst)")
sfd=$($TAPTOOL fds "$(qpid src)" | awk 'NR == 1 { print $1 }')
dfd=$(echo "$dfds" | awk 'NR == 1 { print $1 }')
[ "$(echo "$dfds" | awk '{ print $2 }')" = lmtap0 ] && rc=0 || rc=$?
tap_result "$rc" "destination's fdinfo shows iff: lmtap0 (one TAP fd)" || tap_diag "$dfds"
$TAPTOOL same "$(qpid src)" "$sfd" "$(qpid dst)" "$dfd" && rc=0 || rc=$?
tap_result "$rc" "destination holds the source's very open file (kcmp)" || :
state2=$(tap_state dst lmtap0)
[ "$state0" = "$state2" ] && rc=0 || rc=$?
tap_result "$rc" "TAP settings on the destination are exactly the source's" ||
    tap_diag "$(diff <(echo "$state0") <(echo "$state2"))"
quit_qemu src
sleep 0.3
[ "$(ifindex lmtap0)" = "$idx0" ] && rc=0 || rc=$?
tap_result "$rc" "TAP outlives the source, same ifindex ($idx0)" || :
tap_check "guest answers payload pings on the destination alone" payload_ping 100 || :
ping_verdict "$T/ping.log" ""

# ---- 4. back again over unix:, destination killed mid-way ------------------------
mv "$T/dst.pid" "$T/g1.pid"; mv "$T/dst.qmp" "$T/g1.qmp"   # the guest's QEMU now
# shellcheck disable=SC2046
start_qemu dst2 $(dest_args 1 ",backend-transfer=on") || tap_bail "destination does not start"

for q in g1 dst2; do
    set_backend_transfer "$q" true
    postcopy "$q" true
done
qmp g1 migrate-set-parameters '{"max-bandwidth": 2000000}' >/dev/null
qmp dst2 migrate-incoming "{\"uri\": \"unix:$T/mig.sock\"}" >/dev/null
lm_wait_until 10 test -S "$T/mig.sock" || tap_bail "the destination does not listen"
qmp g1 migrate "{\"uri\": \"unix:$T/mig.sock\"}" >/dev/null
sleep 1
out=$(qmp g1 migrate-set-parameters '{"backend-transfer": false}') && rc=0 || rc=$?
[ "$rc" -ne 0 ] && [[ "$out" == *"while a migration is in progress"* ]] && rc=0 || rc=$?
tap_result "$rc" "backend-transfer cannot change during a migration" || :
tap_diag "error: $out"
out=$(qmp g1 migrate-start-postcopy) && rc=0 || rc=$?
[ "$rc" -ne 0 ] && [[ "$out" == *"Postcopy cannot be used with backend-transfer"* ]] && rc=0 || rc=$?
tap_result "$rc" "migrate-start-postcopy with backend-transfer is refused" || :
tap_diag "error: $out"
st=$(qmp g1 query-migrate | $PY -c 'import json,sys; print(json.load(sys.stdin)["status"])')
kill -KILL "$(qpid dst2)"
res=$(wait_migration g1 30) && rc=0 || rc=$?
[ "$st" = active ] && [ "$rc" -ne 0 ] && [ "$(status_of g1)" = running ] && rc=0 || rc=$?
tap_result "$rc" "destination killed mid-migration: migration fails, source keeps running" || :
tap_diag "status when killed: $st; $(echo "$res" | tr '\n' ' ')"
s4=$(tap_state g1 lmtap0)
[ "$s4" = "$state0" ] && [ "$(ifindex lmtap0)" = "$idx0" ] && rc=0 || rc=$?
tap_result "$rc" "source still holds its TAP, settings unchanged" ||
    tap_diag "$(diff <(echo "$state0") <(echo "$s4"))"
tap_check "guest answers payload pings on the source" payload_ping 100 || :
qmp g1 migrate-set-parameters '{"max-bandwidth": 134217728}' >/dev/null
postcopy g1 false

# ---- 5. a stream without the TAP: parameter off on the source ------------------
# shellcheck disable=SC2046
start_qemu dst3 $(dest_args 1 ",backend-transfer=on") || tap_bail "destination does not start"
set_backend_transfer g1 false
set_backend_transfer dst3 true
# With the return path the source learns about the destination's failure.
for q in g1 dst3; do
    qmp "$q" migrate-set-capabilities '{"capabilities": [{"capability": "return-path", "state": true}]}' >/dev/null
done
failed_load g1 dst3 lmtap0 "$state0" "carried none" \
    "stream without the TAP (backend-transfer off on the source)"

# ---- 6. the other way round: state arrives, destination has the parameter off ----
# shellcheck disable=SC2046
start_qemu dst4 $(dest_args 1 ",backend-transfer=on") || tap_bail "destination does not start"
set_backend_transfer g1 true
qmp dst4 migrate-set-capabilities '{"capabilities": [{"capability": "return-path", "state": true}]}' >/dev/null
# (the TAP state compared includes O_NONBLOCK, which must survive)
failed_load g1 dst4 lmtap0 "$state0" "backend-transfer is off for this migration" \
    "TAP state sent to a destination with backend-transfer off"
for q in g1; do
    qmp "$q" migrate-set-capabilities '{"capabilities": [{"capability": "return-path", "state": false}]}' >/dev/null
done
quit_qemu g1
lm_wait_until 10 sh -c "! ip -n $LM_NS link show lmtap0" && rc=0 || rc=$?
tap_result "$rc" "TAP goes away with its last holder" || :

# ---- 7. a stream without the TAP: source device without backend-transfer -------
boot_guest src5 lmtap2 1 "" || tap_bail "the guest did not boot"
s5=$(tap_state src5 lmtap2)
# shellcheck disable=SC2046
start_qemu dst5 $(dest_args 1 ",backend-transfer=on") || tap_bail "destination does not start"
for q in src5 dst5; do
    set_backend_transfer "$q" true
    qmp "$q" migrate-set-capabilities '{"capabilities": [{"capability": "return-path", "state": true}]}' >/dev/null
done
failed_load src5 dst5 lmtap2 "$s5" "carried none" \
    "stream without the TAP (source device has backend-transfer off)"
quit_qemu src5

# ---- 8. multiqueue ---------------------------------------------------------------
# mq_case SMP: queues=2 with 2 vCPUs (both queues attached: the guest
# uses both) and with 1 vCPU (the guest uses one, the second queue is
# detached from the TAP: it travels detached).
mq_case() {
    local smp=$1 nq smq dmq same s d what
    what="queues=2, $smp vCPU"
    boot_guest mqs lmtap1 2 ",backend-transfer=on" -smp "$smp" ||
        tap_bail "the multiqueue guest did not boot"
    nq=$(ip netns exec "$LM_NS" sh -c 'ls -d /sys/class/net/lmtap1/queues/tx-*' | wc -l)
    tap_diag "$what: lmtap1 has $nq queue(s) attached"
    smq=$($TAPTOOL fds "$(qpid mqs)")
    ping_start "$T/ping-mq$smp.log"
    # shellcheck disable=SC2046
    start_qemu mqd $(dest_args 2 ",backend-transfer=on") -smp "$smp" ||
        tap_bail "destination does not start"
    set_backend_transfer mqs true
    set_backend_transfer mqd true
    migrate_fd mqs mqd || tap_bail "cannot start the migration"
    res=$(wait_migration mqs) && rc=0 || rc=$?
    lm_wait_until 20 status_is mqd running && [ "$rc" -eq 0 ] && rc=0 || rc=$?
    tap_result "$rc" "multiqueue ($what): migration completes, destination runs" || :
    tap_diag "$(echo "$res" | tr '\n' ' ')"
    dmq=$($TAPTOOL fds "$(qpid mqd)")
    same=0
    for s in $(echo "$smq" | awk '{ print $1 }'); do
        for d in $(echo "$dmq" | awk '{ print $1 }'); do
            $TAPTOOL same "$(qpid mqs)" "$s" "$(qpid mqd)" "$d" && same=$((same + 1))
        done
    done
    [ "$(echo "$dmq" | wc -l)" = 2 ] && [ "$same" = 2 ] &&
        [ "$(ip netns exec "$LM_NS" sh -c 'ls -d /sys/class/net/lmtap1/queues/tx-*' | wc -l)" = "$nq" ] && rc=0 || rc=$?
    tap_result "$rc" "multiqueue ($what): destination holds both queues' open files (kcmp), $nq attached as before" ||
        tap_diag "source: $smq" "destination: $dmq"
    tap_diag "destination's TAP fds (fd iff): $(echo "$dmq" | tr '\n' ' ')"
    quit_qemu mqs
    tap_check "multiqueue ($what): guest answers payload pings on the destination" payload_ping 100 || :
    ping_verdict "$T/ping-mq$smp.log" "multiqueue ($what): "
    quit_qemu mqd
    mv "$T/mqs.log" "$T/mqs$smp.log"; mv "$T/mqd.log" "$T/mqd$smp.log"
}
mq_case 2
mq_case 1

lm_leftovers --ns "$LM_NS" >"$T/leftovers" 2>&1 && rc=0 || rc=$?
tap_result "$rc" "nothing left in the namespace (processes, TAPs)" ||
    tap_diag "$(cat "$T/leftovers")"
