#!/bin/bash
# Local migration (virsh migrate --live --local, classic networking, Debian
# 12's QEMU 7.2, the built libvirt's embedded driver) of a guest with the
# devices users' VMs have (lib/realistic.sh): a qcow2 disk on a backing
# file that the guest writes to all the time, a pty console, a guest-agent
# channel, VNC, virtio-rng, a balloon and two NICs on two bridges.  Two
# migrations under ping of both addresses; after each the console shows the
# guest's output, VNC greets, the agent socket is there, the disks and NICs
# are the same and the disk writer goes on.  At the end every write the
# guest saw acknowledged is in the image and the image is clean.  TAP.
#
# Env: as local-migrate.sh (LIBVIRT_BUILDDIR, LIBVIRT_WAIT, QEMU, LM_KEEP,
# BOOT_TIMEOUT).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"
. "$LM_LIB_DIR/realistic.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}

lv_guest_test 31 real
rg_bridge2_create
disk_dir=$LM_TMP/disk

tap_check "disk: qcow2 overlay on a qcow2 backing file" rg_disk_make "$disk_dir" ||
    tap_bail "no disk"
disk=$disk_dir/disk.qcow2
rg_domain_xml "$dom" "$serial" "$disk" >"$LM_TMP/$dom.xml"

tap_check "define and start $dom (disk, pty console, agent, VNC, rng, balloon, 2 NICs)" \
    rg_virsh "define $LM_TMP/$dom.xml; start $dom" || { show_logs; tap_bail "start failed"; }
if lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial"; then
    ready=$(grep -m1 "$GUEST_READY_MARKER" "$serial" | tr -d '\r')
    if [[ "$ready" == *" addr2=$GUEST_IP2/"*" disk=vda slots=$GUEST_DISK_SLOTS tick=ttyS0 "* ]]; then
        tap_ok "guest ready with eth1, vda and ticks: $ready"
    else
        tap_not_ok "guest ready with eth1, vda and ticks"
        tap_diag "$ready"
    fi
else
    tap_not_ok "guest ready"
    tap_diag "$(tail -n 20 "$serial" 2>/dev/null)"
    show_logs
    tap_bail "guest did not boot"
fi
tap_check "both addresses answer pings ($GUEST_IP, $GUEST_IP2)" rg_answers_both ||
    tap_bail "no ping"

# acks_after N TIMEOUT_S: the disk writer acked a record newer than N
acks_after() { [ "$(rg_disk_last_ack "$serial")" -gt "$1" ]; }
if lm_wait_until 30 acks_after 20; then
    tap_ok "disk writer acks its writes (last $(rg_disk_last_ack "$serial"))"
else
    tap_not_ok "disk writer acks its writes"
    tap_diag "$(tail -n 5 "$serial" | tr -d '\r')"
fi

# tap_out DESC CMD...: ok "DESC: what CMD printed" if CMD succeeds, else
# not ok with its output as diagnostics
tap_out() {
    local desc=$1 out; shift
    if out=$("$@" 2>&1); then
        tap_ok "$desc: $(tr '\n' ' ' <<<"$out" | sed 's/ $//')"
    else
        tap_not_ok "$desc"
        tap_diag "$out"
        return 1
    fi
}

# the checks after boot and after each migration: console, VNC, agent
check_devices() {
    tap_out "$1: virsh console shows the guest's output" rg_console_sees_output "$dom" || :
    tap_out "$1: VNC answers" rg_vnc_answers "$dom" || :
    tap_out "$1: guest agent socket" rg_agent_socket "$dom" || :
}

check_devices "boot"
pid=$(lv_qemu_pid "$root" "$dom")
tap_expect "QEMU $pid runs as root (the embed root's qemu.conf)" root "$(rg_qemu_user "$pid")"
devices0=$(rg_devices_snapshot --no-tap "$dom" 2>&1 || :)
tap_diag "devices:" "$devices0"

for round in 1 2; do
    tap0=$(lv_domain_tap "$root" "$dom")
    ack0=$(rg_disk_last_ack "$serial")
    # migrate_pinged pings GUEST_IP; rg_pinged_both adds GUEST_IP2
    rg_pinged_both migrate_pinged "#$round: migrate --live --local" --live --local --verbose "$dom"
    ack1=$(rg_disk_last_ack "$serial")
    gap=$(stat_of max_gap_ms); lost=$(stat_of lost_after_first_reply)
    gap2=$(rg_stat2_of max_gap_ms); lost2=$(rg_stat2_of lost_after_first_reply)
    if [ "$(stat_of received)" -gt 0 ] && [ "$(rg_stat2_of received)" -gt 0 ] &&
       [ "$(stat_of unanswered_tail)" -le 1 ] && [ "$(rg_stat2_of unanswered_tail)" -le 1 ]; then
        tap_ok "#$round: both NICs answered throughout: eth0 gap $gap ms, $lost lost; eth1 gap $gap2 ms, $lost2 lost"
    else
        tap_not_ok "#$round: both NICs answer after the migration"
        tap_diag "eth0:" "$(cat "$LM_TMP/last.stats")" "eth1:" "$(cat "$LM_TMP/last2.stats")"
    fi
    tap_diag "#$round: acks $ack0 -> $ack1 during the migration; TAP $tap0 -> $(lv_domain_tap "$root" "$dom")"
    check_devices "#$round"
    devices=$(rg_devices_snapshot --no-tap "$dom" 2>&1 || :)
    tap_expect "#$round: domblklist and domiflist unchanged (but the TAP names)" "$devices0" "$devices"
    if lm_wait_until 30 acks_after "$ack1"; then
        tap_ok "#$round: the disk writer goes on: acks $ack0 before, $ack1 at the end, now $(rg_disk_last_ack "$serial")"
    else
        tap_not_ok "#$round: the disk writer goes on after the migration (last ack $ack1)"
        tap_diag "$(tail -n 5 "$serial" | tr -d '\r')"
    fi
done

# --- the end: destroy, then the disk holds every acknowledged write --------
pid=$(lv_qemu_pid "$root" "$dom" || :)
tap_check "destroy" lv_destroy "$root" "$dom" || :
[ -z "$pid" ] || lm_wait_until 10 lm_pid_gone "$pid" || :
if out=$(rg_disk_verify "$disk" "$serial" 2>&1); then
    tap_ok "every acked write is in the image, qemu-img check clean: $out"
else
    tap_not_ok "every acked write is in the image, qemu-img check clean"
    tap_diag "$out"
    "$RG_GUEST_DISK" verify --details "$disk" "$serial" 2>&1 | head -n 20 |
        while IFS= read -r line; do tap_diag "$line"; done
fi

# the verifier can fail: a copy of the overlay with one acked block torn
# (a sector overwritten) and another zeroed
last=$(rg_disk_last_ack "$serial")
slot_a=$((last % GUEST_DISK_SLOTS)) slot_b=$(((last - 1) % GUEST_DISK_SLOTS))
if ! cp "$disk" "$disk_dir/bad.qcow2" ||
   ! out=$(qemu-io -f qcow2 -c "write -q -P 0x55 $((slot_a * 4096 + 512)) 512" \
           -c "write -q -z $((slot_b * 4096)) 4096" "$disk_dir/bad.qcow2" 2>&1); then
    tap_not_ok "verify fails on a damaged copy: cannot make the copy"
    tap_diag "$out"
elif out=$(rg_disk_verify "$disk_dir/bad.qcow2" "$serial" 2>&1); then
    tap_not_ok "verify fails on a copy with acked records $last torn and $((last - 1)) zeroed"
    tap_diag "$out"
elif grep -q " corrupt=1 missing=1 " <<<"$out"; then
    tap_ok "verify fails on a copy with acked records $last torn and $((last - 1)) zeroed: $out"
else
    tap_not_ok "verify fails on a copy with acked records $last torn and $((last - 1)) zeroed"
    tap_diag "$out"
fi
rm -f "$disk_dir/bad.qcow2"

tap_check "undefine" rg_virsh undefine "$dom" || :
tap_check "nothing left behind (processes, sockets, TAPs, dirs)" \
    lm_leftovers --ns "$LM_NS" --match "$root" "$LM_TMP" || :
