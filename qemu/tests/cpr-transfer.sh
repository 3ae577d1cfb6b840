#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The reference QEMU's CPR generation of the TAP hand-over (tap cpr=on,
# qemu/patches/0007) with QEMU 10.0's cpr-transfer mode, which hands the
# guest's memfd RAM to the new process instead of copying it.  Without
# libvirt.  What it checks:
#   - the interface: tap's cpr in the QMP schema; a binary standing for
#     one without it (QEMU_LOCALMIG_GENERATIONS=v10,local) has no such
#     member and refuses cpr=on;
#   - a source on memfd RAM (share=on, aux-ram-share=on) whose tap has
#     cpr=on; the destination, started with a second -incoming of channel
#     type cpr, blocks before its monitor exists until the source's
#     migrate has sent the CPR state;
#   - then the destination holds the source's very TAP (kcmp) without
#     having touched it (the source's TAP settings unchanged) while the
#     source still runs the guest, which answers pings;
#   - migrate-incoming completes the migration; ram.transferred stays
#     below BOUND_MIB (no RAM is copied: the destination maps the source's
#     very memfd, same inode); the TAP's settings on the destination are
#     the source's; the TAP outlives the source (same ifindex); the guest
#     answered pings throughout and its serial ticks go on;
#   - faults: a source tap without cpr=on fails the destination at its
#     start, naming the queue, and the source keeps its guest and TAP; a
#     source tap with cpr=on into a destination tap without it fails the
#     load (an unknown section) and the source resumes on its TAP.
#
# Run as root after qemu/build.sh:  qemu/tests/cpr-transfer.sh
# Output is TAP.  LM_KEEP=1 keeps the scratch dir (QEMU logs, ping logs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

qemu_test_begin 19 cp

# ram.transferred of a cpr-transfer stays below this: every RAM block has
# an fd and is left out (a copy of this guest is tens of MiB)
BOUND_MIB=4

# memfd RAM, shared, and the RAM QEMU allocates itself (ROMs) on memfds
# too: cpr-transfer refuses a block it cannot pass as an fd. The -machine
# option is merged with start_qemu's (which gives -m).
MEM="-object memory-backend-memfd,id=pc.ram,size=${GUEST_MEM_MIB}M,share=on -machine memory-backend=pc.ram,aux-ram-share=on"
CMDLINE="$GUEST_CMDLINE localmig.tick=ttyS1"
NIC="-device virtio-net-pci,netdev=net0,mac=$MAC"

# boot_src NAME TAP CPR: the source guest, its tap with cpr=CPR
boot_src() {
    # shellcheck disable=SC2046,SC2086
    start_qemu "$1" -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" $MEM \
        -netdev "tap,id=net0,ifname=$2,script=no,downscript=no,cpr=$3" $NIC \
        $(tick_args "$1") -append "$CMDLINE" || return 1
    plug_and_wait "$1" "$2"
}
# start_dst NAME NETDEV: a destination for an incoming cpr-transfer; it
# blocks until the CPR state arrives, so wait for its CPR socket.
start_dst() {
    # shellcheck disable=SC2046,SC2086
    QEMU_WAIT_FOR=$T/$1.cpr start_qemu "$1" $MEM -netdev "$2" $NIC \
        $(tick_args "$1") -incoming defer \
        -incoming "{\"channel-type\": \"cpr\", \"addr\": {\"transport\": \"socket\", \"type\": \"unix\", \"path\": \"$T/$1.cpr\"}}"
}
DST_TAP="tap,id=net0,cpr=on,script=no,downscript=no"
# cpr_migrate SRC DST: mode cpr-transfer, then migrate with the main
# channel (DST listens there after migrate-incoming) and the CPR one.
cpr_migrate() {
    qmp "$1" migrate-set-parameters '{"mode": "cpr-transfer"}' >/dev/null &&
        qmp "$1" migrate "{\"channels\": [
            {\"channel-type\": \"main\", \"addr\": {\"transport\": \"socket\", \"type\": \"unix\", \"path\": \"$T/$2.mig\"}},
            {\"channel-type\": \"cpr\", \"addr\": {\"transport\": \"socket\", \"type\": \"unix\", \"path\": \"$T/$2.cpr\"}}]}" >/dev/null
}
incoming() { qmp "$1" migrate-incoming "{\"uri\": \"unix:$T/$1.mig\"}" >/dev/null; }
# memfd_inode NAME: the inode of QEMU NAME's shared mapping of its RAM memfd
# (QEMU names a backend's memfd after its type)
memfd_inode() {
    awk '$2 ~ /^...s/ && $6 == "/memfd:memory-backend-memfd" { print $5; exit }' "/proc/$(qpid "$1")/maps"
}
tap_fd_of() { $TAPTOOL fds "$(qpid "$1")" | awk 'NR == 1 { print $1 }'; }

# ---- 1. the interface ------------------------------------------------------------
start_qemu probe -S || tap_bail "QEMU does not start"
tap_check "QMP schema has netdev_add/arg-type/+tap/cpr" \
    $QMP "$T/probe.qmp" schema-has netdev_add/arg-type/+tap/cpr || :
quit_qemu probe
QEMU_LOCALMIG_GENERATIONS=v10,local start_qemu nocpr -S || tap_bail "QEMU does not start"
! $QMP "$T/nocpr.qmp" schema-has netdev_add/arg-type/+tap/cpr &&
    $QMP "$T/nocpr.qmp" schema-has netdev_add/arg-type/+tap/local-migration-supported && rc=0 || rc=$?
tap_result "$rc" "QEMU_LOCALMIG_GENERATIONS=v10,local: no cpr in the tap's schema, local-migration-supported there" || :
refuse_on nocpr "QEMU_LOCALMIG_GENERATIONS=v10,local refuses cpr=on" \
    "'cpr' is unexpected" netdev_add '{"type": "tap", "id": "x", "cpr": true}'
quit_qemu nocpr

# ---- 2. the hand-over --------------------------------------------------------------
boot_src src lmctap0 on || tap_bail "the guest did not boot"
tap_ok "guest on memfd RAM with aux-ram-share, its tap with cpr=on, answers pings"
ping_start "$T/ping.log"
idx0=$(ifindex lmctap0)
state0=$(tap_state src lmctap0)
ino0=$(memfd_inode src)
t0=$(last_tick src)

start_dst dst "$DST_TAP" || tap_bail "the destination does not start"
sleep 0.5
lm_pid_alive "$(qpid dst)" && [ ! -e "$T/dst.qmp" ] && rc=0 || rc=$?
tap_result "$rc" "the destination waits for the CPR state: its CPR socket listens, no monitor yet" || :

cpr_migrate src dst && lm_wait_until 20 test -S "$T/dst.qmp" && rc=0 || rc=$?
tap_result "$rc" "migrate in mode cpr-transfer sends the CPR state; the destination's monitor comes up" ||
    tap_bail "destination: $(tail -n 3 "$T/dst.log" | tr '\n' ' ')"

sfd=$(tap_fd_of src); dfd=$(tap_fd_of dst)
[ -n "$dfd" ] && $TAPTOOL same "$(qpid src)" "$sfd" "$(qpid dst)" "$dfd" &&
    [ "$(tap_state src lmctap0)" = "$state0" ] && status_is src running &&
    lm_nsexec ping -c 1 -W 1 "$GUEST" >/dev/null && rc=0 || rc=$?
tap_result "$rc" "before migrate-incoming: the destination holds the source's very TAP (kcmp), untouched; the source runs the guest, which answers" || :

incoming dst || tap_bail "migrate-incoming refused"
res=$(wait_migration src 60) && rc=0 || rc=$?
tap_result "$rc" "cpr-transfer migration completes" || :
tap_diag "$(echo "$res" | tr '\n' ' ')"
lm_wait_until 20 status_is dst running && rc=0 || rc=$?
tap_result "$rc" "destination runs the guest" ||
    tap_bail "the guest is not on the destination: $(tail -n 2 "$T/dst.log" | tr '\n' ' ')"
xfer=$(field transferred "$res")
dino=$(memfd_inode dst)
[ -n "$xfer" ] && [ "$xfer" -lt $((BOUND_MIB << 20)) ] && [ -n "$ino0" ] && [ "$dino" = "$ino0" ] && rc=0 || rc=$?
tap_result "$rc" "no RAM copied: $xfer bytes sent (bound $BOUND_MIB MiB), the destination maps the source's memfd (inode $ino0, destination ${dino:-none})" || :
[ "$(tap_state dst lmctap0)" = "$state0" ] && rc=0 || rc=$?
tap_result "$rc" "TAP settings on the destination are exactly the source's" || :
quit_qemu src
sleep 0.3
[ "$(ifindex lmctap0)" = "$idx0" ] && rc=0 || rc=$?
tap_result "$rc" "TAP outlives the source, same ifindex ($idx0)" || :
tap_check "guest answers payload pings on the destination alone" payload_ping 100 || :
ping_verdict "$T/ping.log" ""
tap_check "the guest's serial ticks go on on the destination, after the source's (no reboot)" \
    ticks_go_on dst "${t0:-0}" || :
quit_qemu dst

# ---- 3. faults ---------------------------------------------------------------------
boot_src src2 lmctap1 off || tap_bail "the guest did not boot"
s2=$(tap_state src2 lmctap1)
start_dst dst2 "$DST_TAP" || tap_bail "the destination does not start"
cpr_migrate src2 dst2 || :
lm_wait_until 20 lm_pid_gone "$(qpid dst2)" || :
grep -q "the CPR state holds no TAP for queue 0" "$T/dst2.log" && rc=0 || rc=$?
tap_result "$rc" "a source tap without cpr=on: the destination fails at start, naming the queue" ||
    tap_diag "destination: $(tail -n 3 "$T/dst2.log" | tr '\n' ' ')"
wait_migration src2 30 >/dev/null || :
lm_wait_until 10 status_is src2 running && [ "$(tap_state src2 lmctap1)" = "$s2" ] &&
    payload_ping 50 >/dev/null && rc=0 || rc=$?
tap_result "$rc" "the source keeps running on its TAP, unchanged, pings pass" || :
quit_qemu src2

boot_src src3 lmctap2 on || tap_bail "the guest did not boot"
s3=$(tap_state src3 lmctap2)
start_dst dst3 "tap,id=net0,incoming-fds=on,script=no,downscript=no" ||
    tap_bail "the destination does not start"
# with a return path, the source learns that the load failed (without
# one it completes after sending the little there is)
return_path src3 true
cpr_migrate src3 dst3 && lm_wait_until 20 test -S "$T/dst3.qmp" &&
    return_path dst3 true && incoming dst3 || :
wait_migration src3 60 >/dev/null && mrc=0 || mrc=$?
lm_wait_until 10 lm_pid_gone "$(qpid dst3)" || :
[ "$mrc" -ne 0 ] && grep -q "tap-cpr/net0" "$T/dst3.log" &&
    lm_wait_until 10 status_is src3 running && [ "$(tap_state src3 lmctap2)" = "$s3" ] &&
    payload_ping 50 >/dev/null && rc=0 || rc=$?
tap_result "$rc" "a destination tap without cpr=on fails the load (tap-cpr/net0 unknown); the source resumes on its TAP, pings pass" ||
    tap_diag "migration exit $mrc; destination: $(tail -n 3 "$T/dst3.log" | tr '\n' ' ')"
quit_qemu src3

lm_leftovers --ns "$LM_NS" >"$T/leftovers" 2>&1 && rc=0 || rc=$?
tap_result "$rc" "nothing left in the namespace (processes, TAPs)" ||
    tap_diag "$(cat "$T/leftovers")"
