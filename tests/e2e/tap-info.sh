#!/bin/bash
# virt-tap-info (tools/, built with libvirt) names the processes that hold
# a TAP's queues. /proc/PID/fdinfo gives only the device's name, and every
# network namespace may have a TAP of that name (each test, each benchmark,
# each container host's guests): a holder counts only when its TAP is a
# device of the namespace virt-tap-info runs in. --json says the same for
# scripts; the tests read it through lib/tapinfo.py. TAP output.
#
# Env: LIBVIRT_BUILDDIR (default _build/libvirt of this checkout).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

[ "$(id -u)" = 0 ] || tap_skip_all "needs root (network namespaces, TAPs)"
[ -c /dev/net/tun ] || tap_skip_all "no /dev/net/tun"
lv_have_build || tap_skip_all "no libvirt build in $LIBVIRT_BUILDDIR"

tap_plan 6
lm_tmpdir

# hold_tap NS NAME: a process in NS holding one queue of a new TAP NAME
# (gone with it); its pid is printed once the TAP exists.
hold_tap() {
    ip netns exec "$1" python3 -c '
import fcntl, os, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", sys.argv[1].encode(), 0x1002))
print(os.getpid(), flush=True)
time.sleep(300)' "$2" >"$LM_TMP/$1.pid" &
    lm_wait_until 10 test -s "$LM_TMP/$1.pid"
    cat "$LM_TMP/$1.pid"
}

tap_info() {
    ip netns exec "$1" "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virt-tap-info" "$2"
}

holders() { LM_NS=$1 lm_tap_info holders "$2"; }

lm_netns_create tapa; nsa=$LM_NS
lm_netns_create tapb; nsb=$LM_NS
pida=$(hold_tap "$nsa" lmtap0)
pidb=$(hold_tap "$nsb" lmtap0)

tap_diag "$(tap_info "$nsa" lmtap0)"
tap_check "the holder of lmtap0 in its namespace ($pida) is named" \
    test "$(holders "$nsa" lmtap0)" = "$pida "
tap_check "the other namespace's lmtap0 has its own holder ($pidb) only" \
    test "$(holders "$nsb" lmtap0)" = "$pidb "

# a persistent TAP nobody holds
ip -n "$nsa" tuntap add dev lmtap1 mode tap
tap_check "a TAP nobody holds: holder none" \
    grep -qx "holder: none" <(tap_info "$nsa" lmtap1)
# refused: exit status 1 (not a crash) and the reason on stderr
rc=0
err=$(tap_info "$nsa" lmtap9 2>&1 >/dev/null) || rc=$?
tap_expect "a name that is no device here is refused, naming it" \
    "1 virt-tap-info: no network device 'lmtap9' here: No such device" "$rc $err"

# --json: the same in a form to read, for both TAPs at once
json=$(ip netns exec "$nsa" "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virt-tap-info" --json lmtap0 lmtap1)
tap_expect "--json: the TAPs, their ifindex and holders" \
    "lmtap0:$(ip netns exec "$nsa" cat /sys/class/net/lmtap0/ifindex):$pida lmtap1:$(ip netns exec "$nsa" cat /sys/class/net/lmtap1/ifindex):" \
    "$(python3 -c 'import json, sys
print(" ".join("%s:%d:%s" % (t["tap"], t["ifindex"], ",".join(str(h["pid"]) for h in t["holders"]))
               for t in json.load(sys.stdin)))' <<<"$json")"
tap_expect "--json: the queue of the holder of lmtap0 read through its fd" \
    "1 $pida queues=1 " \
    "$(python3 -c 'import json, sys; t = json.load(sys.stdin)[0]; print(len(t["holders"][0]["queues"]), end=" ")' <<<"$json")$(LM_NS=$nsa lm_tap_info queues lmtap0)"
