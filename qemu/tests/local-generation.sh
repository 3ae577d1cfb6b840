#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The reference QEMU's upstream generation of the TAP hand-over (the
# interface of the series queued for QEMU 11.2), end to end, without
# libvirt.  What it checks:
#   - the interface is there: migration parameter `local`, tap option
#     `local-migration-supported`, in the QMP schema and in
#     query-migrate-parameters;
#   - QEMU_LOCALMIG_GENERATIONS makes one binary stand for one that has
#     only one generation: the other's members are gone from the schema
#     (`local` of the dgram netdev stays) and its parameters are refused;
#   - the destination's order of steps: a tap with incoming-fds and
#     local-migration-supported is refused without an incoming migration
#     and before `local` is on, and accepted by netdev_add after
#     migrate-set-parameters; the NIC then comes with device_add;
#   - migration over a socketpair (fd: URIs) moves the very TAP (kcmp, same
#     ifindex) in the tap's own section, while pings keep passing;
#   - faults keep the TAP on the source: a source tap without
#     local-migration-supported sends nothing, and the destination refuses
#     the load; the destination killed mid-migration;
#   - `local` on a tcp channel and with TLS is refused.
#
# Run as root after qemu/build.sh:  qemu/tests/local-generation.sh
# Output is TAP.  LM_KEEP=1 keeps the scratch dir.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

qemu_test_begin 26 lg

set_local() {   # NAME true|false
    qmp "$1" migrate-set-parameters "{\"local\": $2}" >/dev/null
}

# the NIC of both sides, at a fixed slot: the destination adds it itself
NIC='"driver": "virtio-net-pci", "id": "nic0", "netdev": "net0", "addr": "0x5"'
nic_arg() { echo "virtio-net-pci,id=nic0,netdev=net0,addr=0x5,mac=$MAC"; }

# src_args TAP LMS: a source whose tap has local-migration-supported=LMS
src_args() {
    echo "-kernel $GUEST_KERNEL -initrd $GUEST_INITRD" \
         "-netdev tap,id=net0,ifname=$1,script=no,downscript=no,local-migration-supported=$2" \
         "-device $(nic_arg)"
}

boot_local_guest() {   # NAME TAP LMS
    # shellcheck disable=SC2046
    start_qemu "$1" $(src_args "$2" "$3") -append "$GUEST_CMDLINE" || return 1
    plug_and_wait "$1" "$2"
}

# dest_prepare NAME: a destination in the order the generation needs:
# `local` on, then the tap, then its NIC.
dest_prepare() {
    start_qemu "$1" -incoming defer || return 1
    set_local "$1" true
    qmp "$1" netdev_add '{"type": "tap", "id": "net0", "incoming-fds": true, "local-migration-supported": true, "script": "no", "downscript": "no"}' >/dev/null &&
        qmp "$1" device_add "{$NIC, \"mac\": \"$MAC\"}" >/dev/null
}


# ---- 1. the interface ------------------------------------------------------------
start_qemu probe -S || tap_bail "QEMU does not start"
tap_check "QMP schema has migrate-set-parameters/arg-type/local" \
    $QMP "$T/probe.qmp" schema-has migrate-set-parameters/arg-type/local || :
tap_check "QMP schema has netdev_add/arg-type/+tap/local-migration-supported" \
    $QMP "$T/probe.qmp" schema-has netdev_add/arg-type/+tap/local-migration-supported || :
lparam() { qmp probe query-migrate-parameters | $PY -c 'import json,sys; print(json.load(sys.stdin)["local"])'; }
before=$(lparam); set_local probe true; after=$(lparam)
[ "$before/$after" = "False/True" ] && rc=0 || rc=$?
tap_result "$rc" "query-migrate-parameters shows local (off, then on)" || :
refuse_on probe "TLS with local on is refused" "local cannot be used with TLS" \
    migrate-set-parameters '{"tls-creds": "tls0"}'
refuse_on probe "migrate over tcp with local on is refused" \
    "needs a UNIX domain socket" migrate '{"uri": "tcp:127.0.0.1:9"}'
refuse_on probe "incoming-fds with local-migration-supported outside an incoming migration is refused" \
    "needs an incoming migration" \
    netdev_add '{"type": "tap", "id": "x", "incoming-fds": true, "local-migration-supported": true, "script": "no", "downscript": "no"}'
quit_qemu probe

# ---- 2. one binary, one generation ---------------------------------------------
QEMU_LOCALMIG_GENERATIONS=local start_qemu onlylocal -S || tap_bail "QEMU does not start"
! $QMP "$T/onlylocal.qmp" schema-has migrate-set-parameters/arg-type/backend-transfer &&
    ! $QMP "$T/onlylocal.qmp" schema-has query-migrate-parameters/ret-type/backend-transfer &&
    $QMP "$T/onlylocal.qmp" schema-has migrate-set-parameters/arg-type/local &&
    $QMP "$T/onlylocal.qmp" schema-has netdev_add/arg-type/+tap/incoming-fds &&
    ! qmp onlylocal device-list-properties '{"typename": "virtio-net-pci"}' | grep -q '"backend-transfer"' && rc=0 || rc=$?
tap_result "$rc" "QEMU_LOCALMIG_GENERATIONS=local: no backend-transfer in the schema or virtio-net's properties; local and incoming-fds are there" || :
refuse_on onlylocal "QEMU_LOCALMIG_GENERATIONS=local refuses backend-transfer" \
    "'backend-transfer' is unexpected" migrate-set-parameters '{"backend-transfer": true}'
quit_qemu onlylocal
QEMU_LOCALMIG_GENERATIONS=v10 start_qemu onlyv10 -S || tap_bail "QEMU does not start"
! $QMP "$T/onlyv10.qmp" schema-has migrate-set-parameters/arg-type/local &&
    ! $QMP "$T/onlyv10.qmp" schema-has netdev_add/arg-type/+tap/local-migration-supported &&
    $QMP "$T/onlyv10.qmp" schema-has netdev_add/arg-type/+dgram/local &&
    $QMP "$T/onlyv10.qmp" schema-has migrate-set-parameters/arg-type/backend-transfer && rc=0 || rc=$?
tap_result "$rc" "QEMU_LOCALMIG_GENERATIONS=v10: no local, no local-migration-supported (the dgram netdev keeps its local); backend-transfer is there" || :
refuse_on onlyv10 "QEMU_LOCALMIG_GENERATIONS=v10 refuses local" \
    "'local' is unexpected" migrate-set-parameters '{"local": true}'
quit_qemu onlyv10

# ---- 3. the destination's order ---------------------------------------------------
start_qemu order -incoming defer || tap_bail "QEMU does not start"
refuse_on order "netdev_add of the incoming tap before local is on is refused" \
    "needs the migration parameter local on first" \
    netdev_add '{"type": "tap", "id": "net0", "incoming-fds": true, "local-migration-supported": true, "script": "no", "downscript": "no"}'
set_local order true
out=$(qmp order netdev_add '{"type": "tap", "id": "net0", "incoming-fds": true, "local-migration-supported": true, "script": "no", "downscript": "no"}' 2>&1) &&
    qmp order device_add "{$NIC, \"mac\": \"$MAC\"}" >/dev/null && rc=0 || rc=$?
tap_result "$rc" "after migrate-set-parameters local=on: netdev_add of the tap, then device_add of its NIC" ||
    tap_diag "$out"
[ -z "$($TAPTOOL fds "$(qpid order)")" ] && rc=0 || rc=$?
tap_result "$rc" "the waiting destination holds no TAP" || :
quit_qemu order

# ---- 4. the hand-over --------------------------------------------------------------
boot_local_guest src lmltap0 on || tap_bail "the guest did not boot"
tap_ok "guest boots with local-migration-supported=on and answers pings"
ping_start "$T/ping.log"
idx0=$(ifindex lmltap0)
state0=$(tap_state src lmltap0)
dest_prepare dst || tap_bail "the destination cannot be prepared"
[ "$(tap_state src lmltap0)" = "$state0" ] && rc=0 || rc=$?
tap_result "$rc" "the prepared destination leaves the source's TAP alone" || :
set_local src true
migrate_to_running src dst "migration with local over an fd: socketpair"
sfd=$($TAPTOOL fds "$(qpid src)" | awk 'NR == 1 { print $1 }')
dfd=$($TAPTOOL fds "$(qpid dst)" | awk 'NR == 1 { print $1 }')
[ -n "$dfd" ] && $TAPTOOL same "$(qpid src)" "$sfd" "$(qpid dst)" "$dfd" && rc=0 || rc=$?
tap_result "$rc" "destination holds the source's very open file (kcmp)" || :
[ "$(tap_state dst lmltap0)" = "$state0" ] && rc=0 || rc=$?
tap_result "$rc" "TAP settings on the destination are exactly the source's" || :
quit_qemu src
sleep 0.3
[ "$(ifindex lmltap0)" = "$idx0" ] && rc=0 || rc=$?
tap_result "$rc" "TAP outlives the source, same ifindex ($idx0)" || :
tap_check "guest answers payload pings on the destination alone" payload_ping 100 || :
ping_verdict "$T/ping.log" ""
mv "$T/dst.pid" "$T/g1.pid"; mv "$T/dst.qmp" "$T/g1.qmp"

# ---- 5. faults ---------------------------------------------------------------------
dest_prepare dst2 || tap_bail "the destination cannot be prepared"
set_local g1 true
qmp g1 migrate-set-parameters '{"max-bandwidth": 2000000}' >/dev/null
migrate_fd g1 dst2 || tap_bail "cannot start the migration"
sleep 1
kill -KILL "$(qpid dst2)"
wait_migration g1 30 >/dev/null && rc=0 || rc=$?
lm_wait_until 10 status_is g1 running && [ "$rc" -ne 0 ] &&
    [ "$(tap_state g1 lmltap0)" = "$state0" ] && payload_ping 50 >/dev/null && rc=0 || rc=$?
tap_result "$rc" "destination killed mid-migration: the source keeps running on its TAP" || :
qmp g1 migrate-set-parameters '{"max-bandwidth": 134217728}' >/dev/null
quit_qemu g1

boot_local_guest src3 lmltap1 off || tap_bail "the guest did not boot"
s3=$(tap_state src3 lmltap1)
dest_prepare dst3 || tap_bail "the destination cannot be prepared"
for q in src3 dst3; do
    set_local "$q" true
    qmp "$q" migrate-set-capabilities '{"capabilities": [{"capability": "return-path", "state": true}]}' >/dev/null
done
failed_load src3 dst3 lmltap1 "$s3" "carried none" \
    "a source tap without local-migration-supported (nothing sent)"
quit_qemu src3

lm_leftovers --ns "$LM_NS" >"$T/leftovers" 2>&1 && rc=0 || rc=$?
tap_result "$rc" "nothing left in the namespace (processes, TAPs)" ||
    tap_diag "$(cat "$T/leftovers")"
