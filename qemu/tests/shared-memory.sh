#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A same-host migration of the reference QEMU that does not copy guest RAM:
# source and destination map one file-backed shared memory
# (memory-backend-file,share=on) and the migration capability x-ignore-shared
# skips that RAM block; only device state and the small private blocks
# (firmware, option ROMs, ACPI tables) go over the channel.  Without
# libvirt.  What it checks:
#   - the guest boots with its RAM in $T/ram/pc.ram (a tmpfs of the test's
#     own, as a host's /dev/shm), mapped shared;
#   - a destination opening the same file leaves it alone: neither its size
#     nor its content changes (source paused while it is hashed);
#   - x-ignore-shared must be on on both sides: on the source only, the
#     destination refuses the stream and the source keeps the guest;
#   - the migration over a UNIX socket completes, the destination runs the
#     guest, ram.transferred stays below BOUND_MIB; the destination maps the
#     very file (same inode, not deleted), which outlives the source; the
#     guest answers pings throughout and its serial ticks go on (no reboot);
#   - a destination on another (new, empty) file: a management check of
#     /proc/PID/maps tells it apart, and after the migration its file
#     holds only zeros: no guest RAM went over the wire;
#   - the control: the same guest migrated WITHOUT x-ignore-shared into a
#     process with private RAM transfers more than BOUND_MIB and at least
#     ~the non-zero pages of the guest's RAM, so the bound discriminates;
#     the guest then answers pings and powers itself off on a line typed on
#     its serial port.
#
# Run as root after qemu/build.sh:  qemu/tests/shared-memory.sh
# Output is TAP.  LM_KEEP=1 keeps the scratch dir (QEMU logs, ping logs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

qemu_test_begin 23 sm

# ram.transferred of a migration with x-ignore-shared must stay below this;
# one without copies the guest's used RAM (tens of MiB for this guest).
BOUND_MIB=16
PAGE=4096

# tmpfs: shared guest RAM lives in memory, as in /dev/shm, not on the disk
# under /tmp; lazily unmounted at exit (QEMU may still map it then).
mkdir "$T/ram"
mount -t tmpfs -o "size=$((2 * GUEST_MEM_MIB + 64))m,mode=0700" lm-shm "$T/ram"
lm_defer umount -l "$T/ram"
RAM=$T/ram/pc.ram

# mem_args FILE: guest RAM from FILE, shared; the backend's id pc.ram is
# the RAM block's name, as for a plain -m (so a copy into one matches).
# The -machine option is merged with start_qemu's (which gives -m).
# discard-data stays off (the default): on, the source quitting would
# punch the file empty under the destination's running guest.
mem_args() {
    echo "-object memory-backend-file,id=pc.ram,mem-path=$1,size=${GUEST_MEM_MIB}M,share=on,discard-data=off" \
         "-machine memory-backend=pc.ram"
}
# nic_args TAP: the NIC on a TAP of its own (each QEMU opens its own).
nic_args() {
    echo "-netdev tap,id=net0,ifname=$1,script=no,downscript=no" \
         "-device virtio-net-pci,netdev=net0,mac=$MAC"
}
CMDLINE="$GUEST_CMDLINE localmig.tick=ttyS1"

ignore_shared() {   # NAME true|false
    qmp "$1" migrate-set-capabilities "{\"capabilities\": [{\"capability\": \"x-ignore-shared\", \"state\": $2}]}" >/dev/null
}

# migrate_unix SRC DST: DST listens on $T/DST.mig, SRC migrates there.
migrate_unix() {
    qmp "$2" migrate-incoming "{\"uri\": \"unix:$T/$2.mig\"}" >/dev/null &&
        lm_wait_until 10 test -S "$T/$2.mig" &&
        qmp "$1" migrate "{\"uri\": \"unix:$T/$2.mig\"}" >/dev/null
}
# migrate_to_run SRC DST WHAT WHERE: migrate_unix, which must complete
# (WHAT names it) into DST (WHERE) running the guest; the figures in $res.
# 2 points.
migrate_to_run() {
    local rc
    migrate_unix "$1" "$2" || tap_bail "cannot start the migration"
    res=$(wait_migration "$1") && rc=0 || rc=$?
    tap_result "$rc" "$3 completes" || :
    tap_diag "$(echo "$res" | tr '\n' ' ')"
    wait_status "$2" running 20 && rc=0 || rc=$?
    tap_result "$rc" "$4 runs the guest" ||
        tap_bail "the guest is not on $4: $(tail -n 2 "$T/$2.log" | tr '\n' ' ')"
}
# wait_status NAME STATUS S: polls query-status (quiet when NAME is gone).
wait_status() { $QMP "$T/$1.qmp" wait-status "$2" "$3" >/dev/null 2>&1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

# ram_digest FILE: "SHA256 NONZERO_PAGES" of FILE.
ram_digest() {
    $PY -c '
import hashlib, sys
page = int(sys.argv[2]); zero = bytes(page); h = hashlib.sha256(); nz = 0
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        h.update(b)
        nz += sum(1 for i in range(0, len(b), page) if b[i:i + page] != zero)
print(h.hexdigest(), nz)' "$1" "$PAGE"
}
file_id() { stat -c '%i %s' "$1"; }   # inode and size

# ram_mapping NAME FILE: "INODE PERMS [(deleted)]" of QEMU NAME's first
# mapping of FILE, from /proc/PID/maps (what a management layer can check).
ram_mapping() {
    awk -v f="$2" '$6 == f { print $5, $2, $7; exit }' "/proc/$(qpid "$1")/maps" 2>/dev/null || :
}


# ---- 1. the guest on a shared file ---------------------------------------------
# shellcheck disable=SC2046
start_qemu src $(mem_args "$RAM") $(tick_args src) \
    -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" -append "$CMDLINE" \
    $(nic_args lmshtap0) || tap_bail "QEMU does not start on a memory-backend-file"
plug_and_wait src lmshtap0 || tap_bail "the guest did not boot"
tap_ok "guest boots with its RAM in a share=on memory-backend-file and answers pings"
read -r ino0 size0 < <(file_id "$RAM")
map=$(ram_mapping src "$RAM")
[ "$size0" = $((GUEST_MEM_MIB * 1048576)) ] && [ "$map" = "$ino0 rw-s " ] && rc=0 || rc=$?
tap_result "$rc" "source maps $RAM shared (rw-s), $GUEST_MEM_MIB MiB" ||
    tap_diag "file: inode $ino0 size $size0; mapping: $map"

# ---- 2. a destination opens the same file ----------------------------------------
# Paused, the source writes no guest RAM: the file must hash the same
# before and after the destination started on it (no truncation, no
# ROM/firmware load into guest RAM, no zeroing).
qmp src stop >/dev/null
read -r sum0 nz0 < <(ram_digest "$RAM")
# shellcheck disable=SC2046
start_qemu dst $(mem_args "$RAM") $(tick_args dst) $(nic_args lmshtap1) \
    -incoming defer || tap_bail "destination does not start"
wait_status dst inmigrate 10 || tap_bail "destination not waiting"
read -r sum1 _ < <(ram_digest "$RAM")
qmp src cont >/dev/null
[ "$sum0" = "$sum1" ] && [ "$(file_id "$RAM")" = "$ino0 $size0" ] && rc=0 || rc=$?
tap_result "$rc" "a destination started on the same file changes neither its size nor its content" ||
    tap_diag "sha256 before $sum0, after $sum1; file now: $(file_id "$RAM")"
tap_diag "guest RAM file: $nz0 non-zero pages ($(mib $((nz0 * PAGE)))) of $((size0 / PAGE)); allocated $(du -k "$RAM" | cut -f1) KiB"
ip -n "$LM_NS" link set lmshtap1 master "$LM_BRIDGE"
ip -n "$LM_NS" link set lmshtap1 up

# ---- 3. x-ignore-shared on the source only ---------------------------------------
# The capability is validated in the stream's configuration section, ahead
# of any RAM: the destination (on the same file) refuses; with the return
# path the source learns it and runs on.
# shellcheck disable=SC2046
start_qemu nocap $(mem_args "$RAM") $(tick_args nocap) $(nic_args lmshtapn) \
    -incoming defer || tap_bail "destination does not start"
ignore_shared src true
return_path src true
return_path nocap true
migrate_unix src nocap || tap_bail "cannot start the migration"
res=$(wait_migration src 60) && rc=0 || rc=$?
lm_wait_until 10 lm_pid_gone "$(qpid nocap)" || :
msg="Capability x-ignore-shared is off, but received capability is on"
[ "$rc" -ne 0 ] && grep -q "$msg" "$T/nocap.log" && rc=0 || rc=1
tap_result "$rc" "x-ignore-shared on the source only: the destination refuses the stream" ||
    tap_diag "$(echo "$res" | tr '\n' ' ')" "$(tail -n 3 "$T/nocap.log")"
tap_diag "destination: $(grep -m1 'x-ignore-shared' "$T/nocap.log" || tail -n 1 "$T/nocap.log")"
t0=$(last_tick src)
wait_status src running 10 && payload_ping 50 >/dev/null &&
    ticks_go_on src "${t0:-0}" >/dev/null && rc=0 || rc=$?
tap_result "$rc" "the source keeps the guest: it runs, answers payload pings, ticks" || :
return_path src false

# ---- 4. the migration without RAM --------------------------------------------------
ignore_shared src true
ignore_shared dst true
ping_start "$T/ping.log"
t0=$(last_tick src)
migrate_to_run src dst "migration with x-ignore-shared over a UNIX socket" "the destination"
xfer=$(field transferred "$res")
[ -n "$xfer" ] && [ "$xfer" -lt $((BOUND_MIB * 1048576)) ] && rc=0 || rc=1
tap_result "$rc" "ram.transferred with x-ignore-shared: $xfer bytes ($(mib "${xfer:-0}")), below $BOUND_MIB MiB for a $GUEST_MEM_MIB MiB guest" || :
smap=$(ram_mapping src "$RAM")
dmap=$(ram_mapping dst "$RAM")
[ "$dmap" = "$ino0 rw-s " ] && [ "$smap" = "$dmap" ] && rc=0 || rc=1
tap_result "$rc" "destination maps the very file shared (inode $ino0, rw-s, not deleted), as the source" ||
    tap_diag "source: $smap" "destination: $dmap"
quit_qemu src
[ "$(file_id "$RAM")" = "$ino0 $size0" ] && [ "$(ram_mapping dst "$RAM")" = "$ino0 rw-s " ] &&
    rc=0 || rc=1
tap_result "$rc" "the RAM file outlives the source (same inode, same size, still mapped)" || :
tap_check "guest answers payload pings on the destination alone" payload_ping 100 || :
ping_verdict "$T/ping.log" "" || :
out=$(ticks_go_on dst "${t0:-0}") && rc=0 || rc=$?
tap_result "$rc" "the guest's serial ticks go on on the destination (from tick ${t0:-?} on: no reboot)" || :
tap_diag "$out"

# ---- 5. a destination on another file ----------------------------------------------
# What QEMU does not check (it only compares the block's guest address): a
# management layer can, from /proc/PID/maps, before migrating.  Migrating
# anyway shows that nothing of the guest's RAM reaches the destination:
# its new file holds only zeros (its guest would have no RAM).
OTHER=$T/ram/other.ram
# shellcheck disable=SC2046
start_qemu wrong $(mem_args "$OTHER") $(tick_args wrong) $(nic_args lmshtapw) \
    -S -incoming defer || tap_bail "destination does not start"
wmap=$(ram_mapping wrong "$OTHER")
[ -n "$wmap" ] && [ "${wmap%% *}" != "$ino0" ] && rc=0 || rc=1
tap_result "$rc" "a destination on another file is told apart by its mapping's inode (${wmap%% *}, not $ino0)" ||
    tap_diag "wrong: $wmap"
ignore_shared wrong true
return_path dst true
return_path wrong true
migrate_unix dst wrong || tap_bail "cannot start the migration"
res=$(wait_migration dst 60) && rc=0 || rc=$?
tap_diag "into another file: $(echo "$res" | tr '\n' ' ')" \
    "its destination: $(status_of wrong 2>/dev/null || echo "gone: $(tail -n 1 "$T/wrong.log")")"
# Content, not allocation: the destination's device load reads guest RAM,
# and a read fault on a tmpfs hole allocates a (zero) page.
read -r _ nzo < <(ram_digest "$OTHER")
[ "$nzo" = 0 ] && rc=0 || rc=1
tap_result "$rc" "after the migration the other file holds only zeros: no guest RAM went over the wire" ||
    tap_diag "$nzo non-zero pages"
tap_diag "other file: $nzo non-zero pages, $(du -k "$OTHER" | cut -f1) KiB allocated" \
    "its destination's log: $(grep -m1 'error while loading' "$T/wrong.log" || echo none)"
quit_qemu wrong
return_path dst false
# failed: the source went on by itself; completed: it waits in postmigrate
wait_status dst running 1 || qmp dst cont >/dev/null
t0=$(last_tick dst)
wait_status dst running 10 && payload_ping 50 >/dev/null &&
    ticks_go_on dst "${t0:-0}" >/dev/null && rc=0 || rc=$?
tap_result "$rc" "the guest resumes where it was: it runs, answers payload pings, ticks" || :

# ---- 6. the control: the same guest copied into private RAM -----------------------
# shellcheck disable=SC2046
start_qemu ctl $(tick_args ctl) $(nic_args lmshtap2) -incoming defer ||
    tap_bail "destination does not start"
ip -n "$LM_NS" link set lmshtap2 master "$LM_BRIDGE"
ip -n "$LM_NS" link set lmshtap2 up
ignore_shared dst false
migrate_to_run dst ctl "migration without x-ignore-shared into private RAM" "the private-RAM destination"
copy=$(field transferred "$res")
used=$((nz0 * PAGE))
[ -n "$copy" ] && [ "$copy" -ge $((BOUND_MIB * 1048576)) ] && [ "$copy" -ge $((used * 9 / 10)) ] &&
    rc=0 || rc=1
tap_result "$rc" "ram.transferred without x-ignore-shared: $copy bytes ($(mib "${copy:-0}")), above $BOUND_MIB MiB and ~the guest's $(mib "$used") of non-zero pages" || :
tap_diag "x-ignore-shared: $(mib "${xfer:-0}"); copy: $(mib "${copy:-0}")"
quit_qemu dst
[ -z "$(ram_mapping ctl "$RAM")" ] && rc=0 || rc=1
tap_result "$rc" "the private-RAM destination does not map the file" || :
tap_check "guest answers payload pings from private RAM" payload_ping 100 || :
$PY -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.5)' "$T/ctl.tick" "$GUEST_POWEROFF_COMMAND"
lm_wait_until 30 lm_pid_gone "$(qpid ctl)" &&
    grep -q "$GUEST_POWEROFF_COMMAND: powering off" "$T/ctl.serial" && rc=0 || rc=1
tap_result "$rc" "the guest powers itself off on a line typed on its serial port" ||
    tap_diag "$(tail -n 3 "$T/ctl.serial")"

lm_leftovers --ns "$LM_NS" >"$T/leftovers" 2>&1 && rc=0 || rc=1
tap_result "$rc" "nothing left in the namespace (processes, TAPs)" ||
    tap_diag "$(cat "$T/leftovers")"
