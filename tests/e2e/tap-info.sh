#!/bin/bash
# virt-tap-info (tools/, built with libvirt) names the processes that hold
# a TAP's queues. /proc/PID/fdinfo gives only the device's name, and every
# network namespace may have a TAP of that name (each test, each benchmark,
# each container host's guests): a holder counts only when its TAP is a
# device of the namespace virt-tap-info runs in. TAP output.
#
# Env: LIBVIRT_BUILDDIR (default _build/libvirt of this checkout).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

[ "$(id -u)" = 0 ] || tap_skip_all "needs root (network namespaces, TAPs)"
[ -c /dev/net/tun ] || tap_skip_all "no /dev/net/tun"
lv_have_build || tap_skip_all "no libvirt build in $LIBVIRT_BUILDDIR"

tap_plan 4
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

holders() { tap_info "$1" "$2" | sed -n 's/^holder: \([0-9]*\) .*/\1/p' | tr '\n' ' '; }

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
fails() { ! "$@" >/dev/null 2>&1; }
tap_check "a name that is no device here is refused" fails tap_info "$nsa" lmtap9
