#!/bin/bash
# Soak: SOAK_RUNS (default 20) back-to-back local migrations of the
# realistic guest under the host-mode daemons (lib/daemon.sh), under ping
# on both NICs, on the reference QEMU: backend transfer and classic
# alternate (the first with --xml of the running definition).
# virtqemud's open fds, threads and RSS are sampled before, after each
# migration and at the end, and printed. Nothing may grow from the sample
# after migration SOAK_WARMUP (default 4) to the last one beyond the
# stated bounds: SOAK_MAX_FDS (2), SOAK_MAX_THREADS (2) and SOAK_MAX_RSS_KIB
# (8192: allocator noise, not a per-migration leak, which 16 migrations
# would multiply). First, --xml describing another UUID, another name or
# other devices (rng removed, net0 without backend transfer) is refused
# with the guest untouched. At the end the disk
# is intact and nothing is left.
# A longer soak: SOAK_RUNS=200. TAP output.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"
. "$LM_LIB_DIR/hostguest.sh"

RUNS=${SOAK_RUNS:-20}
WARMUP=${SOAK_WARMUP:-4}
MAX_FDS=${SOAK_MAX_FDS:-2}
MAX_THREADS=${SOAK_MAX_THREADS:-2}
MAX_RSS_KIB=${SOAK_MAX_RSS_KIB:-8192}
QEMU_ENV=${LOCALMIG_BUILD_ROOT:-$LM_E2E_DIR/../../_build}/qemu/qemu.env

[ "$(id -u)" = 0 ] || tap_skip_all "must run as root"
lv_wait_build "${LIBVIRT_WAIT:-0}" ||
    tap_skip_all "no libvirt build at $LIBVIRT_BUILDDIR"
[ -f "$QEMU_ENV" ] || tap_skip_all "no reference QEMU ($QEMU_ENV); run ./localmig build"
[ "$RUNS" -gt "$WARMUP" ] || tap_skip_all "SOAK_RUNS must exceed SOAK_WARMUP"
QEMU_REF=$(. "$QEMU_ENV" && echo "$QEMU_BIN")

tap_plan $((2 + 4 + 4 + 2 * RUNS + 3 + 5 + 1))

host_guest_setup soak

# sample: "fds threads rss_kib" of virtqemud
sample() {
    local p
    p=$(cat "$LH_RUN/virtqemud.pid")
    echo "$(ls "/proc/$p/fd" | wc -l) $(awk '/^Threads:/ { print $2 }' "/proc/$p/status")" \
        "$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")"
}

# <backend transfer='on'/> is part of the device (v10: virtio-net's
# backend-transfer property), which 7.2 lacks: a domain that ever ran on
# 7.2 never hands a TAP over, so the soak runs on the reference QEMU
# (host-mode.sh and package-upgrade.sh move 7.2 guests)
RG_NET0_XML="
      <backend transfer='on'/>" boot_domain "lm-soak-$$" "$QEMU_REF"
samples=("$(sample)")
tap_diag "virtqemud before: fds threads rss_kib = ${samples[0]}"

lh_virsh dumpxml --migratable "$dom" >"$LM_TMP/same.xml"
# --xml that describes another domain or other devices: refused, the guest
# untouched (same QEMU, running, no job)
refused() {
    local what=$1 want=$2 out p
    p=$(lh_qemu_pid "$dom")
    if out=$(lh_virsh migrate --live --local --xml "$LM_TMP/bad.xml" "$dom" 2>&1); then
        tap_not_ok "--xml with $what: refused"
        return
    fi
    if [[ "$out" == *"$want"* ]] && [ "$(lh_qemu_pid "$dom")" = "$p" ] &&
       [ "$(qemu_of_dom "$dom")" = "$p" ] &&
       [ "$(lh_virsh domstate "$dom")" = running ]; then
        tap_ok "--xml with $what: refused ($out), the guest runs on QEMU $p alone"
    else
        tap_not_ok "--xml with $what: refused naming the cause, the guest untouched"
        tap_diag "$out"
    fi
}
sed "s|<uuid>.*</uuid>|<uuid>00000000-0000-4000-8000-00000000cafe</uuid>|" \
    "$LM_TMP/same.xml" >"$LM_TMP/bad.xml"
refused "another UUID" "must describe domain '$dom' itself"
sed "s|<name>.*</name>|<name>other-$$</name>|" "$LM_TMP/same.xml" >"$LM_TMP/bad.xml"
refused "another name" "must describe domain '$dom' itself"
awk '/<rng model/ { skip = 1 } !skip { print } /<\/rng>/ { skip = 0 }' \
    "$LM_TMP/same.xml" >"$LM_TMP/bad.xml"
refused "a device removed (rng)" "RNG device count"
sed "s|<backend transfer='on'/>||" "$LM_TMP/same.xml" >"$LM_TMP/bad.xml"
refused "net0 without backend transfer" "backend transfer"

for ((i = 1; i <= RUNS; i++)); do
    if [ "$i" = 1 ]; then
        migrate_job "#$i --local --xml (the running definition)" : \
            --live --local --xml "$LM_TMP/same.xml" "$dom"
    elif [ $((i % 2)) = 0 ]; then
        migrate_job "#$i --local-backend-transfer" : --live --local-backend-transfer "$dom"
    else
        migrate_job "#$i --local" : --live --local "$dom"
    fi
    samples+=("$(sample)")
    tap_diag "virtqemud after #$i: ${samples[$i]}"
done

read -r f0 t0 r0 <<<"${samples[$WARMUP]}"
read -r f1 t1 r1 <<<"${samples[$RUNS]}"
tap_diag "from #$WARMUP to #$RUNS: fds $f0 -> $f1, threads $t0 -> $t1, RSS $r0 -> $r1 KiB"
if [ $((f1 - f0)) -le "$MAX_FDS" ]; then
    tap_ok "virtqemud's open fds: $f0 after #$WARMUP, $f1 after #$RUNS (bound +$MAX_FDS)"
else
    tap_not_ok "virtqemud's open fds grow: $f0 -> $f1 (bound +$MAX_FDS)"
    tap_diag "$(ls -l "/proc/$(cat "$LH_RUN/virtqemud.pid")/fd" | tail -n 20)"
fi
if [ $((t1 - t0)) -le "$MAX_THREADS" ]; then
    tap_ok "virtqemud's threads: $t0 after #$WARMUP, $t1 after #$RUNS (bound +$MAX_THREADS)"
else
    tap_not_ok "virtqemud's threads grow: $t0 -> $t1 (bound +$MAX_THREADS)"
fi
if [ $((r1 - r0)) -le "$MAX_RSS_KIB" ]; then
    tap_ok "virtqemud's RSS: $r0 KiB after #$WARMUP, $r1 KiB after #$RUNS (bound +$MAX_RSS_KIB KiB)"
else
    tap_not_ok "virtqemud's RSS grows: $r0 -> $r1 KiB (bound +$MAX_RSS_KIB KiB)"
fi

end_domain
tap_diag "virtqemud at the end: $(sample)"
lh_stop
tap_check "daemons stopped; nothing left behind (processes, sockets, TAPs)" \
    lm_leftovers --ns "$LM_NS" --match "$LM_TMP" "$LH_ROOT" || :
