#!/bin/bash
# The QEMU driver keeps what it probed of each QEMU binary in a cache file,
# and every new driver process (each virsh of the embedded driver, each
# daemon start) checks that the host has not changed since, the host's
# CPUID as KVM reports it among others. That check must not depend on the
# CPU it runs on: libvirt filters out the local APIC IDs KVM leaves in
# CPUID, but 11.3 missed leaf 0x1f's, which this machine's second CPU
# reports. A driver started on another CPU than the probe's then threw the
# cache away and probed every binary again, seconds each (patch 0035).
# Here the capabilities are probed with virsh on the first CPU; then a
# virsh on each CPU in turn must take the cache as it is.
#
# Env: LIBVIRT_BUILDDIR (default _build/libvirt of this checkout). TAP
# output.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

[ "$(id -u)" = 0 ] || tap_skip_all "needs root (the embedded driver runs QEMU as root)"
lv_have_build || tap_skip_all "no libvirt build in $LIBVIRT_BUILDDIR"
# without KVM the driver keeps no host CPUID to compare
[ -c /dev/kvm ] || tap_skip_all "no /dev/kvm"

# the CPUs this process may run on
read -r -a cpus <<<"$(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
[ "${#cpus[@]}" -ge 2 ] || tap_skip_all "one CPU: nothing to compare"

tap_plan $((1 + ${#cpus[@]}))
lm_tmpdir
root=$LM_TMP/root
# a cache of its own: the suite's shared one may hold another CPU's probe
LV_SHARE_CAPS=0 lv_embed_root "$root"

# caps_on CPU LOG: `virsh capabilities` of the embedded driver on CPU, its
# capability cache's debug log in LOG
caps_on() {
    LIBVIRT_LOG_OUTPUTS="1:file:$2" \
        LIBVIRT_LOG_FILTERS="1:qemu.qemu_capabilities 1:util.filecache 4:*" \
        taskset -c "$1" "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virsh" \
        -q -c "qemu:///embed?root=$root" capabilities >/dev/null
}

n=0
if caps_on "${cpus[0]}" "$LM_TMP/probe.log" &&
   n=$(find "$root/cache/qemu/capabilities" -name '*.xml' | wc -l) && [ "$n" -gt 0 ]; then
    tap_ok "probed on CPU ${cpus[0]}: $n binaries cached"
else
    tap_not_ok "virsh capabilities on CPU ${cpus[0]} caches the probe ($n files)"
    tap_diag "$(tail -5 "$LM_TMP/probe.log" 2>&1)"
fi

# a probe rewrites its binary's cache file, and the driver logs why
cache_stamp() { stat -c '%n %y' "$root"/cache/qemu/capabilities/*.xml 2>/dev/null | md5sum; }
stamp0=$(cache_stamp)
for cpu in "${cpus[@]}"; do
    log=$LM_TMP/cpu$cpu.log
    if ! caps_on "$cpu" "$log"; then
        tap_not_ok "virsh capabilities on CPU $cpu"
        continue
    fi
    stale=$(grep 'Outdated' "$log" || :)
    if [ -z "$stale" ] && [ "$(cache_stamp)" = "$stamp0" ]; then
        tap_ok "CPU $cpu: the driver takes the cached capabilities, no probe"
    else
        tap_not_ok "CPU $cpu: the driver takes the cached capabilities"
        tap_diag "$(cut -c1-200 <<<"$stale")"
    fi
done
