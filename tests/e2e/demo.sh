#!/bin/bash
# The project's demo ("main job"): build the test guest, boot it under the
# BUILT libvirt, run as a host runs it (virtqemud and virtlogd daemons with
# the configuration the build ships, reached through qemu:///system), on the
# reference QEMU in a private
# network namespace with <backend transfer='on'/> on its interface, ping it,
# local-migrate it with backend transfer under a continuous 10 ms ping,
# tear everything down, and print what happened: the QEMU pid and the TAP
# (name, ifindex, bridge port, holder) before and after, the largest ping
# gap and the packets lost.
#
# Each phase is a step_* function working on shared variables.
#
# Env: LIBVIRT_BUILDDIR, LIBVIRT_WAIT (s to wait for the build, default
#      1800), QEMU (default: the reference QEMU of qemu/build.sh),
#      LOCALMIG_CACHE, DEMO_PING_SECS (default 3), BOOT_TIMEOUT (s, default
#      90), LM_KEEP=1 keeps the scratch dir.
set -euo pipefail
user_qemu=${QEMU:-}
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"
. "$LM_LIB_DIR/daemon.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
DEMO_PING_SECS=${DEMO_PING_SECS:-3}

say() { echo "demo: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
# key=value lookup in pingstat output
field() { sed -n "s/^$1=//p" <<<"$2"; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
clock() { date -d "@$1" +%H:%M:%S.%3N; }

domain_tap() { lh_virsh domiflist "$DOM" | awk 'NR == 1 { print $1 }'; }

step_prepare() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    say "building the guest (cached after the first run)"
    "$LM_E2E_DIR/guest/build-guest.sh" || die "guest build"
    . "${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest/guest.env"
    if ! lv_have_build; then
        say "waiting for the libvirt build in $LIBVIRT_BUILDDIR"
        lv_wait_build "${LIBVIRT_WAIT:-1800}" || die "no libvirt build"
    fi
    local qemu_env=${LOCALMIG_BUILD_ROOT:-$LM_E2E_DIR/../../_build}/qemu/qemu.env
    if [ -z "$user_qemu" ]; then
        [ -f "$qemu_env" ] || die "no reference QEMU: run ./localmig build"
        . "$qemu_env"
        QEMU=$QEMU_BIN
    fi
    LV_NET_XML="
      <backend transfer='on'/>"
    lv_ensure_qemu_user
    lm_tmpdir
    # QEMU runs as libvirt-qemu and reads its files below the scratch dir
    chmod 0711 "$LM_TMP"
    DOM=lm-demo-$$
    SERIAL=$LM_TMP/serial.log
    lm_netns_create demo
    say "starting virtlogd and virtqemud (default configuration) in $LM_NS"
    lh_start
    lv_domain_xml "$DOM" "$SERIAL" >"$LM_TMP/$DOM.xml"
}

step_boot() {
    say "defining and starting $DOM in namespace $LM_NS"
    lh_virsh define "$LM_TMP/$DOM.xml" >/dev/null || die "define"
    lm_nsexec "$LM_PINGSTAT" start "$LM_TMP/boot-ping.log" "$GUEST_IP" >/dev/null
    local t0
    t0=$(lm_now)
    lh_virsh start "$DOM" >/dev/null || die "start (see $LH_LOG/qemu/$DOM.log)"
    START_MS=$(lm_ms_since "$t0")
    "$LM_PINGSTAT" wait "$LM_TMP/boot-ping.log" "$BOOT_TIMEOUT" >/dev/null ||
        die "guest never answered a ping; console: $(tail -n 5 "$SERIAL" 2>/dev/null)"
    local stats
    stats=$("$LM_PINGSTAT" stop "$LM_TMP/boot-ping.log")
    FIRST_PING_MS=$(ms_between "$t0" "$(field first_reply_at "$stats")")
    READY_LINE=$(grep -m1 "$GUEST_READY_MARKER" "$SERIAL" | tr -d '\r' || :)
    QEMU_PID=$(lh_qemu_pid "$DOM") || die "no QEMU pid file"
    TAP_DEV=$(domain_tap)
    TAP_MASTER=$(ip -n "$LM_NS" -o link show dev "$TAP_DEV" |
                 sed -n 's/.* master \([^ ]*\) .*/\1/p')
    [ "$TAP_MASTER" = "$LM_BRIDGE" ] || die "TAP $TAP_DEV is not on $LM_BRIDGE"
}

# A window of steady pinging.  A migration step will run inside such a
# window (start pingstat, migrate, stop) so its blackout shows as max gap.
step_steady_ping() {
    say "pinging $GUEST_IP for ${DEMO_PING_SECS}s"
    lm_nsexec "$LM_PINGSTAT" start "$LM_TMP/ping.log" "$GUEST_IP" >/dev/null
    sleep "$DEMO_PING_SECS"
    PING_STATS=$("$LM_PINGSTAT" stop "$LM_TMP/ping.log")
}

# tap_line TAP: "name, ifindex N, port P of BRIDGE, held by PID (comm)"
tap_line() {
    lm_tap_info summary "$1"
}

# The main event: virsh migrate --live --local-backend-transfer inside a
# window of 10 ms pings.
step_migrate() {
    TAP_BEFORE=$(tap_line "$TAP_DEV")
    say "migrating $DOM to a new QEMU process, handing its TAP over"
    lm_nsexec "$LM_PINGSTAT" start "$LM_TMP/mig-ping.log" "$GUEST_IP" 0.01 >/dev/null
    "$LM_PINGSTAT" wait "$LM_TMP/mig-ping.log" 30 >/dev/null || die "no ping before migrating"
    local t0
    t0=$(lm_now)
    lh_virsh migrate --live --local-backend-transfer "$DOM" ||
        die "migrate (see $LH_LOG/qemu/$DOM.log)"
    MIGRATE_MS=$(lm_ms_since "$t0")
    sleep 1
    MIG_STATS=$("$LM_PINGSTAT" stop "$LM_TMP/mig-ping.log")
    OLD_PID=$QEMU_PID
    QEMU_PID=$(lh_qemu_pid "$DOM") || die "no QEMU pid file"
    lm_wait_until 10 lm_pid_gone "$OLD_PID" || die "old QEMU $OLD_PID still running"
    TAP_AFTER=$(tap_line "$(domain_tap)")
    QEMU_USER=$(ps -o user= -p "$QEMU_PID")
    LOG_LINES=$(grep -c . "$LH_LOG/qemu/$DOM.log")
}

step_teardown() {
    say "destroying and undefining $DOM"
    lh_virsh destroy "$DOM" >/dev/null || die "destroy"
    lm_wait_until 10 lm_pid_gone "$QEMU_PID" || die "QEMU $QEMU_PID still running"
    lh_virsh undefine "$DOM" >/dev/null || die "undefine"
    lh_stop
    LEFTOVERS=$(lm_leftovers --ns "$LM_NS" --match "$LM_TMP" "$LM_TMP") ||
        die "left behind: $LEFTOVERS"
}

report() {
    local s=$PING_STATS
    cat <<EOF

=== libvirt-localmig demo ===
libvirt      $LIBVIRT_BUILDDIR: virtqemud and virtlogd as daemons, shipped
             qemu.conf (QEMU as libvirt-qemu, DAC, mount namespace, cgroups,
             logs through virtlogd), virsh -c qemu:///system
emulator     $QEMU ($("$QEMU" --version | head -n1))
namespace    $LM_NS, bridge $LM_BRIDGE $LM_BRIDGE_IP/$LM_PREFIX
domain       $DOM, TAP $TAP_DEV (port of $TAP_MASTER), <backend transfer='on'/>
guest        kernel $GUEST_KERNEL_VERSION, ${GUEST_MEM_MIB} MiB, $GUEST_IP
console      $READY_LINE
boot         virsh start ${START_MS} ms, start-to-first-ping ${FIRST_PING_MS} ms
ping ${DEMO_PING_SECS}s      sent $(field sent "$s"), received $(field received "$s"), lost $(field lost_after_first_reply "$s") (+$(field unanswered_tail "$s") in flight at stop)
             largest gap $(field max_gap_ms "$s") ms at $(clock "$(field max_gap_at "$s")") (seq $(field max_gap_seqs "$s"))
migration    virsh migrate --live --local-backend-transfer: ${MIGRATE_MS} ms
  QEMU pid   $OLD_PID -> $QEMU_PID
  TAP before $TAP_BEFORE
  TAP after  $TAP_AFTER
  QEMU user  $QEMU_USER; domain log $LH_LOG/qemu/$DOM.log: $LOG_LINES lines, both processes'
  pings      every 10 ms: sent $(field sent "$MIG_STATS"), received $(field received "$MIG_STATS"), lost $(field lost_after_first_reply "$MIG_STATS")
             largest gap $(field max_gap_ms "$MIG_STATS") ms at $(clock "$(field max_gap_at "$MIG_STATS")")
teardown     destroyed, undefined, nothing left behind
EOF
}

step_prepare
step_boot
step_steady_ping
step_migrate
step_teardown
report
