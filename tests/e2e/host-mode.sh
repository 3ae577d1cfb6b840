#!/bin/bash
# Host mode: local migration as a libvirt host runs it.  The built virtlogd
# and virtqemud run as daemons with the configuration files the build ships
# (QEMU as libvirt-qemu under DAC, mount namespaces, cgroups, virtlogd);
# virsh reaches them through the remote driver.  The guest is the realistic
# one (qcow2 on a backing file with a writer, pty console, agent channel,
# VNC, rng, balloon, two NICs), under ping on both NICs:
#
#   - classic local migration on Debian 12's QEMU 7.2, with virtlogd
#     re-executed (SIGUSR1) in the middle of one job and restarted (stop,
#     start) in the middle of another;
#   - the upgrade from 7.2 onto the reference QEMU (--xml, another
#     <emulator>);
#   - backend transfer on the reference QEMU (net0 handed over, net1
#     classic), twice: onto the same binary, which has both generations of
#     the interface (libvirt chooses the upstream one: net0's netdev and
#     NIC are not on the new command line, they come by QMP), then with
#     --xml onto the v10-only wrapper (net0's netdev is incoming-fds=on on
#     the command line);
#   - with lock_manager = "lockd" configured: the disk's lease moves with
#     the guest.
#
# After each migration: the guest answers on both NICs, virsh console sees
# its output on the new pty, VNC answers RFB, the agent socket exists,
# domblklist/domiflist are unchanged, QEMU runs as libvirt-qemu, the disk is
# still libvirt-qemu's, the new process is in its own cgroup under the
# domain's limits (schedinfo/memtune/blkiotune read the same) and the old
# one's cgroup is gone, the disk writer goes on, and the domain log holds
# both processes' lines.  At the end every acknowledged write is in the
# image, qemu-img check is clean, the disk's owner is restored, and nothing
# is left.  What the setup changes from libvirt's defaults, and why, is in
# lib/daemon.sh.  TAP output.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"
. "$LM_LIB_DIR/hostguest.sh"


# a limited bandwidth keeps a job in its MIGRATE phase for a few seconds,
# long enough to re-execute or restart virtlogd in it (MiB/s)
SLOW_BANDWIDTH=${SLOW_BANDWIDTH:-16}
QEMU_OLD=${QEMU_OLD:-/usr/bin/qemu-system-x86_64}
QEMU_ENV=${LOCALMIG_BUILD_ROOT:-$LM_E2E_DIR/../../_build}/qemu/qemu.env

[ "$(id -u)" = 0 ] || tap_skip_all "must run as root"
lv_wait_build "${LIBVIRT_WAIT:-0}" ||
    tap_skip_all "no libvirt build at $LIBVIRT_BUILDDIR"
[ -f "$QEMU_ENV" ] || tap_skip_all "no reference QEMU ($QEMU_ENV); run ./localmig build"
QEMU_REF=$(. "$QEMU_ENV" && echo "$QEMU_BIN")
QEMU_V10=$(. "$QEMU_ENV" && echo "$QEMU_BIN_V10")

tap_plan 97

host_guest_setup host

# --- classic local migration on QEMU 7.2, virtlogd in the middle -----------
boot_domain "lm-host-$$" "$QEMU_OLD"
cgroup0=$(cgroup_of "$pid")

logd0=$(cat "$LH_RUN/virtlogd.pid")
migrate_job "#1 migrate --live --local, virtlogd re-executed mid-job" \
    lh_virtlogd_reexec --live --local --bandwidth "$SLOW_BANDWIDTH" "$dom"
after_migration "#1"
# the old process's stream outlived the re-exec: its last words are there
if [ "$(cat "$LH_RUN/virtlogd.pid")" = "$logd0" ] &&
   grep -q "terminating on signal 15" "$LH_LOG/qemu/$dom.log"; then
    tap_ok "#1: virtlogd $logd0 re-executed; the old QEMU's last line came through its kept stream"
else
    tap_not_ok "#1: the old QEMU's stream survives virtlogd's re-exec"
    tap_diag "$(tail -n 6 "$LH_LOG/qemu/$dom.log")"
fi

migrate_job "#2 migrate --live --local, virtlogd restarted mid-job" \
    lh_virtlogd_restart --live --local --bandwidth "$SLOW_BANDWIDTH" "$dom"
after_migration "#2"

# --- the upgrade: 7.2 onto the reference QEMU ----------------------------
lh_virsh dumpxml --migratable "$dom" |
    sed "s|<emulator>.*</emulator>|<emulator>$QEMU_REF</emulator>|" >"$LM_TMP/upgrade.xml"
migrate_job "#3 upgrade 7.2 -> reference QEMU (migrate --local --xml)" : \
    --live --local --xml "$LM_TMP/upgrade.xml" "$dom"
after_migration "#3"
domxml=$(lh_virsh dumpxml "$dom")
if [[ "$domxml" == *"<emulator>$QEMU_REF</emulator>"* ]] &&
   [ "$(readlink "/proc/$pid1/exe")" = "$QEMU_REF" ]; then
    tap_ok "#3: the domain runs $QEMU_REF"
else
    tap_not_ok "#3: the domain runs the reference QEMU"
fi
end_domain

# --- backend transfer on the reference QEMU -------------------------------
RG_NET0_XML="
      <backend transfer='on'/>" boot_domain "lm-hostbt-$$" "$QEMU_REF"
cgroup0=$(cgroup_of "$pid")
tap0=$(lh_virsh domiflist "$dom" | awk 'NR == 1 { print $1 }')
ifindex0=$(ip -n "$LM_NS" -o link show dev "$tap0" | cut -d: -f1)
# net0's netdev on the new QEMU's command line: none (upstream), or
# incoming-fds (v10)
net0_cmdline() {
    tr '\0' '\n' <"/proc/$pid1/cmdline" | grep '"id":"hostnet0"' |
        grep -o '"incoming-fds":true' || echo none
}
lh_virsh dumpxml --migratable "$dom" |
    sed "s|<emulator>.*</emulator>|<emulator>$QEMU_V10</emulator>|" >"$LM_TMP/v10.xml"
for round in 4 5; do
    case $round in
        4) gen=upstream want=none xml=() ;;
        5) gen=v10 want='"incoming-fds":true' xml=(--xml "$LM_TMP/v10.xml") ;;
    esac
    migrate_job "#$round migrate --live --local-backend-transfer ($gen)" : \
        --live --local-backend-transfer "${xml[@]}" "$dom"
    after_migration "#$round"
    tap_expect "#$round: the $gen generation: net0's netdev on the new command line" \
        "$want" "$(net0_cmdline)"
    tap1=$(lh_virsh domiflist "$dom" | awk 'NR == 1 { print $1 }')
    if [ "$tap1" = "$tap0" ] &&
       [ "$(ip -n "$LM_NS" -o link show dev "$tap1" | cut -d: -f1)" = "$ifindex0" ] &&
       [ "$(stat_of lost_after_first_reply)" = 0 ]; then
        tap_ok "#$round: net0 kept TAP $tap0 (ifindex $ifindex0), 0 lost"
    else
        tap_not_ok "#$round: net0 keeps its TAP with no loss ($tap0 -> $tap1)"
        tap_diag "$(cat "$LM_TMP/last.stats")"
    fi
done
end_domain

# --- leases: lock_manager = "lockd" ----------------------------------------
tap_check "virtqemud restarted with lock_manager = \"lockd\" and virtlockd" \
    lh_lockd_enable || tap_bail "no lockd"
boot_domain "lm-hostlk-$$" "$QEMU_OLD"
cgroup0=$(cgroup_of "$pid")
tap_expect "lockd: virtlockd holds the disk's lease for the running QEMU" 1 "$(lease_holders)"
migrate_job "#6 migrate --live --local with lockd" : --live --local "$dom"
tap_expect "#6: the lease moved with the guest: held once, the old QEMU gone" 1 "$(lease_holders)"
end_domain
tap_expect "lockd: the lease is released at the final stop" 0 "$(lease_holders)"

lh_stop
tap_check "daemons stopped; nothing left behind (processes, sockets, TAPs)" \
    lm_leftovers --ns "$LM_NS" --match "$LM_TMP" "$LH_ROOT" || :
