#!/bin/bash
# Local migration of a real guest whose RAM is a shared memfd
# (<memoryBacking><source type='memfd'/><access mode='shared'/>), under the
# built libvirt and the reference QEMU, pinged every 10 ms: virsh migrate
# --live --local-backend-transfer --local-shared-memory runs QEMU 10.0's
# cpr-transfer, the memfds and the TAPs (tap cpr=on) in the CPR state.
# Checks:
#   - the domain's process starts with -machine aux-ram-share=on and its
#     tap with cpr=on;
#   - the job sets mode cpr-transfer and runs migrate with the main and
#     the CPR channel, the source sends less than RAM_BOUND_MIB of RAM, the
#     new QEMU maps the very memfd (same inode) the old one mapped, the
#     same TAP (ifindex) and no packet is lost, twice in a row;
#   - without --local-backend-transfer the job is refused naming the
#     interface (its tap with cpr=on would go in the CPR state anyway), the
#     guest untouched;
#   - a copy (--local) of the same guest still works, into a memfd of the
#     new process's own;
#   - with classic TAPs (the same guest defined without the transfer
#     attribute, so its tap has no cpr=on), --local --local-shared-memory
#     runs cpr-transfer with the memfds alone: the RAM sent under the
#     bound, the very memfd, a new TAP on the bridge.
# `cpr-transfer.sh hugepages`: the memfd is of 2 MiB hugepages, from a
# pool this test reserves (vm.nr_hugepages, put back at the end) with room
# for one guest only, as a host packed with hugepage guests has; then each
# job's new QEMU takes no page of the pool (HugePages_Free unchanged), and
# the copy fails for want of a second set of pages, the guest running on.
# TAP output.
#
# Env: as local-migrate.sh; RAM_BOUND_MIB (default 16).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
RAM_BOUND_MIB=${RAM_BOUND_MIB:-16}

lv_reference_qemu
QEMU=$QEMU_BIN
[ -x "$QEMU" ] || tap_skip_all "$QEMU missing: run qemu/build.sh"

PAGES=${1:-}
case $PAGES in
    ''|hugepages) ;;
    *) echo "usage: $0 [hugepages]" >&2; exit 2 ;;
esac
# hugepages: a point more per migrate_cpr, two fewer for the failed copy
# and no classic part (10 points)
if [ -n "$PAGES" ]; then lv_guest_test 23 cprhp; else lv_guest_test 33 cpr; fi

LV_NET_XML="
      <backend transfer='on'/>"
if [ -n "$PAGES" ]; then
    # the guest's pages and 4 to spare: not a second guest's
    pool=$((GUEST_MEM_MIB / 2 + 4))
    lm_defer sysctl -qw "vm.nr_hugepages=$(sysctl -n vm.nr_hugepages)"
    sysctl -qw "vm.nr_hugepages=$pool"
    [ "$(sysctl -n vm.nr_hugepages)" -eq "$pool" ] ||
        tap_bail "cannot reserve $pool hugepages of 2 MiB"
    lv_domain_xml "$dom" "$serial" | lv_shared_memory memfd |
        sed "s|^    <source type='memfd'/>|    <hugepages><page size='2048' unit='KiB'/></hugepages>\n&|" \
        >"$LM_TMP/$dom.xml"
else
    lv_domain_xml "$dom" "$serial" | lv_shared_memory memfd >"$LM_TMP/$dom.xml"
fi
hp_free() { awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo; }

ifindex_of() { ip -n "$LM_NS" -o link show "$1" | cut -d: -f1; }

# migrate_cpr LABEL ARGS...: migrate_pinged with the QMP conversation
# recorded, then: the cpr-transfer conversation, the RAM sent under the
# bound, the same memfd, the same TAP and no loss.  6 points; with
# hugepages 7: the pool as before.  CPR_TAPS=new: classic TAPs, so a new
# TAP on the bridge instead of the same one.
migrate_cpr() {
    local label=$1 ino0 conv ram tap0 tap1 if0 free0
    shift
    ino0=$(lv_memfd_of "$(lv_qemu_pid "$root" "$dom")")
    free0=$(hp_free)
    tap0=$(lv_domain_tap "$root" "$dom"); if0=$(ifindex_of "$tap0")
    LV_LOG_OUTPUTS="1:file:$LM_TMP/qmp.log 3:file:$root/libvirt.log" \
    LV_LOG_FILTERS="1:qemu.qemu_monitor" \
        migrate_pinged "$label" "$@"
    if conv=$("$LM_LIB_DIR/qmplog" cpr "$LM_TMP/qmp.log"); then
        tap_ok "$label: mode cpr-transfer, migrate with the main and the CPR channel"
    else
        tap_not_ok "$label: the cpr-transfer conversation"
        tap_diag "$conv" "$("$LM_LIB_DIR/qmplog" show "$LM_TMP/qmp.log" | tail -n 30)"
    fi
    ram=$(sed -n 's/^ram=//p' <<<"$conv")
    if [ -n "$ram" ] && [ "$ram" != None ] && [ "$ram" -lt $((RAM_BOUND_MIB * 1048576)) ]; then
        tap_ok "$label: the source sent $(lv_mib "$ram") MiB of RAM (guest: $GUEST_MEM_MIB MiB, bound $RAM_BOUND_MIB MiB)"
    else
        tap_not_ok "$label: the source sent less than $RAM_BOUND_MIB MiB of RAM (ram.transferred: $ram)"
    fi
    tap_expect "$label: the new QEMU maps the old one's memfd (inode)" "$ino0" "$(lv_memfd_of "$pid1")"
    if [ "${CPR_TAPS:-}" = new ]; then
        tap1=$(lv_domain_tap "$root" "$dom")
        if [ -n "$tap1" ] && [ "$tap1" != "$tap0" ] &&
           ip -n "$LM_NS" -o link show "$tap1" | grep -q "master $LM_BRIDGE" &&
           ! ip -n "$LM_NS" link show "$tap0" >/dev/null 2>&1; then
            tap_ok "$label: a new TAP $tap1 on $LM_BRIDGE ($tap0 gone with the old QEMU), lost $(stat_of lost_after_first_reply)"
        else
            tap_not_ok "$label: a new TAP on $LM_BRIDGE ($tap0 -> '$tap1')"
        fi
    elif [ "$(lv_domain_tap "$root" "$dom")" = "$tap0" ] && [ "$(ifindex_of "$tap0")" = "$if0" ] &&
       [ "$(stat_of lost_after_first_reply)" -eq 0 ]; then
        tap_ok "$label: the same TAP $tap0 (ifindex $if0), no packet lost; largest ping gap $(stat_of max_gap_ms) ms"
    else
        tap_not_ok "$label: the same TAP and no packet lost ($tap0/$if0 -> $(lv_domain_tap "$root" "$dom"), lost $(stat_of lost_after_first_reply))"
    fi
    [ -z "$PAGES" ] ||
        tap_expect "$label: the new QEMU took no hugepage of the pool (free)" "$free0" "$(hp_free)"
    rm -f "$LM_TMP/qmp.log"
}

tap_check "define and start $dom on the reference QEMU, its RAM a shared memfd" \
    lv_virsh "$root" "define $LM_TMP/$dom.xml; start $dom" || { show_logs; tap_bail "start failed"; }
lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial" ||
    tap_bail "guest did not boot"
tap_check "guest answers pings" answers || tap_bail "no ping"
pid=$(lv_qemu_pid "$root" "$dom")
argv=$(tr '\0' ' ' <"/proc/$pid/cmdline")
if [ -n "$PAGES" ] && ! grep -q '"hugetlb":true,"hugetlbsize":2097152' <<<"$argv"; then
    tap_not_ok "QEMU starts with its memfd of 2 MiB hugepages"
    tap_diag "$argv"
elif [ -n "$PAGES" ] && [ "$(hp_free)" != $((pool - GUEST_MEM_MIB / 2)) ]; then
    tap_not_ok "the guest took $((GUEST_MEM_MIB / 2)) hugepages of the pool (free: $(hp_free) of $pool)"
elif grep -q 'aux-ram-share=on' <<<"$argv" && grep -q '"cpr":true' <<<"$argv" &&
     [ -n "$(lv_memfd_of "$pid")" ]; then
    tap_ok "QEMU $pid maps its RAM from a shared memfd${PAGES:+ of hugepages}, -machine aux-ram-share=on, tap cpr=on"
else
    tap_not_ok "QEMU starts for cpr-transfer (memfd: $(lv_memfd_of "$pid"))"
    tap_diag "$argv"
fi

migrate_cpr "--local-backend-transfer --local-shared-memory" \
    --live --local-backend-transfer --local-shared-memory "$dom"
# the new process took its TAP as cpr=on: it hands it over the same way
migrate_cpr "again" --live --local-backend-transfer --local-shared-memory "$dom"

# --- without backend transfer: refused, the guest untouched ------------
pid=$(lv_qemu_pid "$root" "$dom")
if out=$(lv_virsh "$root" migrate --live --local-shared-memory "$dom" 2>&1); then
    tap_not_ok "memfd memory without --local-backend-transfer refused (it succeeded)"
elif grep -q "has a tap with cpr=on.*needs --local-backend-transfer" <<<"$out" &&
     one_qemu && [ "$(lv_qemu_pid "$root" "$dom")" = "$pid" ] && answers; then
    tap_ok "without backend transfer refused, guest untouched: $(tr '\n' ' ' <<<"$out" | sed 's/^error: //')"
else
    tap_not_ok "without backend transfer refused naming the interface, guest untouched"
    tap_diag "$out"
fi

# --- a copy of the same guest: a memfd of its own ----------------------
ino0=$(lv_memfd_of "$pid")
if [ -n "$PAGES" ]; then
    # the pool has no second set of pages: the new QEMU cannot start
    free0=$(hp_free)
    if out=$(lv_virsh "$root" migrate --live --local-backend-transfer "$dom" 2>&1); then
        tap_not_ok "a copy with no hugepages for it fails (it succeeded)"
    elif one_qemu && [ "$(lv_qemu_pid "$root" "$dom")" = "$pid" ] &&
         [ "$(lv_memfd_of "$pid")" = "$ino0" ] && [ "$(hp_free)" = "$free0" ]; then
        tap_ok "a copy fails for want of hugepages, the guest on its QEMU and memfd: $(tr '\n' ' ' <<<"$out" | sed 's/^error: //' | cut -c1-200)"
    else
        tap_not_ok "a failed copy leaves the guest on its QEMU, memfd and pages (free $free0 -> $(hp_free))"
        tap_diag "$out"
    fi
else
    LV_LOG_OUTPUTS="1:file:$LM_TMP/qmp.log 3:file:$root/libvirt.log" \
    LV_LOG_FILTERS="1:qemu.qemu_monitor" \
        migrate_pinged "--local-backend-transfer (copy)" --live --local-backend-transfer "$dom"
    ram=$("$LM_LIB_DIR/qmplog" ram "$LM_TMP/qmp.log" | sed 's/^ram=//')
    if [ "$ram" != None ] && [ "$ram" -ge $((RAM_BOUND_MIB * 1048576)) ] &&
       [ -n "$(lv_memfd_of "$pid1")" ] && [ "$(lv_memfd_of "$pid1")" != "$ino0" ]; then
        tap_ok "a copy sends $(lv_mib "$ram") MiB of RAM into a memfd of the new process's own"
    else
        tap_not_ok "a copy sends its RAM into a memfd of its own (ram.transferred $ram; memfd $ino0 -> $(lv_memfd_of "$pid1"))"
    fi
fi
tap_check "the guest answers after all" answers

# --- classic TAPs: the memfds alone in the CPR state --------------------
if [ -z "$PAGES" ]; then
    LV_NET_XML='' lv_domain_xml "$dom" "$serial" | lv_shared_memory memfd >"$LM_TMP/$dom-classic.xml"
    pid=$(lv_qemu_pid "$root" "$dom")
    lv_destroy "$root" "$dom" >/dev/null || :
    lm_wait_until 10 lm_pid_gone "$pid" || :
    rm -f "$serial"
    # the XML has a new UUID: a definition of the old one would refuse it
    tap_check "$dom defined again without the transfer attribute, started" \
        lv_virsh "$root" "undefine $dom; define $LM_TMP/$dom-classic.xml; start $dom" || show_logs
    lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial" ||
        tap_bail "guest did not boot"
    tap_check "guest answers pings" answers
    pid=$(lv_qemu_pid "$root" "$dom")
    argv=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    if grep -q 'aux-ram-share=on' <<<"$argv" && ! grep -q '"cpr":true' <<<"$argv" &&
       [ -n "$(lv_memfd_of "$pid")" ]; then
        tap_ok "QEMU $pid maps its RAM from a shared memfd, -machine aux-ram-share=on, tap without cpr=on"
    else
        tap_not_ok "QEMU starts for cpr-transfer with a classic tap"
        tap_diag "$argv"
    fi
    CPR_TAPS=new migrate_cpr "--local --local-shared-memory (classic TAPs)" \
        --live --local --local-shared-memory "$dom"
    tap_check "the guest answers on its new TAP" answers
fi

lv_guest_end
