#!/bin/bash
# Faults in every phase of a local migration, on a libvirt host: the built
# virtqemud and virtlogd as daemons with the shipped configuration
# (lib/daemon.sh says what differs from a host, and why), the realistic
# guest on the reference QEMU with three NICs: net0 <backend
# transfer='on'/> on br0, net1 classic on br1, net2 type='ethernet' whose
# <script>/<downscript> log every call. Jobs alternate classic (--local)
# and backend transfer (--local-backend-transfer).
#
# Each fault lands where it names, every time: virtqemud runs with
# LIBVIRT_LOCALMIG_TEST_STOP_DIR, and the job waits at an armed test point
# (prepare, launch, migrate, switchover, cleanup, rollback) until the test
# has injected the fault and released it. "stream" is the middle of the
# migration stream: a limited bandwidth and domjobinfo's processed data
# above 0. "rollback" is a job aborted in the stream, held while it
# discards the new QEMU. FM_MISPLACE=1 arms the point after the named one instead: the
# outcome points then fail, which shows that they tell the phases apart.
#
# After each fault: the domain runs on the QEMU the phase says (old or
# new), the only one, or on none after a crash or destroy; no job is left;
# the guest answers on both NICs; each TAP exists once and only the running
# QEMU holds it; one pidfile, one per-process dir, one cgroup. At the end
# (destroy): each TAP's <script> and <downscript> ran once, in that order;
# every acknowledged disk write is in the image; nothing is left. The
# outcomes are the table in docs/localmig-faults.rst. TAP output.
#
# Usage: fault-matrix.sh [shared|cpr]
#   shared: the guest's RAM is a shared file and every job adds
#     --local-shared-memory; after each fault the running QEMU maps the
#     file the guest ran on before the job (same inode), the only one, and
#     a guest that is gone left none. The stream of such a job is too
#     short to hold, so the cases of points stream and rollback are left
#     out, and, unless FM_ONLY says otherwise, one case per fault and
#     phase runs (SHARED_CASES).
#   cpr: the guest's RAM is a shared memfd, every job adds
#     --local-shared-memory and runs in cpr-transfer; net0's tap has
#     cpr=on, so every job hands it over (a classic job is refused:
#     cpr-transfer.sh), and each case runs with backend transfer, once per
#     fault and phase, stream and rollback left out as for shared. After
#     each fault the running QEMU maps the memfd of before (same inode).
#     With no RAM to send, the source completes as soon as the new process
#     takes the main stream: held in migrate, the guest is paused already,
#     as in switchover, and a domjobabort there comes too late (new); a
#     paused guest cannot power itself off, so that case is left out.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"
. "$LM_LIB_DIR/hostguest.sh"

QEMU_ENV=${LOCALMIG_BUILD_ROOT:-$LM_E2E_DIR/../../_build}/qemu/qemu.env
# MiB/s: a job in the "stream" point lasts until its fault
STREAM_BANDWIDTH=${STREAM_BANDWIDTH:-4}

[ "$(id -u)" = 0 ] || tap_skip_all "must run as root"
lv_wait_build "${LIBVIRT_WAIT:-0}" ||
    tap_skip_all "no libvirt build at $LIBVIRT_BUILDDIR"
[ -f "$QEMU_ENV" ] || tap_skip_all "no reference QEMU ($QEMU_ENV); run ./localmig build"
QEMU_REF=$(. "$QEMU_ENV" && echo "$QEMU_BIN")

# label mode point fault expect: see fault_case
CASES=(
    "virtqemud killed|classic|prepare|daemon_kill|old"
    "virtqemud killed|bt|launch|daemon_kill|old"
    "virtqemud killed|classic|launch|daemon_kill|old"
    "virtqemud killed|bt|migrate|daemon_kill|old"
    "virtqemud killed|classic|stream|daemon_kill|old"
    "virtqemud killed|bt|switchover|daemon_kill|old"
    "virtqemud killed|classic|switchover|daemon_kill|old"
    "virtqemud killed|bt|cleanup|daemon_kill|new"
    "virtqemud killed|classic|cleanup|daemon_kill|new"
    "virtqemud killed|classic|rollback|daemon_kill|old"
    "new QEMU killed|bt|launch|new_kill|old"
    "new QEMU killed|classic|stream|new_kill|old"
    "new QEMU killed|classic|migrate|new_kill|old"
    "new QEMU killed|bt|switchover|new_kill|old"
    "new QEMU killed|classic|cleanup|new_kill|none"
    "new QEMU killed|bt|rollback|new_kill|old"
    "old QEMU killed|classic|cleanup|old_kill|new"
    "old QEMU killed|bt|stream|old_kill|none"
    "domjobabort|bt|prepare|job_abort|old"
    "domjobabort|classic|launch|job_abort|old"
    "domjobabort|bt|migrate|job_abort|old"
    "domjobabort|bt|stream|job_abort|old"
    "domjobabort|classic|switchover|job_abort|new"
    "domjobabort|bt|cleanup|job_abort|new"
    "guest powered off|classic|migrate|guest_poweroff|none"
    "guest powered off|bt|stream|guest_poweroff|none"
    "virtlogd restarted|bt|stream|logd_restart|new"
    "virsh destroy|classic|stream|dom_destroy|none"
)
POINTS=(prepare launch migrate switchover cleanup rollback)
MEMORY=${1:-copy}
case $MEMORY in
    copy) ;;
    shared)
        SHARED_CASES='^(virtqemud killed\|bt\|(launch|switchover)|virtqemud killed\|bt\|migrate|virtqemud killed\|classic\|cleanup|new QEMU killed\|(bt\|launch|classic\|migrate|bt\|switchover|classic\|cleanup)|old QEMU killed\|classic\|cleanup|domjobabort\|(bt\|migrate|classic\|switchover)|guest powered off\|classic\|migrate)\|'
        FM_ONLY=${FM_ONLY:-$SHARED_CASES}
        held=()
        for c in "${CASES[@]}"; do [[ "$c" =~ \|(stream|rollback)\| ]] || held+=("$c"); done
        CASES=("${held[@]}") ;;
    cpr)
        # every job hands its TAPs over, so classic cases become bt ones;
        # the guest is paused from the migrate point on (see the docs)
        held=()
        declare -A seen=()
        for c in "${CASES[@]}"; do
            [[ "$c" =~ \|(stream|rollback)\| ]] && continue
            [[ "$c" != "guest powered off|"* ]] || continue
            c=${c/|classic|/|bt|}
            [ "$c" != "domjobabort|bt|migrate|job_abort|old" ] || c=${c%old}new
            [ -z "${seen[$c]:-}" ] || continue
            seen[$c]=1
            held+=("$c")
        done
        CASES=("${held[@]}") ;;
    *) echo "usage: $0 [shared|cpr]" >&2; exit 2 ;;
esac
# FM_ONLY=REGEX: only the cases whose "label|mode|point" matches
if [ -n "${FM_ONLY:-}" ]; then
    only=()
    for c in "${CASES[@]}"; do [[ "$c" =~ $FM_ONLY ]] && only+=("$c"); done
    CASES=("${only[@]}")
fi

tap_plan $((2 + 4 + 4 * ${#CASES[@]} + 2 + 5 + 1))

host_guest_setup faults
lh_points_enable || tap_bail "virtqemud did not start again"

# net2's scripts log "up TAP" / "down TAP"
scripts=$LM_TMP/ifscripts.log
: >"$scripts"
for d in up down; do
    printf '#!/bin/sh\necho "%s $1" >>%s\n' "$d" "$scripts" >"$LM_TMP/if$d.sh"
    chmod 0755 "$LM_TMP/if$d.sh"
done

if [ "$MEMORY" != copy ]; then
    TUNE_XML+="
  <memoryBacking>
    <source type='$([ "$MEMORY" = cpr ] && echo memfd || echo file)'/>
    <access mode='shared'/>
  </memoryBacking>"
fi
RG_NET0_XML="
      <backend transfer='on'/>" \
RG_DEVICES_XML="    <interface type='ethernet'>
      <mac address='52:54:00:4c:4d:22'/>
      <script path='$LM_TMP/ifup.sh'/>
      <downscript path='$LM_TMP/ifdown.sh'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>" \
    boot_domain "lm-fault-$$" "$QEMU_REF"

# ---- helpers -----------------------------------------------------------------

# the point armed for POINT: the next one with FM_MISPLACE=1
armed_point() {
    local i
    [ "${FM_MISPLACE:-0}" = 1 ] || { echo "$1"; return; }
    for i in "${!POINTS[@]}"; do
        [ "${POINTS[$i]}" = "$1" ] && { echo "${POINTS[$(((i + 1) % ${#POINTS[@]}))]}"; return; }
    done
    echo "$1"
}

dom_taps() { lh_virsh domiflist "$dom" 2>/dev/null | awk 'NF && $1 != "-" { print $1 }' || :; }

# holders TAP: the pids that hold a queue of TAP
holders() {
    lm_tap_info holders "$1" || :
}

job_none() { lh_virsh domjobinfo "$dom" 2>/dev/null | grep -q '^Job type: *None'; }

stream_flowing() {
    lh_virsh domjobinfo "$dom" 2>/dev/null |
        awk '/^(Data|Memory) processed:/ && $3 + 0 > 0 { f = 1 } END { exit !f }'
}

# ram_files: the guest RAM files in the driver's memory directory
ram_files() { find "$LH_LIB/qemu/ram" -name pc.ram -type f 2>/dev/null | sort; }
# ram_state PID INODE: how the guest's RAM stands after a fault
ram_state() {
    local f maps
    f=$(ram_files)
    [ "$(wc -w <<<"$f")" = 1 ] || { echo "RAM files: ${f:-none}"; return; }
    [ "$(stat -c %i "$f")" = "$2" ] || { echo "$f is a new file"; return; }
    maps=$(lv_ramfile_of "$1")
    [ "$maps" = "$2" ] || { echo "QEMU $1 does not map $f shared (inodes: $maps)"; return; }
    echo "the file of before, mapped"
}

# status_phase: the phase the domain's status XML records
status_phase() {
    sed -n "s/.*<localMigration phase='\([a-z]*\)'.*/\1/p" "$LH_RUN/qemu/$dom.xml" 2>/dev/null
}
guest_pings() { lm_nsexec ping -q -c 1 -W 1 "$GUEST_IP" >/dev/null 2>&1; }

# evidence POINT: what shows that the job is where POINT says (virsh would
# wait for the locks the job holds at most points): the phase in the
# status XML, whether the new QEMU exists, and whether the guest runs
# (it is paused at switchover only)
evidence() {
    local ph
    ph=$(status_phase)
    case $1 in
        prepare) [ "$ph" = prepare ] && [ -z "$npid" ] ;;
        launch) [ "$ph" = launch ] && [ -n "$npid" ] ;;
        migrate) [ "$ph" = migrate ] && [ -n "$npid" ] && { [ "$MEMORY" = cpr ] || guest_pings; } ;;
        stream) [ "$ph" = migrate ] && [ -n "$npid" ] ;;
        switchover) [ "$ph" = migrate ] && [ -n "$npid" ] && ! guest_pings ;;
        cleanup) [ "$ph" = cleanup ] && [ -n "$npid" ] ;;
        rollback) [ "$ph" = rollback ] && [ -n "$npid" ] && guest_pings ;;
        *) return 1 ;;
    esac
}

daemon_kill() { lh_virtqemud_kill; }
# a daemon the fault did not reach runs on
daemon_back() { [ -s "$LH_RUN/virtqemud.pid" ] || lh_virtqemud_start; }
new_kill() { [ -n "$npid" ] && kill -KILL "$npid"; }
old_kill() { kill -KILL "$pid0"; }
job_abort() { lh_virsh domjobabort "$dom" >"$LM_TMP/abort.out" 2>&1 & abort_pid=$!; }
logd_restart() { lh_virtlogd_restart; }
# the guest shuts itself down, asked on its pty (lib/realistic.sh)
guest_poweroff() { rg_guest_poweroff "$pty0"; }
dom_destroy() { lh_virsh destroy "$dom" >/dev/null 2>&1 & destroy_pid=$!; }

qemus_at_most() { [ "$(qemu_of_dom "$dom" | wc -l)" -le "$1" ]; }

ready_count() { grep -c "$GUEST_READY_MARKER" "$log" || :; }

# boot_again: start the domain after a case left it shut off
boot_again() {
    local n
    n=$(ready_count)
    lh_virsh start "$dom" >/dev/null &&
        lm_wait_until "$BOOT_TIMEOUT" sh -c "[ \$(grep -c '$GUEST_READY_MARKER' '$log') -gt $n ]"
}

# fault_case LABEL MODE POINT FAULT EXPECT: one job of MODE (classic or
# bt), FAULT (a function above) at POINT, then the checks; EXPECT is the
# process the guest must run on afterwards: old, new or none. 4 points.
fault_case() {
    local label="$1 in $3 ($2)" mode=$2 point=$3 fault=$4 expect=$5
    local flag=--local bw=() armed hit=0 want run nqemu out taps t h ph bad="" ino0= want_out
    [ "$mode" = bt ] && flag=--local-backend-transfer
    case $MEMORY in
        shared) bw=(--local-shared-memory); ino0=$(stat -c %i "$(ram_files)") ;;
        cpr) bw=(--local-shared-memory); ino0=$(lv_memfd_of "$(lh_qemu_pid "$dom")") ;;
    esac
    pid0=$(lh_qemu_pid "$dom")
    pty0=$(rg_pty_of "$dom")
    npid=""
    abort_pid="" destroy_pid=""
    lh_points_release
    [ "$point" != stream ] && [ "$point" != rollback ] ||
        bw+=(--bandwidth "$STREAM_BANDWIDTH")
    if [ "$point" != stream ]; then
        armed=$(armed_point "$point")
        lh_point_arm "$armed"
    fi
    lh_virsh migrate --live "$flag" "${bw[@]}" "$dom" >"$LM_TMP/job.out" 2>&1 &
    local jp=$!
    if [ "$point" = stream ]; then
        lm_wait_until 60 stream_flowing && hit=1
    elif [ "$point" = rollback ]; then
        # the job fails in the stream, then holds while it rolls back
        lm_wait_until 60 stream_flowing &&
            lh_virsh domjobabort "$dom" >/dev/null 2>&1 &&
            lh_point_reached "$armed" && hit=1
    else
        lh_point_reached "$armed" && hit=1
    fi
    npid=$(qemu_of_dom "$dom" | grep -vx "$pid0" | head -n1 || :)
    ph=$(status_phase)
    if [ "$hit" = 1 ] && evidence "$point" && "$fault"; then
        tap_ok "$label: the job held in $point (status: $ph), fault injected (old QEMU $pid0, new ${npid:-none yet})"
    else
        tap_not_ok "$label: the job held in $point and the fault was injected"
        tap_diag "held: $hit, status phase: $(status_phase), new QEMU: ${npid:-none}" \
            "$(cat "$LM_TMP/job.out")"
        [ "$hit" = 0 ] || "$fault" || :
    fi
    lh_points_release
    [ "$fault" != daemon_kill ] || daemon_back || tap_diag "virtqemud did not start again"
    lm_wait_until 120 lm_pid_gone "$jp" || kill "$jp" 2>/dev/null || :
    wait "$jp" 2>/dev/null || :
    [ -z "$abort_pid" ] || wait "$abort_pid" 2>/dev/null || :
    [ -z "$destroy_pid" ] || wait "$destroy_pid" 2>/dev/null || :

    # settle: the job gone and the discarded QEMU with it
    case $expect in
        old) want=$pid0 ;;
        new) want=${npid:-missing} ;;
        none) want="" ;;
    esac
    lm_wait_until 30 qemus_at_most "$([ -n "$want" ] && echo 1 || echo 0)" || :
    lm_wait_until 30 job_none || :
    run=$(lh_qemu_pid "$dom" || :)
    nqemu=$(qemu_of_dom "$dom" | tr '\n' ' ')
    if [ -z "$want" ]; then
        if [ "$(lh_virsh domstate "$dom" 2>&1)" = "shut off" ] && [ -z "$nqemu" ] && [ -z "$run" ]; then
            tap_ok "$label: the domain is shut off, no QEMU left"
        else
            tap_not_ok "$label: the domain is shut off, no QEMU left"
            tap_diag "state $(lh_virsh domstate "$dom" 2>&1), QEMUs: $nqemu, pidfile: $run"
        fi
    elif [ -n "$run" ] && [ "$run" = "$want" ] && [ "$nqemu" = "$want " ] &&
         [ "$(lh_virsh domstate "$dom" 2>&1)" = running ] && job_none; then
        tap_ok "$label: the guest runs on the $expect QEMU $want, the only one; no job left"
    else
        tap_not_ok "$label: the guest runs on the $expect QEMU ($want), the only one, no job left"
        tap_diag "pidfile: $run, QEMUs: $nqemu, state: $(lh_virsh domstate "$dom" 2>&1)" \
            "job: $(lh_virsh domjobinfo "$dom" 2>&1 | head -n 2 | tr '\n' ' ')" \
            "virsh: $(cat "$LM_TMP/job.out")"
        tap_diag "$(grep -v ' info : ' "$LH_LOG/virtqemud.log" | grep -i 'error\|warn' | tail -n 5)"
        if [ -n "$want" ] && [ "$(lh_virsh domstate "$dom" 2>&1)" != running ]; then
            tap_not_ok "$label: the guest answers, its TAPs held by $want only (the guest is gone)"
            tap_not_ok "$label: what the running QEMU uses, once (the guest is gone)"
            lh_virsh destroy "$dom" >/dev/null 2>&1 || :
            boot_again || tap_bail "$dom did not boot again"
            return
        fi
    fi

    if [ -z "$want" ]; then
        # a guest that is gone has no TAP, pidfile or per-process dir left
        taps=$(ip -n "$LM_NS" -o link show type tun | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | tr '\n' ' ')
        tap_expect "$label: no TAP left in the namespace" "" "$taps"
        out=$( { ls -d "$LH_RUN/qemu/"*.pid "$LH_LIB/qemu/domain-"* 2>/dev/null; ram_files; } |
              grep -v '/driver\.pid$' | tr '\n' ' ' || :)
        tap_expect "$label: no pidfile, per-process dir or RAM file left" "" "$out"
        boot_again || tap_bail "$dom did not boot again"
        return
    fi

    if out=$(rg_answers_both 2>&1); then
        taps=$(dom_taps | tr '\n' ' ')
        for t in $taps; do
            h=$(holders "$t")
            [ "$h" = "$want " ] || bad+=" $t:[$h]"
        done
        if [ -z "$bad" ] && [ "$(echo "$taps" | wc -w)" = 3 ]; then
            tap_ok "$label: the guest answers on both NICs ($out); TAPs $taps each held by $want only"
        else
            tap_not_ok "$label: each TAP held by the running QEMU only"
            tap_diag "TAPs: $taps; wrong holders:$bad"
        fi
    else
        tap_not_ok "$label: the guest answers on both NICs"
        tap_diag "$out"
    fi
    # driver.pid is the driver's own
    out="$(ls "$LH_RUN/qemu/" | grep -v '^driver\.pid$' | grep -c '\.pid$') pidfile(s)"
    out+=", $(ls -d "$LH_LIB/qemu/domain-"* 2>/dev/null | wc -l) per-process dir(s)"
    out+=", $(ls -d "$(cgroup_dir /machine)"/qemu-*"$dom"* 2>/dev/null | wc -l) cgroup(s)"
    out+=", $(grep -c '<localMigration ' "$LH_RUN/qemu/$dom.xml" || :) job state(s)"
    want_out="1 pidfile(s), 1 per-process dir(s), 1 cgroup(s), 0 job state(s)"
    case $MEMORY in
        shared)
            out+="; RAM: $(ram_state "$want" "$ino0")"
            want_out+="; RAM: the file of before, mapped" ;;
        cpr)
            out+="; RAM: memfd $(lv_memfd_of "$want")"
            want_out+="; RAM: memfd $ino0" ;;
    esac
    tap_expect "$label: what the running QEMU uses, once, and nothing else" \
        "$want_out" "$out"
}

# ---- the matrix ------------------------------------------------------------
for c in "${CASES[@]}"; do
    IFS='|' read -r f m p fn e <<<"$c"
    fault_case "$f" "$m" "$p" "$fn" "$e"
done

# what the daemon saved last reads back
pid_last=$(lh_qemu_pid "$dom")
lh_virtqemud_kill && lh_virtqemud_start || :
tap_expect "after all the faults, a restarted virtqemud reads the domain back" \
    "running $pid_last" "$(lh_virsh domstate "$dom" 2>&1) $(lh_qemu_pid "$dom")"

# each TAP's scripts: one "up", then one "down", whatever failed
end_domain
bad=$(awk '{ if ($1 == "up") { if (st[$2] == "up") print "up twice: " $2; st[$2] = "up" }
             else { if (st[$2] != "up") print "down without up: " $2; st[$2] = "down" } }
           END { for (t in st) if (st[t] != "down") print "never down: " t }' "$scripts")
n=$(awk '$1 == "up"' "$scripts" | wc -l)
if [ -z "$bad" ] && [ "$n" -gt 0 ]; then
    tap_ok "net2's <script> and <downscript> ran once per TAP, in that order ($n TAPs)"
else
    tap_not_ok "net2's scripts ran once per TAP"
    tap_diag "$bad" "$(tr '\n' ' ' <"$scripts")"
fi
lh_stop
tap_check "daemons stopped; nothing left behind (processes, sockets, TAPs)" \
    lm_leftovers --ns "$LM_NS" --match "$LM_TMP" "$LH_ROOT" || :
