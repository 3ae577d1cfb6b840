#!/bin/bash
# Local migrations beside other work, on a libvirt host (the host-mode
# daemons of lib/daemon.sh, test stop points as in fault-matrix.sh): two
# realistic guests on the reference QEMU, A with net0 handed over, B
# classic, each on its own addresses.
#
#   - A and B migrate at the same time;
#   - a second `migrate --local` of A while its first job runs is refused
#     at once, naming the running job; the first completes;
#   - another domain is defined and undefined while A's job runs;
#   - domjobabort at a random moment (0-1.5 s) of 10 jobs: each ends with
#     A on exactly one QEMU, old or new, answering;
#   - virsh destroy racing the switchover: A ends shut off with no QEMU,
#     TAP, pidfile or per-process dir left;
#   - virsh shutdown (ACPI) racing B's switchover: it waits for the job,
#     the guest powers off from its new QEMU, and nothing of B is left.
#
# At the end: every acknowledged write is in both disks and nothing is left.
# TAP output.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"
. "$LM_LIB_DIR/hostguest.sh"

QEMU_ENV=${LOCALMIG_BUILD_ROOT:-$LM_E2E_DIR/../../_build}/qemu/qemu.env
ABORTS=${CONC_ABORTS:-10}

[ "$(id -u)" = 0 ] || tap_skip_all "must run as root"
lv_wait_build "${LIBVIRT_WAIT:-0}" ||
    tap_skip_all "no libvirt build at $LIBVIRT_BUILDDIR"
[ -f "$QEMU_ENV" ] || tap_skip_all "no reference QEMU ($QEMU_ENV); run ./localmig build"
QEMU_REF=$(. "$QEMU_ENV" && echo "$QEMU_BIN")

tap_plan $((2 + 4 + 4 + 2 + 2 + 1 + ABORTS + 2 + 2 + 2 + 5 + 1))

host_guest_setup conc
lh_points_enable || tap_bail "virtqemud did not start again"


IP_A=$GUEST_IP IP2_A=$GUEST_IP2
IP_B=198.18.0.3 IP2_B=198.18.1.3

RG_NET0_XML="
      <backend transfer='on'/>" boot_domain "lm-conc-a-$$" "$QEMU_REF"
domA=$dom diskA=$disk logA=$log
GUEST_IP=$IP_B GUEST_IP2=$IP2_B RG_MAC0=52:54:00:4c:4d:03 RG_MAC1=52:54:00:4c:4d:13 \
RG_CMDLINE="console=ttyS1 localmig.tick=ttyS0 quiet panic=-1 localmig.ip=$IP_B/24 localmig.ip2=$IP2_B/24" \
    boot_domain "lm-conc-b-$$" "$QEMU_REF"
domB=$dom diskB=$disk logB=$log

a_qemus_at_most() { [ "$(qemu_of_dom "$domA" | wc -l)" -le "$1" ]; }

# on D: "the domain runs on exactly one QEMU, and it answers"
runs_once() {
    local d=$1 ip=$2 ip2=$3 q
    q=$(qemu_of_dom "$d")
    [ "$(lh_virsh domstate "$d" 2>&1)" = running ] && [ -n "$q" ] &&
        [ "$(echo "$q" | wc -l)" = 1 ] && [ "$q" = "$(lh_qemu_pid "$d")" ] &&
        GUEST_IP=$ip GUEST_IP2=$ip2 rg_answers_both >/dev/null 2>&1
}

# ---- two domains at the same time ----------------------------------------------
pa=$(lh_qemu_pid "$domA") pb=$(lh_qemu_pid "$domB")
lh_virsh migrate --live --local-backend-transfer "$domA" >"$LM_TMP/a.out" 2>&1 & ja=$!
lh_virsh migrate --live --local "$domB" >"$LM_TMP/b.out" 2>&1 & jb=$!
ra=0 rb=0
wait "$ja" || ra=$?
wait "$jb" || rb=$?
if [ "$ra" = 0 ] && [ "$rb" = 0 ]; then
    tap_ok "A (--local-backend-transfer) and B (--local) migrated at the same time"
else
    tap_not_ok "A and B migrate at the same time"
    tap_diag "A: $(cat "$LM_TMP/a.out")" "B: $(cat "$LM_TMP/b.out")"
fi
if runs_once "$domA" "$IP_A" "$IP2_A" && runs_once "$domB" "$IP_B" "$IP2_B" &&
   [ "$(lh_qemu_pid "$domA")" != "$pa" ] && [ "$(lh_qemu_pid "$domB")" != "$pb" ]; then
    tap_ok "both run on one new QEMU each ($pa -> $(lh_qemu_pid "$domA"), $pb -> $(lh_qemu_pid "$domB")) and answer"
else
    tap_not_ok "both run on one new QEMU each and answer"
    tap_diag "A: $(qemu_of_dom "$domA" | tr '\n' ' '), B: $(qemu_of_dom "$domB" | tr '\n' ' ')"
fi

# ---- a second job of the same domain -----------------------------------------
pa=$(lh_qemu_pid "$domA")
lh_point_arm launch
lh_virsh migrate --live --local "$domA" >"$LM_TMP/a.out" 2>&1 & ja=$!
lh_point_reached launch || tap_diag "the first job did not reach launch"
t0=$(lm_now)
if out=$(lh_virsh migrate --live --local "$domA" 2>&1); then
    tap_not_ok "a second migrate --local of A while its first runs is refused"
elif [[ "$out" == *"another migration job is already running for domain '$domA'"* ]]; then
    tap_ok "a second migrate --local of A is refused in $(lm_ms_since "$t0") ms: $out"
else
    tap_not_ok "a second migrate --local of A is refused naming the running job"
    tap_diag "$out"
fi
lh_points_release
ra=0
wait "$ja" || ra=$?
if [ "$ra" = 0 ] && runs_once "$domA" "$IP_A" "$IP2_A" && [ "$(lh_qemu_pid "$domA")" != "$pa" ]; then
    tap_ok "the first job completed: A on $(lh_qemu_pid "$domA"), the only one"
else
    tap_not_ok "the first job completed"
    tap_diag "$(cat "$LM_TMP/a.out")"
fi

# ---- define and undefine another domain during a job ------------------------
lh_virsh dumpxml --inactive "$domB" |
    sed -e "s|<name>.*</name>|<name>lm-conc-c-$$</name>|" -e '/<uuid>/d' \
        -e "/<mac address/d" >"$LM_TMP/c.xml"
pa=$(lh_qemu_pid "$domA")
lh_point_arm launch
lh_virsh migrate --live --local-backend-transfer "$domA" >"$LM_TMP/a.out" 2>&1 & ja=$!
lh_point_reached launch || tap_diag "the job did not reach launch"
rc=0
out=$(lh_virsh "define $LM_TMP/c.xml; undefine lm-conc-c-$$" 2>&1) || rc=$?
lh_points_release
ra=0
wait "$ja" || ra=$?
if [ "$rc" = 0 ] && [ "$ra" = 0 ] && runs_once "$domA" "$IP_A" "$IP2_A" &&
   [ "$(lh_qemu_pid "$domA")" != "$pa" ] &&
   ! lh_virsh dominfo "lm-conc-c-$$" >/dev/null 2>&1; then
    tap_ok "another domain defined and undefined while A's job ran; the job completed"
else
    tap_not_ok "define/undefine of another domain during a job"
    tap_diag "$out" "$(cat "$LM_TMP/a.out")"
fi

# ---- domjobabort at random moments --------------------------------------------
aborted=0 completed=0
for ((i = 1; i <= ABORTS; i++)); do
    flag=--local
    [ $((i % 2)) = 0 ] && flag=--local-backend-transfer
    pa=$(lh_qemu_pid "$domA")
    delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", r % 150 / 100 }')
    lh_virsh migrate --live "$flag" "$domA" >"$LM_TMP/a.out" 2>&1 & ja=$!
    sleep "$delay"
    lh_virsh domjobabort "$domA" >/dev/null 2>&1 || :
    ra=0
    wait "$ja" || ra=$?
    lm_wait_until 30 a_qemus_at_most 1 || :
    now=$(lh_qemu_pid "$domA" || :)
    if [ "$ra" = 0 ]; then what="completed"; completed=$((completed + 1))
    else what="aborted ($(tr '\n' ' ' <"$LM_TMP/a.out"))"; aborted=$((aborted + 1)); fi
    # a completed job ends on a new QEMU, an aborted one on the old
    matches=1
    if [ "$ra" = 0 ]; then [ "$now" = "$pa" ] || matches=0
    else [ "$now" != "$pa" ] || matches=0; fi
    if [ "$matches" = 0 ] && lm_wait_until 10 runs_once "$domA" "$IP_A" "$IP2_A"; then
        tap_ok "abort #$i after ${delay}s ($flag): $what; A on QEMU $now alone, answering"
    else
        tap_not_ok "abort #$i after ${delay}s ($flag): A on one QEMU that matches the outcome"
        tap_diag "$what; QEMU $pa -> $now; QEMUs: $(qemu_of_dom "$domA" | tr '\n' ' ')"
    fi
done
tap_diag "aborts: $aborted aborted, $completed completed before the abort"

# ---- destroy racing the switchover ----------------------------------------------
taps=$(lh_virsh domiflist "$domA" | awk 'NF { print $1 }' | tr '\n' ' ')
lh_point_arm switchover
lh_virsh migrate --live --local-backend-transfer "$domA" >"$LM_TMP/a.out" 2>&1 & ja=$!
lh_point_reached switchover || tap_diag "the job did not reach switchover"
lh_virsh destroy "$domA" >"$LM_TMP/destroy.out" 2>&1 & jd=$!
sleep 0.5
lh_points_release
wait "$ja" || :
rd=0
wait "$jd" || rd=$?
lm_wait_until 20 a_qemus_at_most 0 || :
if [ "$rd" = 0 ] && [ "$(lh_virsh domstate "$domA" 2>&1)" = "shut off" ] &&
   [ -z "$(qemu_of_dom "$domA")" ]; then
    tap_ok "virsh destroy racing the switchover: A is shut off, no QEMU left"
else
    tap_not_ok "virsh destroy racing the switchover ends A"
    tap_diag "destroy: $(cat "$LM_TMP/destroy.out")" "job: $(cat "$LM_TMP/a.out")" \
        "state $(lh_virsh domstate "$domA" 2>&1), QEMUs $(qemu_of_dom "$domA" | tr '\n' ' ')"
fi
left=""
for t in $taps; do ip -n "$LM_NS" link show dev "$t" >/dev/null 2>&1 && left+=" TAP $t"; done
left+=$(ls -d "$LH_RUN/qemu/$domA"*.pid "$LH_LIB/qemu/domain-"*"$domA" 2>/dev/null | tr '\n' ' ' || :)
tap_expect "A's TAPs ($taps), pidfile and per-process dirs are gone" "" "$left"

dom=$domA disk=$diskA log=$logA
disk_intact
tap_check "$domA: undefine" lh_virsh undefine "$domA" || :

# ---- shutdown racing the switchover ----------------------------------------------
# A shutdown needs a job the migration's does not allow: it waits until the
# job ends, then the power button is pressed on whichever QEMU runs B.
taps=$(lh_virsh domiflist "$domB" | awk 'NF { print $1 }' | tr '\n' ' ')
pb=$(lh_qemu_pid "$domB")
b_gone() { [ -z "$(qemu_of_dom "$domB")" ] && [ "$(lh_virsh domstate "$domB" 2>&1)" = "shut off" ]; }
lh_point_arm switchover
lh_virsh migrate --live --local "$domB" >"$LM_TMP/b.out" 2>&1 & jb=$!
lh_point_reached switchover || tap_diag "the job did not reach switchover"
lh_virsh shutdown --mode acpi "$domB" >"$LM_TMP/shutdown.out" 2>&1 & js=$!
sleep 0.5
lh_points_release
rb=0 rs=0
wait "$jb" || rb=$?
wait "$js" || rs=$?
if [ "$rb" = 0 ] && [ "$rs" = 0 ] && lm_wait_until 60 b_gone &&
   grep -q "$GUEST_POWER_BUTTON_MARKER" "$logB"; then
    tap_ok "virsh shutdown racing B's switchover: the job completed, then B powered off from its new QEMU"
else
    tap_not_ok "virsh shutdown racing B's switchover: the job completes, then B powers off"
    tap_diag "job ($rb): $(cat "$LM_TMP/b.out")" "shutdown ($rs): $(cat "$LM_TMP/shutdown.out")" \
        "state $(lh_virsh domstate "$domB" 2>&1), QEMUs $pb -> $(qemu_of_dom "$domB" | tr '\n' ' ')" \
        "console: $(tail -n 2 "$logB" | tr -d '\r')"
fi
left=""
for t in $taps; do ip -n "$LM_NS" link show dev "$t" >/dev/null 2>&1 && left+=" TAP $t"; done
tap_expect "B's TAPs ($taps) are gone" "" "$left"

dom=$domB disk=$diskB log=$logB
end_domain stopped
lh_stop
tap_check "daemons stopped; nothing left behind (processes, sockets, TAPs)" \
    lm_leftovers --ns "$LM_NS" --match "$LM_TMP" "$LH_ROOT" || :
