#!/bin/bash
# Local migration that shares the guest's memory (virsh migrate --live
# --local-shared-memory) of a real guest whose RAM is a shared file
# (<memoryBacking><source type='file'/><access mode='shared'/>), under the
# built libvirt and the reference QEMU, pinged every 10 ms.  Checks:
#   - with backend transfer and with classic TAPs: both processes turn
#     x-ignore-shared on, the source sends less than RAM_BOUND_MIB of RAM,
#     the new QEMU maps the very file (same inode) the old one mapped, and
#     it is the only RAM file; the TAP is the same one and no packet is
#     lost with backend transfer;
#   - a copy (--local alone) of the same guest sends its RAM and gives the
#     new process a file of its own, the old one's going with the old
#     process: the figure the bound is checked against;
#   - asked for memory that cannot be shared (a destination XML with
#     private memory), the migration is refused naming the cause, and the
#     guest runs on untouched;
#   - on Debian 12's QEMU 7.2, which has x-ignore-shared, the RAM is
#     shared too;
#   - the domain's final stop removes the RAM file, once.
# Faults in every phase with shared memory are in fault-matrix.sh
# (FM_MEMORY=shared).  TAP output.
#
# Env: as local-migrate.sh; RAM_BOUND_MIB (default 16).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
RAM_BOUND_MIB=${RAM_BOUND_MIB:-16}
STOCK_QEMU=/usr/bin/qemu-system-x86_64

lv_reference_qemu
QEMU=$QEMU_BIN
[ -x "$QEMU" ] || tap_skip_all "$QEMU missing: run qemu/build.sh"

lv_guest_test 30 shm

LV_NET_XML="
      <backend transfer='on'/>"
lv_domain_xml "$dom" "$serial" | lv_shared_memory file >"$LM_TMP/$dom.xml"

# ram_maps PID: "inode path" of each RAM file QEMU PID maps shared, a
# line each ("(deleted)" kept: such a file no other process can open)
ram_maps() {
    awk '$2 ~ /^...s/ && $6 ~ /\/pc\.ram/ { $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); print }' \
        "/proc/$1/maps" 2>/dev/null | sort -u
}
# ram_files: the RAM files under the driver's memory directory
ram_files() { find "$root" -name pc.ram -type f 2>/dev/null | sort; }
inode_of() { stat -c %i "$1"; }

# migrate_shared LABEL ARGS...: migrate_pinged with the QMP conversation
# recorded, then: x-ignore-shared on both sides, the RAM sent under the
# bound, the new QEMU maps the file the old one mapped (same inode), the
# only RAM file left.  4 points.
migrate_shared() {
    local label=$1 file0 ino0 conv ram maps
    shift
    file0=$(ram_files); ino0=$(inode_of "$file0")
    LV_LOG_OUTPUTS="1:file:$LM_TMP/qmp.log 3:file:$root/libvirt.log" \
    LV_LOG_FILTERS="1:qemu.qemu_monitor" \
        migrate_pinged "$label" "$@"
    if conv=$("$LM_LIB_DIR/qmplog" shared-memory "$LM_TMP/qmp.log"); then
        tap_ok "$label: x-ignore-shared on in both processes before the stream"
    else
        tap_not_ok "$label: x-ignore-shared on in both processes"
        tap_diag "$conv"
    fi
    ram=$(sed -n 's/^ram=//p' <<<"$conv")
    if [ -n "$ram" ] && [ "$ram" != None ] && [ "$ram" -lt $((RAM_BOUND_MIB * 1048576)) ]; then
        tap_ok "$label: the source sent $(lv_mib "$ram") MiB of RAM (guest: $GUEST_MEM_MIB MiB, bound $RAM_BOUND_MIB MiB)"
    else
        tap_not_ok "$label: the source sent less than $RAM_BOUND_MIB MiB of RAM (ram.transferred: $ram)"
    fi
    maps=$(ram_maps "$pid1")
    if [ "$maps" = "$ino0 $file0" ] && [ "$(ram_files)" = "$file0" ] &&
       [ "$(inode_of "$file0")" = "$ino0" ]; then
        tap_ok "$label: the new QEMU maps the old one's RAM file $file0 (inode $ino0), the only one"
    else
        tap_not_ok "$label: the new QEMU maps the old one's RAM file"
        tap_diag "before: $ino0 $file0; new QEMU maps: $maps; files: $(ram_files | tr '\n' ' ')"
    fi
    rm -f "$LM_TMP/qmp.log"
}

tap_check "define and start $dom on the reference QEMU, its RAM a shared file" \
    lv_virsh "$root" "define $LM_TMP/$dom.xml; start $dom" || { show_logs; tap_bail "start failed"; }
lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial" ||
    tap_bail "guest did not boot"
tap_check "guest answers pings" answers || tap_bail "no ping"
pid=$(lv_qemu_pid "$root" "$dom")
ram0=$(ram_files)
if [ "$(wc -l <<<"$ram0")" = 1 ] && [ -n "$ram0" ] &&
   [ "$(ram_maps "$pid")" = "$(inode_of "$ram0") $ram0" ]; then
    tap_ok "QEMU $pid maps its RAM shared from $ram0"
else
    tap_not_ok "QEMU maps its RAM shared from one file ($ram0; maps: $(ram_maps "$pid"))"
fi
tap0=$(lv_domain_tap "$root" "$dom")
ifindex0=$(cat "/sys/class/net/$tap0/ifindex" 2>/dev/null || ip -n "$LM_NS" -o link show "$tap0" | cut -d: -f1)

# --- shared memory with backend transfer ------------------------------
migrate_shared "--local-backend-transfer --local-shared-memory" \
    --live --local-backend-transfer --local-shared-memory "$dom"
ifindex1=$(cat "/sys/class/net/$tap0/ifindex" 2>/dev/null || ip -n "$LM_NS" -o link show "$tap0" | cut -d: -f1)
if [ "$(lv_domain_tap "$root" "$dom")" = "$tap0" ] && [ "$ifindex1" = "$ifindex0" ] &&
   [ "$(stat_of lost_after_first_reply)" -eq 0 ]; then
    tap_ok "the same TAP $tap0 (ifindex $ifindex0), no packet lost; largest ping gap $(stat_of max_gap_ms) ms"
else
    tap_not_ok "the same TAP and no packet lost ($tap0/$ifindex0 -> $(lv_domain_tap "$root" "$dom")/$ifindex1, lost $(stat_of lost_after_first_reply))"
fi

# --- shared memory with classic TAPs ----------------------------------
migrate_shared "--local --local-shared-memory" --live --local-shared-memory "$dom"
tap_check "the guest answers after both" answers

# --- copy: the same guest, its RAM sent to a file of the new process's own
file0=$(ram_files)
LV_LOG_OUTPUTS="1:file:$LM_TMP/qmp.log 3:file:$root/libvirt.log" \
LV_LOG_FILTERS="1:qemu.qemu_monitor" \
    migrate_pinged "--local (copy)" --live --local "$dom"
ram=$("$LM_LIB_DIR/qmplog" ram "$LM_TMP/qmp.log" | sed 's/^ram=//')
file1=$(ram_files)
if [ "$ram" != None ] && [ "$ram" -ge $((RAM_BOUND_MIB * 1048576)) ] &&
   [ "$(wc -l <<<"$file1")" = 1 ] && [ "$file1" != "$file0" ] &&
   [ "$(ram_maps "$pid1")" = "$(inode_of "$file1") $file1" ]; then
    tap_ok "a copy sends $(lv_mib "$ram") MiB of RAM into a file of the new process's own ($file1); the old one's went with it"
else
    tap_not_ok "a copy sends its RAM into a file of its own (ram.transferred $ram; files: $(tr '\n' ' ' <<<"$file1"))"
fi
rm -f "$LM_TMP/qmp.log"

# --- memory that cannot be shared: refused, the guest untouched --------
pid=$(lv_qemu_pid "$root" "$dom")
lv_virsh "$root" dumpxml --migratable "$dom" |
    sed "/<access mode='shared'\/>/d" >"$LM_TMP/private.xml"
if out=$(lv_virsh "$root" migrate --live --local-shared-memory --xml "$LM_TMP/private.xml" "$dom" 2>&1); then
    tap_not_ok "private memory in the destination XML refused (it succeeded)"
elif grep -q "cannot share the memory of domain '$dom' with its new process: its memory is private" <<<"$out" &&
     one_qemu && [ "$(lv_qemu_pid "$root" "$dom")" = "$pid" ] && answers; then
    tap_ok "private memory refused, guest untouched: $(tr '\n' ' ' <<<"$out" | sed 's/^error: //')"
else
    tap_not_ok "private memory refused naming the cause, guest untouched"
    tap_diag "$out"
fi

# --- Debian 12's QEMU 7.2: x-ignore-shared is there -------------------
: >"$serial"
QEMU=$STOCK_QEMU LV_NET_XML= lv_domain_xml "$dom" "$serial" |
    lv_shared_memory file >"$LM_TMP/stock.xml"
pid=$(lv_qemu_pid "$root" "$dom")
if lv_destroy "$root" "$dom" >/dev/null && lm_wait_until 10 lm_pid_gone "$pid" &&
   lv_virsh "$root" "undefine $dom; define $LM_TMP/stock.xml; start $dom" >/dev/null &&
   lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$serial"; then
    tap_ok "the guest restarted on QEMU 7.2 ($STOCK_QEMU), its RAM a shared file"
    migrate_shared "QEMU 7.2: --local --local-shared-memory" --live --local-shared-memory "$dom"
    tap_check "QEMU 7.2: the guest answers" answers
else
    tap_not_ok "the guest restarted on QEMU 7.2"
    show_logs
    for _ in 1 2 3 4 5 6; do tap_not_ok "QEMU 7.2 (the guest did not start)"; done
fi

# --- the final stop removes the RAM file -----------------------------
no_ram_left() { tap_expect "the final stop removed the RAM file" "" "$(ram_files)"; }
lv_guest_end no_ram_left
