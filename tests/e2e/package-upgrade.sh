#!/bin/bash
# The upgrade the way operators do it, in host mode (lib/daemon.sh): the
# realistic guest runs on Debian 12's QEMU 7.2; the package is upgraded in
# place to Debian's stock QEMU 10.0 from bookworm-backports, so that
# /usr/bin/qemu-system-x86_64 is another binary under the running process;
# `virsh migrate --live --local` moves the guest onto it with the emulator
# path unchanged, while --local-backend-transfer is refused (neither binary
# has it; the running one is judged by what it started with, not by a
# probe of the file that replaced it). Then, started on the stock 10.0
# with classic TAPs (stock QEMU has neither backend transfer nor tap
# cpr=on), a guest whose RAM is a shared file moves by `--local
# --local-shared-memory` with x-ignore-shared, and one on a shared memfd in
# QEMU's cpr-transfer: the RAM is not copied (the completed job's
# memory_processed stays under RAM_BOUND_MIB), the new process maps the
# same file or memfd, and the host-mode checks of the realistic guest
# hold. The 7.2 packages are put back at the end, whatever happens, so
# that the rest of the suite keeps them.
#
# Needs Debian's archive (bookworm-backports, as build-aux/apt-sources.sh
# adds it). TAP output.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"
. "$LM_LIB_DIR/hostguest.sh"

QEMU_BIN=/usr/bin/qemu-system-x86_64
RAM_BOUND_MIB=${RAM_BOUND_MIB:-16}
# the packages an upgrade of qemu-system-x86 replaces (qemu-utils: the
# image tools come along from the same source)
PKGS="qemu-system-x86 qemu-system-common qemu-system-data qemu-utils"

[ "$(id -u)" = 0 ] || tap_skip_all "must run as root"
lv_wait_build "${LIBVIRT_WAIT:-0}" ||
    tap_skip_all "no libvirt build at $LIBVIRT_BUILDDIR"
[[ "$(apt-cache policy qemu-system-x86 2>/dev/null)" == *bpo12* ]] ||
    tap_skip_all "no qemu-system-x86 in bookworm-backports (run build-aux/apt-sources.sh and apt-get update)"

qemu_version() { "$QEMU_BIN" -version | sed -n '1s/.*version \([0-9.]*\).*/\1/p'; }

apt_q() {
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 \
        --no-install-recommends "$@" >"$LM_TMP/apt.log" 2>&1 ||
        { tail -n 5 "$LM_TMP/apt.log" >&2; return 1; }
}

# the installed versions, to come back to
installed=()
for p in $PKGS; do
    v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null) || continue
    installed+=("$p=$v")
done
restore_packages() {
    [ "$(qemu_version)" = "$version0" ] && return 0
    apt_q install --allow-downgrades "${installed[@]}"
}

tap_plan 74

# ram_not_copied LABEL: the completed job of $dom processed less RAM than
# RAM_BOUND_MIB
ram_not_copied() {
    local stats ram
    stats=$(lh_virsh domjobinfo --completed --rawstats "$dom" 2>&1 || :)
    ram=$(sed -n 's/^memory_processed: //p' <<<"$stats")
    if [ -n "$ram" ] && [ "$ram" -lt $((RAM_BOUND_MIB * 1048576)) ]; then
        tap_ok "$1: the completed job processed $(lv_mib "$ram") MiB of RAM (bound $RAM_BOUND_MIB MiB)"
    else
        tap_not_ok "$1: the RAM is not copied (memory_processed '$ram', bound $RAM_BOUND_MIB MiB)"
        tap_diag "$stats"
    fi
}

host_guest_setup upgrade
version0=$(qemu_version)
lm_defer restore_packages
case $version0 in
    7.2*) tap_ok "Debian 12's QEMU $version0 at $QEMU_BIN" ;;
    *) tap_bail "$QEMU_BIN is QEMU $version0, not Debian 12's 7.2" ;;
esac

boot_domain "lm-upgrade-$$" "$QEMU_BIN"
cgroup0=$(cgroup_of "$pid")

# --- the package upgrade under the running guest ------------------------
if apt_q install -t bookworm-backports $PKGS; then
    tap_ok "apt-get install -t bookworm-backports qemu-system-x86: $QEMU_BIN is now QEMU $(qemu_version), under the running 7.2 process $pid"
else
    tap_bail "the package upgrade failed: $(tail -n 3 "$LM_TMP/apt.log")"
fi

# backend transfer: refused before anything starts, naming the running
# binary by what it started as (7.2), not by the file now in its place
if out=$(lh_virsh migrate --live --local-backend-transfer "$dom" 2>&1); then
    tap_not_ok "--local-backend-transfer refused with stock QEMU (it succeeded)"
elif grep -q "running QEMU binary '$QEMU_BIN': it lacks" <<<"$out" &&
     [ "$(qemu_of_dom "$dom")" = "$pid" ] && lm_pid_alive "$pid"; then
    tap_ok "--local-backend-transfer refused, the guest untouched: ${out#error: }"
else
    tap_not_ok "--local-backend-transfer refused clearly, the guest untouched"
    tap_diag "$out"
fi

migrate_job "#1 migrate --live --local onto the upgraded package" : \
    --live --local "$dom"
after_migration "#1"
# captured first: grep -q in a pipe under pipefail may fail on SIGPIPE
domxml=$(lh_virsh dumpxml "$dom")
qver=$(lh_virsh qemu-monitor-command "$dom" '{"execute":"query-version"}')
if [[ "$domxml" == *"<emulator>$QEMU_BIN</emulator>"* ]] &&
   [[ "$qver" == *'"major":10'* ]]; then
    tap_ok "#1: the emulator path is unchanged and the guest runs on QEMU 10"
else
    tap_not_ok "#1: the guest runs on the upgraded QEMU at $QEMU_BIN"
    tap_diag "$(lh_virsh qemu-monitor-command "$dom" '{"execute":"query-version"}' 2>&1)"
fi
end_domain

# --- x-ignore-shared on the stock 10.0: a guest on a shared file -------
boot_domain "lm-upgrade-file-$$" "$QEMU_BIN" lv_shared_memory file
ino0=$(lv_ramfile_of "$pid")
if [ -n "$ino0" ]; then
    tap_ok "$dom: QEMU $(qemu_version) maps its RAM from a shared file (inode $ino0)"
else
    tap_not_ok "$dom: QEMU maps its RAM from a shared file"
    tap_diag "$(grep pc.ram "/proc/$pid/maps" 2>&1)"
fi
migrate_job "#2 migrate --live --local --local-shared-memory (x-ignore-shared)" : \
    --live --local --local-shared-memory "$dom"
after_migration "#2"
ram_not_copied "#2"
tap_expect "#2: the new QEMU maps the old one's RAM file (inode)" "${ino0:-no file}" "$(lv_ramfile_of "$pid1")"
end_domain

# --- cpr-transfer on the stock 10.0: a guest on a shared memfd ---------
boot_domain "lm-upgrade-memfd-$$" "$QEMU_BIN" lv_shared_memory memfd
cgroup0=$(cgroup_of "$pid")
ino0=$(lv_memfd_of "$pid")
argv=$(tr '\0' ' ' <"/proc/$pid/cmdline")
if [ -n "$ino0" ] && grep -q 'aux-ram-share=on' <<<"$argv" &&
   ! grep -q '"cpr":true' <<<"$argv"; then
    tap_ok "$dom: QEMU $(qemu_version) maps its RAM from a shared memfd, -machine aux-ram-share=on, classic taps"
else
    tap_not_ok "$dom: QEMU starts for cpr-transfer (memfd '$ino0')"
    tap_diag "$argv"
fi
migrate_job "#3 migrate --live --local --local-shared-memory (cpr-transfer)" : \
    --live --local --local-shared-memory "$dom"
after_migration "#3"
ram_not_copied "#3"
tap_expect "#3: the new QEMU maps the old one's memfd (inode)" "${ino0:-no memfd}" "$(lv_memfd_of "$pid1")"
end_domain

if restore_packages && [ "$(qemu_version)" = "$version0" ]; then
    tap_ok "the 7.2 packages are back: $QEMU_BIN is QEMU $(qemu_version)"
else
    tap_not_ok "the 7.2 packages are back"
fi

lh_stop
tap_check "daemons stopped; nothing left behind (processes, sockets, TAPs)" \
    lm_leftovers --ns "$LM_NS" --match "$LM_TMP" "$LH_ROOT" || :
