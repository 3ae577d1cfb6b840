#!/bin/bash
# Backend transfer of an <interface type='network'>: the network driver
# (the built virtnetworkd, run here in the test's namespace) gives the
# interface a port that plugs its TAP into the network's bridge. With
# --local-backend-transfer the TAP and that port stay: the new QEMU holds
# the same TAP, the network has the same single port, nothing is lost. A
# classic --local on the same guest gets a new TAP and a new port, and the
# old port is released. When a migration fails (the new QEMU killed, the
# daemon killed and the next one recovering), the network is left with the
# port of the running guest alone. After the final destroy the network has
# no port.
# TAP output.
#
# virtnetworkd is a system daemon: it takes the build's fixed runtime paths
# (a second one cannot run beside it), so the test skips when one runs.
#
# Env: as local-migrate.sh; the reference QEMU comes from qemu/build.sh.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}

lv_reference_qemu
QEMU=$QEMU_BIN
[ -x "$LIBVIRT_BUILDDIR/src/virtnetworkd" ] ||
    tap_skip_all "libvirt was built without the network driver"
command -v nft >/dev/null || command -v iptables >/dev/null ||
    tap_skip_all "the network driver needs nft or iptables"
pgrep -x virtnetworkd >/dev/null && tap_skip_all "a virtnetworkd runs already"

lv_guest_test 23 net

net=lmnet-$$
vnd_log=$LM_TMP/virtnetworkd.log

# virsh of the network driver (the system daemon started below)
net_virsh() {
    "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virsh" -q -c network:///system "$@"
}

ports() { net_virsh net-port-list --uuid "$net" | sed '/^$/d' | sort | tr '\n' ' '; }

net_destroy() { net_virsh net-destroy "$net" >/dev/null 2>&1 || :; }

stop_daemon() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    lm_wait_until 10 lm_pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || :
}

# the domain's TAP: the target of its interface on the network (domiflist
# shows the type the port gave it, bridge, and the network as source)
tap_of() {
    lv_virsh "$root" domiflist "$dom" | awk -v net="$net" '$3 == net { print $1; exit }'
}

holders() {
    lm_tap_info holders "$1"
}

ifindex() { lm_nsexec cat "/sys/class/net/$1/ifindex"; }

# --- the network ---------------------------------------------------------
# Clients look for the daemon's socket below LOCALSTATEDIR/run (/var/local
# for this uninstalled build), the daemon puts it below RUNSTATEDIR (/run):
# the same place once installed with prefix /usr, not here.
localstatedir=$(sed -n 's/^#define LOCALSTATEDIR "\(.*\)"$/\1/p' "$LIBVIRT_BUILDDIR/configmake.h")
[ -n "$localstatedir" ] || tap_bail "no LOCALSTATEDIR in $LIBVIRT_BUILDDIR/configmake.h"
sock_dir=$localstatedir/run/libvirt
# create what is missing of it, and remove just that at the end
missing=()
d=$sock_dir
while [ ! -d "$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
mkdir -p "$sock_dir"
for d in "${missing[@]}"; do lm_defer rmdir "$d"; done   # deepest first
printf 'unix_sock_dir = "%s"\n' "$sock_dir" >"$LM_TMP/virtnetworkd.conf"
LIBVIRT_LOG_OUTPUTS="3:file:$vnd_log" \
    ip netns exec "$LM_NS" "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/src/virtnetworkd" \
    -f "$LM_TMP/virtnetworkd.conf" </dev/null >>"$vnd_log" 2>&1 &
vnd=$!
lm_defer stop_daemon "$vnd"
if lm_wait_until 20 net_virsh uri >/dev/null 2>&1; then
    tap_ok "virtnetworkd of the build runs in $LM_NS"
else
    tap_not_ok "virtnetworkd of the build runs"
    tap_diag "$(tail -n 20 "$vnd_log")"
    tap_bail "no network driver"
fi

cat >"$LM_TMP/$net.xml" <<EOF
<network>
  <name>$net</name>
  <forward mode='bridge'/>
  <bridge name='$LM_BRIDGE'/>
</network>
EOF
tap_check "network $net: forward mode bridge on $LM_BRIDGE" \
    net_virsh net-create "$LM_TMP/$net.xml" || tap_bail "no network"
lm_defer net_destroy

# the domain's interface: on the network, handed over by the migration
sed -e "s|<interface type='bridge'>|<interface type='network'>|" \
    -e "s|<source bridge='$LM_BRIDGE'/>|<source network='$net'/>|" \
    -e "s|<rom enabled='no'/>|<rom enabled='no'/><backend transfer='on'/>|" \
    "$LM_TMP/$dom.xml" >"$LM_TMP/$dom.net.xml"

tap_check "define and start $dom with <interface type='network'> and <backend transfer='on'/>" \
    lv_virsh "$root" "define $LM_TMP/$dom.net.xml; start $dom" || { show_logs; tap_bail "start failed"; }
lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial" ||
    tap_bail "guest did not boot"
tap_check "guest answers pings" answers || tap_bail "no ping"

port0=$(ports)
tap0=$(tap_of)
index0=$(ifindex "$tap0")
if [ "$(wc -w <<<"$port0")" -eq 1 ] &&
   lv_virsh "$root" dumpxml "$dom" | grep -q "portid='${port0% }'"; then
    tap_ok "one port on $net ($port0), the domain's interface names it"
else
    tap_not_ok "one port on $net, named by the interface (ports: '$port0')"
fi

# --- backend transfer ------------------------------------------------------
migrate_pinged "migrate --live --local-backend-transfer" --live --local-backend-transfer "$dom"
lost=$(stat_of lost_after_first_reply)
gap=$(stat_of max_gap_ms)
tap1=$(tap_of)
if [ "$tap1" = "$tap0" ] && [ "$(ifindex "$tap1")" = "$index0" ] &&
   [ "$(holders "$tap1")" = "$pid1 " ] && [ "$lost" -eq 0 ]; then
    tap_ok "the new QEMU $pid1 holds the same TAP $tap1 (ifindex $index0); no packet lost, largest gap $gap ms"
else
    tap_not_ok "same TAP held by the new QEMU, none lost ($tap0 -> $tap1, holders $(holders "$tap1"), lost $lost)"
fi
tap_expect "the network port stayed: the same single port" "$port0" "$(ports)"

# --- classic, for comparison ---------------------------------------------
migrate_pinged "migrate --live --local (classic)" --live --local "$dom"
tap2=$(tap_of)
port2=$(ports)
if [ -n "$tap2" ] && [ "$tap2" != "$tap1" ] && [ "$(wc -w <<<"$port2")" -eq 1 ] &&
   [ "$port2" != "$port0" ] && ! lm_nsexec test -e "/sys/class/net/$tap1"; then
    tap_ok "classic: new TAP $tap2 and port $port2; the old TAP and port are gone (gap $(stat_of max_gap_ms) ms, $(stat_of lost_after_first_reply) lost)"
else
    tap_not_ok "classic: a new TAP and port replace the old ($tap1 -> $tap2; ports $port0 -> $port2)"
fi
tap_check "guest answers pings" answers || :

# --- faults: the port of the new process goes with it ---------------------
# after_fault NAME (of lib/libvirt.sh's fault_*): the guest on its original
# QEMU, and the network with the ports it had before, no more
after_fault() {
    if one_qemu && [ "$(lv_qemu_pid "$root" "$dom")" = "$old" ] && answers &&
       [ "$(ports)" = "$ports0" ]; then
        tap_ok "$1: the guest answers on its original QEMU $old; $net has its port alone ($ports0)"
    else
        tap_not_ok "$1: the guest on its original QEMU, $net with its port alone"
        tap_diag "QEMUs: $(qemu_pids | tr '\n' ' ') ports: $ports0 -> $(ports)"
        show_logs
    fi
}
ports0=$(ports)
fault_kill_new --local
fault_kill_daemon --local
fault_kill_daemon --local-backend-transfer

# after the destroy: the port is released; then the network and the
# daemon go before the leftover check (the daemon lives in the namespace)
network_end() {
    tap_expect "no port left on $net" "" "$(ports)"
    net_destroy
    stop_daemon "$vnd"
}
lv_guest_end network_end
