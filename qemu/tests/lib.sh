# SPDX-License-Identifier: LGPL-2.1-or-later
#
# What the reference QEMU's own tests share: the checks that they can run,
# the guest, and helpers that start QEMU in the test's network namespace and
# drive it over QMP.  Sourced; the caller sets T (its scratch dir).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../../tests/e2e/lib/common.sh
. "$repo/tests/e2e/lib/common.sh"

[ "$(id -u)" = 0 ] || tap_skip_all "needs root (network namespace, TAP)"
[ -c /dev/net/tun ] || tap_skip_all "no /dev/net/tun"

qemu_env="${LOCALMIG_BUILD_ROOT:-$repo/_build}/qemu/qemu.env"
[ -f "$qemu_env" ] || tap_skip_all "no reference QEMU: run qemu/build.sh first"
# shellcheck disable=SC1090
. "$qemu_env"
[ -x "$QEMU_BIN" ] || tap_skip_all "$QEMU_BIN missing: run qemu/build.sh"

"$repo/tests/e2e/guest/build-guest.sh" >/dev/null 2>&1 ||
    tap_skip_all "cannot build the test guest (tests/e2e/guest/build-guest.sh)"
# shellcheck disable=SC1090
. "${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest/guest.env"

PY=/usr/bin/python3
QMP="$PY $here/lmqmp.py"
TAPTOOL="$PY $here/taptool.py"
MAC=52:54:00:4c:4d:02
GUEST=$GUEST_IP

# ---- helpers -----------------------------------------------------------------
# qemu_test_begin PLAN NS: the TAP plan, a scratch dir $T and a network
# namespace with its bridge (named after NS), both removed at exit.
qemu_test_begin() {
    tap_plan "$1"
    lm_tmpdir
    lm_netns_create "$2"
    T=$LM_TMP
}

# qmp NAME CMD [JSON]: run a command on QEMU NAME (socket $T/NAME.qmp).
qmp() { $QMP "$T/$1.qmp" cmd "$2" ${3:+"$3"}; }

# start_qemu NAME ARGS...: QEMU NAME in the namespace, in the background,
# stderr to $T/NAME.log; waits until its monitor answers, or for the socket
# QEMU_WAIT_FOR names (a QEMU that blocks before its monitor exists).  No
# -L: the binary must find its firmware by itself, as when libvirt runs it.
start_qemu() {
    local name=$1 pid; shift
    rm -f "$T/$name.qmp"
    ip netns exec "$LM_NS" "$QEMU_BIN" -nodefaults -no-user-config \
        -display none -machine pc,accel=tcg -m "$GUEST_MEM_MIB" \
        -qmp "unix:$T/$name.qmp,server=on,wait=off" \
        -serial "file:$T/$name.serial" "$@" \
        </dev/null >"$T/$name.log" 2>&1 &
    pid=$!
    disown "$pid"       # no job notice when a test kills it
    echo "$pid" >"$T/$name.pid"
    lm_wait_until 20 test -S "${QEMU_WAIT_FOR:-$T/$name.qmp}" || {
        tap_diag "$name did not start:" "$(cat "$T/$name.log")"
        return 1
    }
    # The socket exists before the machine and its memory backends do; the
    # monitor answers only from the main loop on.
    [ -n "${QEMU_WAIT_FOR:-}" ] || qmp "$name" query-status >/dev/null || {
        tap_diag "$name has no monitor:" "$(cat "$T/$name.log")"
        return 1
    }
}

qpid() { cat "$T/$1.pid"; }

# guest_args TAPNAME QUEUES DEVICE_EXTRA: a source running the guest.
guest_args() {
    local tap=$1 queues=$2 extra=$3 mq=
    [ "$queues" -gt 1 ] && mq=",mq=on,vectors=$((2 * queues + 2))"
    echo "-kernel $GUEST_KERNEL -initrd $GUEST_INITRD" \
         "-netdev tap,id=net0,ifname=$tap,queues=$queues,script=no,downscript=no" \
         "-device virtio-net-pci,netdev=net0,mac=$MAC$mq$extra"
}

# dest_args QUEUES DEVICE_EXTRA: a destination waiting for the TAP.
dest_args() {
    local queues=$1 extra=$2 mq=
    [ "$queues" -gt 1 ] && mq=",mq=on,vectors=$((2 * queues + 2))"
    echo "-netdev tap,id=net0,incoming-fds=on,queues=$queues,script=no,downscript=no" \
         "-device virtio-net-pci,netdev=net0,mac=$MAC$mq$extra" \
         "-incoming defer"
}

# boot_guest NAME TAPNAME QUEUES DEVICE_EXTRA [QEMU ARGS...]
boot_guest() {
    local name=$1 tap=$2 queues=$3 extra=$4; shift 4
    # shellcheck disable=SC2046
    start_qemu "$name" $(guest_args "$tap" "$queues" "$extra") \
        -append "$GUEST_CMDLINE" "$@" || return 1
    plug_and_wait "$name" "$tap"
}

# plug_and_wait NAME TAP: QEMU NAME created TAP; plug it into the bridge as
# libvirt would, and wait until the guest answers.
plug_and_wait() {
    local name=$1 tap=$2
    lm_wait_until 10 ip -n "$LM_NS" link show "$tap" || return 1
    ip -n "$LM_NS" link set "$tap" master "$LM_BRIDGE"
    ip -n "$LM_NS" link set "$tap" up
    lm_wait_until 60 grep -q "$GUEST_READY_MARKER" "$T/$name.serial" || {
        tap_diag "guest did not come up:" "$(tail -n 20 "$T/$name.serial")"
        return 1
    }
    lm_wait_until 30 lm_nsexec ping -c 1 -W 1 "$GUEST"
}

set_backend_transfer() {   # NAME true|false
    qmp "$1" migrate-set-parameters "{\"backend-transfer\": $2}" >/dev/null
}

# migrate_fd SRC DST: over a socketpair, both ends handed over with getfd.
migrate_fd() { $QMP migrate-fd "$T/$1.qmp" "$T/$2.qmp"; }

# wait_migration NAME [TIMEOUT]: prints key=value, fails unless completed.
wait_migration() { $QMP "$T/$1.qmp" wait-migration "${2:-120}"; }

status_of() { qmp "$1" query-status | $PY -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }
# status_is NAME STATE: for lm_wait_until, which must ask again each time
status_is() { [ "$(status_of "$1")" = "$2" ]; }

# tap_state NAME: the settings of NAME's first TAP fd, then ethtool's
# offload view of the device; what a destination must not change.
tap_state() {
    local pid fd
    pid=$(qpid "$1")
    fd=$($TAPTOOL fds "$pid" | awk 'NR == 1 { print $1 }')
    [ -n "$fd" ] || { echo "no TAP fd in $1"; return 1; }
    $TAPTOOL state "$pid" "$fd"
    lm_nsexec ethtool -k "$2" | grep -v '^Features for'
}

# payload_ping COUNT: pings with a pattern; ping reports mismatches as
# "wrong data byte"; all must come back intact.
payload_ping() {
    local out
    out=$(lm_nsexec ping -n -c "$1" -i 0.01 -W 1 -s 1200 -p a55a0ff0c33c "$GUEST" 2>&1) || {
        echo "ping exited with $?"; echo "$out" | tail -n 3; return 1; }
    if echo "$out" | grep -qi 'wrong data'; then
        echo "$out" | grep -i 'wrong data' | head -n 3; return 1
    fi
    echo "$out" | grep -q " $1 received" || { echo "$out" | tail -n 2; return 1; }
}

ifindex() { ip -n "$LM_NS" -o link show "$1" | cut -d: -f1; }

quit_qemu() {
    local pid
    pid=$(qpid "$1")
    qmp "$1" quit >/dev/null 2>&1 || true
    lm_wait_until 10 lm_pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
}

# failed_load SRC DST TAP STATE MESSAGE WHAT: migrate SRC into DST, which
# must fail its load with MESSAGE in its log; then SRC must still run on
# TAP with its settings STATE unchanged, answering payload pings.
failed_load() {
    local src=$1 dst=$2 tap=$3 state=$4 msg=$5 what=$6 rc
    migrate_fd "$src" "$dst" || tap_bail "cannot start the migration"
    wait_migration "$src" 60 >/dev/null && rc=0 || rc=$?
    lm_wait_until 10 lm_pid_gone "$(qpid "$dst")" || :
    grep -q "$msg" "$T/$dst.log" && [ "$rc" -ne 0 ] && rc=0 || rc=$?
    tap_result "$rc" "$what fails the destination's load" || :
    tap_diag "destination: $(grep -m1 "$msg" "$T/$dst.log" || tail -n 3 "$T/$dst.log")"
    lm_wait_until 10 status_is "$src" running &&
        [ "$(tap_state "$src" "$tap")" = "$state" ] && payload_ping 50 >/dev/null && rc=0 || rc=$?
    tap_result "$rc" "source keeps running on its TAP, unchanged, pings pass" || :
}

postcopy() {   # NAME true|false
    qmp "$1" migrate-set-capabilities "{\"capabilities\": [{\"capability\": \"postcopy-ram\", \"state\": $2}]}" >/dev/null
}

# migrate_to_running SRC DST WHAT: migrate SRC into DST over a socketpair;
# the migration must complete (WHAT names it) and DST run the guest.
migrate_to_running() {
    local res rc
    migrate_fd "$1" "$2" || tap_bail "cannot start the migration"
    res=$(wait_migration "$1") && rc=0 || rc=$?
    tap_result "$rc" "$3 completes" || :
    tap_diag "$(echo "$res" | tr '\n' ' ')"
    lm_wait_until 20 status_is "$2" running && rc=0 || rc=$?
    tap_result "$rc" "destination runs the guest" || :
}

# refuse_on NAME DESC EXPECTED CMD JSON: QMP CMD on QEMU NAME must fail
# with EXPECTED in its error.
refuse_on() {
    local out rc=0
    out=$(qmp "$1" "$4" "$5") || rc=$?
    if [ "$rc" -ne 0 ] && [[ "$out" == *"$3"* ]]; then
        tap_ok "$2"; tap_diag "error: $out"
    else
        tap_not_ok "$2"; tap_diag "exit $rc, output: $out"
    fi
}

# ping_start LOG: pings at 10 ms into LOG (for ping_verdict), once the
# guest answers; bails out if it does not.
ping_start() {
    lm_nsexec "$LM_PINGSTAT" start "$1" "$GUEST" 0.01 >/dev/null
    "$LM_PINGSTAT" wait "$1" 10 >/dev/null || tap_bail "no ping reply"
}

# ping_verdict LOG WHAT: stops the pings logged to LOG; the guest must have
# answered throughout (largest gap under 1 s, at most 10 lost).
ping_verdict() {
    local sum gap lost rc
    sum=$("$LM_PINGSTAT" stop "$1")
    gap=$(echo "$sum" | sed -n 's/^max_gap_ms=//p')
    lost=$(echo "$sum" | sed -n 's/^lost_after_first_reply=//p')
    tap_diag "pings at 10 ms through the migration: $(echo "$sum" | grep -E '^(sent|received|lost_after_first_reply|max_gap_ms)=' | tr '\n' ' ')"
    awk -v g="$gap" -v l="$lost" 'BEGIN { exit !(g < 1000 && l <= 10) }' && rc=0 || rc=$?
    tap_result "$rc" "${2}guest answered pings throughout (largest gap ${gap} ms, ${lost} lost)" || :
}

# ---- the guest's tick port and the migration's figures ---------------------
# tick_args NAME: the guest's second serial port (ttyS1, where it ticks
# every 0.5 s and reads commands) on the UNIX socket $T/NAME.tick.
tick_args() { echo "-chardev socket,id=tick,path=$T/$1.tick,server=on,wait=off -serial chardev:tick"; }
return_path() {     # NAME true|false
    qmp "$1" migrate-set-capabilities "{\"capabilities\": [{\"capability\": \"return-path\", \"state\": $2}]}" >/dev/null
}
field() { echo "$2" | sed -n "s/^$1=//p"; }   # field KEY KEY=VALUE-LINES
# ticks NAME [S]: the tick numbers the guest prints on NAME's tick port,
# read for up to S s (until 3 ticks).
ticks() {
    $PY -c '
import re, socket, sys, time
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    sys.exit("%s: %s" % (sys.argv[1], e))
s.settimeout(0.2)
data, end = b"", time.time() + float(sys.argv[3])
pat = re.compile(sys.argv[2].encode() + rb" (\d+)\r?\n")
while time.time() < end and len(pat.findall(data)) < 3:
    try:
        d = s.recv(4096)
    except socket.timeout:
        continue
    if not d:
        break
    data += d
print(" ".join(x.decode() for x in pat.findall(data)))' \
        "$T/$1.tick" "$GUEST_TICK_MARKER" "${2:-5}"
}
# ticks_go_on NAME AFTER: NAME's guest ticks, increasing, all above AFTER.
ticks_go_on() {
    local t
    t=$(ticks "$1")
    echo "ticks on $1: $t"
    [ -n "$t" ] && echo "$t" | awk -v a="$2" '{
        if (NF < 2) exit 1
        for (i = 1; i <= NF; i++) { if ($i <= a) exit 1; a = $i } }'
}
last_tick() { { ticks "$1" || :; } | awk '{ print $NF }'; }
