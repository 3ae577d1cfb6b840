# shellcheck shell=bash
# The realistic guest's life under the host-mode daemons, as TAP points:
# boot it, migrate it under ping with an optional fault mid-job, check what
# a user checks afterwards, end it.  Source after lib/common.sh and
# lib/libvirt.sh; it brings lib/realistic.sh and lib/daemon.sh.
#
#   host_guest_setup TAG           guest image, scratch dir, namespace with
#                                  br0 and br1, the daemons; 2 points
#   boot_domain NAME EMULATOR [FILTER...]
#                                  define and start (sets dom, disk, log,
#                                  pid, devices0, tune0), the XML through
#                                  FILTER (a command) if given; 4 points
#   migrate_job LABEL FAULT ARGS... `virsh migrate ARGS` under ping of both
#                                  NICs, FAULT (or :) once the new QEMU
#                                  exists; 2 points (sets pid0, pid1)
#   after_migration LABEL          11 points
#   end_domain                     destroy, owner restored, disk verified,
#                                  undefine, nothing left; 5 points
#   disk_intact                    every acknowledged write is in the disk;
#                                  1 point
#   lease_holders                  virtlockd's write locks on the disk
#
# Set cgroup0=$(cgroup_of "$pid") after boot_domain: after_migration checks
# that the previous process's cgroup went away.

. "$LM_LIB_DIR/realistic.sh"
. "$LM_LIB_DIR/daemon.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}

host_guest_setup() {
    tap_check "guest image built" "$LM_E2E_DIR/guest/build-guest.sh" ||
        tap_bail "no guest image"
    . "${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest/guest.env"

    lm_tmpdir
    # QEMU runs as libvirt-qemu: it must reach its files below the scratch
    # dir, as it reaches /var/lib/libvirt/images on a host
    chmod 0711 "$LM_TMP"
    lv_ensure_qemu_user
    lm_netns_create "$1"
    rg_bridge2_create
    lh_start
    rg_virsh() { lh_virsh "$@"; }
    rg_host_path() { lh_host_path "$1"; }
    tap_ok "virtlogd and virtqemud run as daemons; $(lh_virsh version | grep -i hypervisor)"
}

# The domain's limits, read back after each migration.
TUNE_XML="  <memtune><soft_limit unit='MiB'>1024</soft_limit></memtune>
  <cputune><shares>512</shares></cputune>
  <blkiotune><weight>300</weight></blkiotune>"

# tunables DOM: the limits as virsh reads them
tunables() {
    {
        lh_virsh schedinfo "$1" | grep -i '^cpu_shares'
        lh_virsh memtune "$1" | grep -i '^soft_limit'
        lh_virsh blkiotune "$1" | grep -i '^weight'
    } | tr -s ' ' | tr '\n' ' '
}

# cgroup_of PID: the v1 memory cgroup path of PID (cgroup v2 when none)
cgroup_of() {
    awk -F: '$2 == "memory" { print $3; f = 1 } END { if (!f) exit 1 }' \
        "/proc/$1/cgroup" 2>/dev/null ||
        awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup"
}

cgroup_dir() {
    if [ -d /sys/fs/cgroup/memory ]; then echo "/sys/fs/cgroup/memory$1"
    else echo "/sys/fs/cgroup$1"; fi
}

owner_of() { stat -c %U "$1"; }

qemu_of_dom() {
    local p
    for p in $(pgrep -f -- "-name guest=$1," || :); do
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in qemu-system-x86) echo "$p" ;; esac
    done
}

# boot_domain NAME EMULATOR [FILTER...]: define and start the realistic
# guest, its XML through FILTER (e.g. lv_shared_memory memfd)
boot_domain() {
    local name=$1 emulator=$2 imgdir
    shift 2
    [ $# -gt 0 ] || set -- cat
    dom=$name
    imgdir=$LM_TMP/img-$name
    mkdir -m 0711 "$imgdir"
    disk=$(rg_disk_make "$imgdir")
    log=$LM_TMP/$name.console
    QEMU=$emulator rg_domain_xml "$name" "$log" "$disk" |
        awk -v tune="$TUNE_XML" '/^  <devices>/ { print tune } { print }' |
        "$@" >"$LM_TMP/$name.xml"
    tap_check "define and start $name on $emulator" \
        lh_virsh "define $LM_TMP/$name.xml; start $name" || {
            tail -n 5 "$LH_LOG/virtqemud.log" >&2; tap_bail "start failed"; }
    lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$log" ||
        tap_bail "guest $name did not boot: $(tail -n 3 "$log")"
    tap_check "$name answers on both NICs" rg_answers_both || :
    devices0=$(rg_devices_snapshot --no-tap "$dom")
    tune0=$(tunables "$dom")
    pid=$(lh_qemu_pid "$dom")
    if [ "$(rg_qemu_user "$pid")" = libvirt-qemu ] &&
       [ "$(owner_of "$disk")" = libvirt-qemu ]; then
        tap_ok "$name: QEMU $pid runs as libvirt-qemu, the disk is libvirt-qemu's (DAC)"
    else
        tap_not_ok "$name: QEMU as libvirt-qemu, disk labelled"
        tap_diag "user $(rg_qemu_user "$pid"), disk $(owner_of "$disk")"
    fi
    if [[ "$(cgroup_of "$pid")" == */machine/qemu-*"$name"* ]] &&
       [[ "$tune0" == *512*1048576*300* ]]; then
        tap_ok "$name: QEMU in $(cgroup_of "$pid") under the domain's limits: $tune0"
    else
        tap_not_ok "$name: QEMU in a cgroup of its own under the domain's limits"
        tap_diag "cgroup $(cgroup_of "$pid"), limits $tune0"
    fi
}

# migrate_job LABEL FAULT ARGS...: `virsh migrate ARGS` while both NICs are
# pinged; FAULT (a command, or :) runs once the new QEMU exists, in the
# MIGRATE phase (a slowed-down migration).
migrate_job() {
    local label=$1 fault=$2 t0 rc=0 npid
    shift 2
    pid0=$(lh_qemu_pid "$dom")
    acks0=$(rg_disk_last_ack "$log")
    starts0=$(grep -c 'starting up' "$LH_LOG/qemu/$dom.log")
    t0=$(lm_now)
    _job() {
        lh_virsh migrate "$@" >"$LM_TMP/migrate.out" 2>&1 &
        local vp=$! i
        for ((i = 0; i < 300; i++)); do
            npid=$(qemu_of_dom "$dom" | grep -vx "$pid0" | head -n1 || :)
            [ -n "$npid" ] && break
            sleep 0.1
        done
        if [ "$fault" != : ]; then
            sleep 1
            if kill -0 "$vp" 2>/dev/null; then
                "$fault" && echo "fault: $fault while the job ran" >>"$LM_TMP/migrate.out"
            else
                echo "fault: the job ended before $fault" >>"$LM_TMP/migrate.out"
            fi
        fi
        wait "$vp"
    }
    rg_pinged_both _job "$@" || rc=$?
    if [ "$rc" = 0 ] && { [ "$fault" = : ] || grep -q "^fault: $fault while" "$LM_TMP/migrate.out"; }; then
        tap_ok "$label ($(lm_ms_since "$t0") ms)${fault#:}"
    else
        tap_not_ok "$label"
        tap_diag "$(cat "$LM_TMP/migrate.out")"
        tap_diag "$(grep -v ' info : ' "$LH_LOG/virtqemud.log" | tail -n 5)"
    fi
    pid1=$(lh_qemu_pid "$dom" || :)
    if [ -n "$pid1" ] && [ "$pid1" != "$pid0" ] && lm_wait_until 10 lm_pid_gone "$pid0" &&
       [ "$(qemu_of_dom "$dom")" = "$pid1" ]; then
        tap_ok "$label: QEMU $pid0 -> $pid1, the only one"
    else
        tap_not_ok "$label: the domain runs on one new QEMU ($pid0 -> '$pid1')"
        tap_diag "QEMUs: $(qemu_of_dom "$dom" | tr '\n' ' ')"
    fi
    tap_diag "$label: net0 largest gap $(stat_of max_gap_ms) ms, lost $(stat_of lost_after_first_reply);" \
        "net1 largest gap $(rg_stat2_of max_gap_ms) ms, lost $(rg_stat2_of lost_after_first_reply)"
}

# after_migration LABEL: what a user checks once the domain has its new
# process (globals from migrate_job: pid0, pid1, acks0, starts0)
after_migration() {
    local label=$1 out cg0 cg1 acks starts
    if [ "$(stat_of received)" -gt 0 ] && [ "$(stat_of unanswered_tail)" -le 1 ] &&
       [ "$(rg_stat2_of received)" -gt 0 ] && [ "$(rg_stat2_of unanswered_tail)" -le 1 ]; then
        tap_ok "$label: the guest answered on both NICs throughout"
    else
        tap_not_ok "$label: the guest answers on both NICs"
        tap_diag "$(cat "$LM_TMP/last.stats" "$LM_TMP/last2.stats")"
    fi
    if out=$(rg_console_sees_output "$dom" 2>&1); then
        tap_ok "$label: virsh console on the new pty: $out"
    else
        tap_not_ok "$label: virsh console sees the guest's output"
        tap_diag "$out"
    fi
    if out=$(rg_vnc_answers "$dom" 2>&1); then
        tap_ok "$label: VNC answers: $out"
    else
        tap_not_ok "$label: VNC answers RFB"
        tap_diag "$out"
    fi
    if out=$(rg_agent_socket "$dom" 2>&1); then
        tap_ok "$label: agent socket $out"
    else
        tap_not_ok "$label: the agent socket exists"
        tap_diag "$out"
    fi
    tap_expect "$label: domblklist and domiflist unchanged (TAP names aside)" \
        "$devices0" "$(rg_devices_snapshot --no-tap "$dom")"
    if [ "$(rg_qemu_user "$pid1")" = libvirt-qemu ] &&
       [ "$(owner_of "$disk")" = libvirt-qemu ]; then
        tap_ok "$label: QEMU runs as libvirt-qemu, the disk is still libvirt-qemu's"
    else
        tap_not_ok "$label: QEMU as libvirt-qemu, the disk not relabelled"
        tap_diag "user $(rg_qemu_user "$pid1"), disk $(owner_of "$disk")"
    fi
    cg1=$(cgroup_of "$pid1")
    cg0=${cgroup0:-}
    if [[ "$cg1" == */machine/qemu-*"$dom"* ]] && [ "$cg1" != "$cg0" ] &&
       { [ -z "$cg0" ] || [ ! -d "$(cgroup_dir "${cg0%/emulator}")" ]; } &&
       [ "$(tunables "$dom")" = "$tune0" ]; then
        tap_ok "$label: new process in $cg1, the old cgroup gone, limits read the same"
    else
        tap_not_ok "$label: cgroup of the new process and the domain's limits"
        tap_diag "old $cg0 (dir: $(ls -d "$(cgroup_dir "${cg0%/emulator}")" 2>&1))" \
            "new $cg1" "limits: $(tunables "$dom") (were: $tune0)"
    fi
    cgroup0=$cg1
    lm_wait_until 10 acks_grew || :
    acks=$(rg_disk_last_ack "$log")
    if [ "$acks" -gt "$acks0" ] && ! grep -q "DISK-ERROR" "$log"; then
        tap_ok "$label: the disk writer goes on (ack $acks0 -> $acks)"
    else
        tap_not_ok "$label: the disk writer goes on (ack $acks0 -> $acks)"
    fi
    starts=$(grep -c 'starting up' "$LH_LOG/qemu/$dom.log")
    if [ "$starts" = $((starts0 + 1)) ] &&
       grep -q "shutting down, reason=migrated" "$LH_LOG/qemu/$dom.log"; then
        tap_ok "$label: the domain log (virtlogd) has the new process's start after the old one's lines"
    else
        tap_not_ok "$label: the domain log has both processes' lines"
        tap_diag "$(tail -n 8 "$LH_LOG/qemu/$dom.log")"
    fi
}

acks_grew() { [ "$(rg_disk_last_ack "$log")" -gt "$acks0" ]; }

# disk_intact: every write the guest acknowledged is in $disk (1 point)
disk_intact() {
    local out
    if out=$(rg_disk_verify "$disk" "$log" 2>&1); then
        tap_ok "$dom: every acknowledged write is in the image: $out"
    else
        tap_not_ok "$dom: every acknowledged write is in the image"
        tap_diag "$out"
    fi
}

# end_domain [stopped]: destroy (or, with "stopped", see that it is shut
# off already); the disk's owner is restored, every acknowledged write is
# in the image, qemu-img check is clean.
end_domain() {
    pid=$(lh_qemu_pid "$dom" || :)
    if [ "${1:-}" = stopped ]; then
        tap_expect "$dom: shut off" "shut off" "$(lh_virsh domstate "$dom" 2>&1)"
    else
        tap_check "$dom: destroy" lh_virsh destroy "$dom" || :
    fi
    [ -z "$pid" ] || lm_wait_until 10 lm_pid_gone "$pid" || :
    tap_expect "$dom: the disk's owner is restored at the final stop" \
        root "$(owner_of "$disk")"
    disk_intact
    tap_check "$dom: undefine" lh_virsh undefine "$dom" || :
    if [ -z "$(ls "$LH_RUN/qemu/$dom"*.pid 2>/dev/null)" ] &&
       [ -z "$(ls -d "$LH_LIB/qemu/domain-"* 2>/dev/null)" ] &&
       [ -z "$(ls -d "$(cgroup_dir /machine)"/qemu-*"$dom"* 2>/dev/null)" ] &&
       [ -z "$(qemu_of_dom "$dom")" ]; then
        tap_ok "$dom: no QEMU, pidfile, per-process dir or cgroup left"
    else
        tap_not_ok "$dom: nothing left"
        tap_diag "$(ls "$LH_RUN/qemu/" "$LH_LIB/qemu/" "$(cgroup_dir /machine)" 2>&1)"
    fi
}


# The lease of each writable disk is held by virtlockd for the process
# that runs the guest: the old process releases it when it stops at the
# end of the migration, the new one takes it when it resumes. A POSIX
# write lock of virtlockd's on the image is the lease.
lease_holders() {
    local ino lockd
    ino=$(stat -c %i "$disk")
    lockd=$(cat "$LH_RUN/virtlockd.pid")
    awk -v ino=":$ino" -v pid="$lockd" \
        '$2 == "POSIX" && $4 == "WRITE" && $6 ~ ino "$" && $5 == pid { n++ }
         END { print n + 0 }' /proc/locks
}
