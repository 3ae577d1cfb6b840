#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The benchmark of a local migration, four modes side by side on one guest
# (256 MiB, TCG), pinged from its namespace every BENCH_PING_INTERVAL s:
#
#   raw      two reference-QEMU processes, backend transfer over a socket
#            pair, driven over QMP by bench/rawmig.py (no libvirt): the floor
#   classic  virsh migrate --live --local (the new process gets a new TAP)
#   bt       virsh migrate --live --local-backend-transfer
#   upgrade  virsh migrate --live --local --xml NEW from Debian 12's QEMU 7.2
#            to the reference QEMU 10.0.13 (classic networking)
#
# BENCH_RUNS iterations (default 5); each runs every mode once, in an order
# rotated by one per iteration, each on a freshly booted guest (only that
# guest runs while it is measured; the boot is not measured).
#
# Then the memory dimension: the guest's RAM is a shared file in a tmpfs
# (a memfd for raw-cpr)
# (memory_backing_dir, as a host gives file-backed guests memory rather
# than disk), BENCH_SIZES MiB of it (default "256 1024 4096"), and the guest
# rewrites BENCH_DIRTY_PCT % of it (default 5) every second or so
# (localmig.dirty, tests/e2e/guest/build-guest.sh). BENCH_MEMORY_RUNS
# iterations (default 3) per size of the memory modes, each with backend
# transfer, each after its guest's first pass over that memory (its RSS
# grows by less than 2 MiB a second; meta: steady_s):
#
#   raw-copy    the raw floor of a copy: two reference QEMUs on files of
#               their own, over QMP
#   copy        virsh migrate --live --local-backend-transfer (the new
#               process gets a file of its own and the RAM in the stream)
#   raw-shared  the raw floor of sharing: both QEMUs on one file,
#               x-ignore-shared on both
#   raw-cpr     the raw floor of cpr-transfer: memfd RAM, the new process
#               gets the memfds and the TAP (tap cpr=on) in the CPR state
#   shared      virsh migrate --live --local-backend-transfer
#               --local-shared-memory
#   cpr         the same on a guest whose RAM is a shared memfd: libvirt
#               runs cpr-transfer (the memfds and the TAP in the CPR state)
#
# A memory mode's runs are named MODE@SIZE. BENCH_MEMORY_MODES (default
# "raw-copy copy raw-shared shared raw-cpr cpr", "" for none) chooses them.  Each run
# keeps its raw samples in OUT/runs/NN-MODE/: ping.log (timestamped
# replies), mem.log (bench/memwatch.py), meta (key=value: command start
# and end, exit status, QEMU's figures, the raw floor's step times, the
# kernel's drop counter of the TAP that stays),
# virsh.out and libvirt-debug.log (libvirt modes).  bench/report.py then
# writes OUT/samples.csv, samples.json, table.txt, table.rst, gaps.png.
#
# Usage (root):  bench/run.sh [OUT]      (default _build/bench/<UTC time>)
# Env: BENCH_RUNS, BENCH_PING_INTERVAL (s, default 0.002), BENCH_SETTLE (s
#      of pinging before and after each migration, default 1),
#      BENCH_MODES (default "raw classic bt upgrade"), BENCH_MAX_DOWNTIME
#      (ms, default 10: the source's downtime limit in every mode, set
#      with virsh migrate-setmaxdowntime before a libvirt mode's migration
#      and as downtime-limit by the raw floor; 0 keeps QEMU's 300 ms),
#      BENCH_DEBUG_LOG=0
#      (no libvirt debug log: no phase breakdown), BENCH_LOG_FILTERS,
#      BENCH_QUIET_WAIT (s to wait before each run for no other QEMU and at
#      most BENCH_MAX_BUSY % CPU busy, default 300 and 20), LIBVIRT_WAIT,
#      LM_KEEP.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
. "$top/tests/e2e/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

RUNS=${BENCH_RUNS:-5}
INTERVAL=${BENCH_PING_INTERVAL:-0.002}
SETTLE=${BENCH_SETTLE:-1}
MAX_DOWNTIME=${BENCH_MAX_DOWNTIME:-10}
read -r -a MODES <<<"${BENCH_MODES-raw classic bt upgrade}"
read -r -a SIZES <<<"${BENCH_SIZES:-256 1024 4096}"
read -r -a MEMORY_MODES <<<"${BENCH_MEMORY_MODES-raw-copy copy raw-shared shared raw-cpr cpr}"
MEMORY_RUNS=${BENCH_MEMORY_RUNS:-3}
DIRTY_PCT=${BENCH_DIRTY_PCT:-5}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
STOCK_QEMU=/usr/bin/qemu-system-x86_64
PY=/usr/bin/python3
OUT=${1:-$top/_build/bench/$(date -u +%Y%m%dT%H%M%SZ)}
# what libvirt logs for the phase breakdown: the API entry, the local
# migration's phases, the monitor traffic (QMP commands, replies, events)
# and the job's end
LOG_FILTERS=${BENCH_LOG_FILTERS:-"1:libvirt.domain 1:qemu.qemu_migration_local 1:qemu.qemu_monitor 1:conf.virdomainjob 3:*"}

say() { echo "bench: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
kv() { printf '%s=%s\n' "$1" "$2" >>"$RUN_DIR/meta"; }

# ---- set-up ------------------------------------------------------------------
setup() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    "$LM_E2E_DIR/guest/build-guest.sh" >/dev/null || die "guest build"
    . "${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest/guest.env"
    local qemu_env=${LOCALMIG_BUILD_ROOT:-$top/_build}/qemu/qemu.env
    [ -f "$qemu_env" ] || die "no reference QEMU: run ./localmig build"
    . "$qemu_env"
    [ -x "$STOCK_QEMU" ] || die "no Debian QEMU at $STOCK_QEMU"
    if ! lv_have_build; then
        say "waiting for the libvirt build in $LIBVIRT_BUILDDIR"
        lv_wait_build "${LIBVIRT_WAIT:-1800}" || die "no libvirt build"
    fi
    mkdir -p "$OUT/runs"
    OUT=$(cd "$OUT" && pwd)
    lv_ensure_qemu_user
    lm_tmpdir
    ROOT=$LM_TMP/root
    lv_embed_root "$ROOT"
    # the memory modes' guest RAM: in memory, as /dev/shm is
    SHM=$(mktemp -d /dev/shm/lm-bench.XXXXXX)
    lm_defer rm -rf "$SHM"
    chmod 0755 "$SHM"
    echo "memory_backing_dir = \"$SHM/lv\"" >>"$ROOT/etc/qemu.conf"
    lm_netns_create bench
    lm_defer say "cleaned up"

    # the libvirt guest of classic and bt (reference QEMU, backend
    # transfer allowed), and the upgrade guest (QEMU 7.2, which lacks
    # backend transfer, so without the attribute)
    DOM=lm-bench-$$
    UPDOM=lm-bench-up-$$
    SERIAL=$LM_TMP/serial.log
    # the raw floor drives the v10 interface (bench/rawmig.py): so does
    # libvirt here, through the wrapper that exposes only that generation
    QEMU=$QEMU_BIN_V10 LV_NET_XML="
      <backend transfer='on'/>" lv_domain_xml "$DOM" "$SERIAL" >"$LM_TMP/$DOM.xml"
    QEMU=$STOCK_QEMU LV_NET_XML='' lv_domain_xml "$UPDOM" "$SERIAL" >"$LM_TMP/$UPDOM.xml"
    lv_virsh "$ROOT" "define $LM_TMP/$DOM.xml; define $LM_TMP/$UPDOM.xml" >/dev/null ||
        die "define"
    lm_defer lv_undefine_all
    # the memory modes' guest, defined again for each size
    MEMDOM=lm-bench-mem-$$
}

# dirty_mib SIZE: what the guest of SIZE MiB rewrites each second
dirty_mib() { echo $(($1 * DIRTY_PCT / 100)); }

# define_mem SIZE [memfd]: the memory modes' guest with SIZE MiB of shared
# file RAM, or of a shared memfd on the binary with the CPR generation
define_mem() {
    local src=file qemu=$QEMU_BIN_V10
    [ "${2:-}" != memfd ] || { src=memfd; qemu=$QEMU_BIN; }
    QEMU=$qemu GUEST_MEM_MIB=$1 \
        GUEST_CMDLINE="$GUEST_CMDLINE localmig.dirty=$(dirty_mib "$1")" LV_NET_XML="
      <backend transfer='on'/>" lv_domain_xml "$MEMDOM" "$SERIAL" |
        lv_shared_memory "$src" >"$LM_TMP/$MEMDOM.xml"
    lv_virsh "$ROOT" "undefine $MEMDOM" >/dev/null 2>&1 || :
    lv_virsh "$ROOT" "define $LM_TMP/$MEMDOM.xml" >/dev/null || die "define $MEMDOM"
}

lv_undefine_all() {
    local d
    for d in "$DOM" "$UPDOM" "${MEMDOM:-}"; do
        [ -n "$d" ] || continue
        if [ -n "$(lv_qemu_pid "$ROOT" "$d" || :)" ]; then
            lv_destroy "$ROOT" "$d" >/dev/null 2>&1 || :
        fi
        lv_virsh "$ROOT" undefine "$d" >/dev/null 2>&1 || :
    done
}

# wait_guest: the guest on the console is up and answers a ping
wait_guest() {
    lm_wait_until "$BOOT_TIMEOUT" grep -q "$GUEST_READY_MARKER" "$SERIAL" ||
        die "guest did not boot: $(tail -n 5 "$SERIAL" 2>/dev/null)"
    lm_wait_until 30 lm_nsexec ping -c 1 -W 1 "$GUEST_IP" || die "guest does not answer"
}

# ---- the raw floor: reference QEMU over QMP --------------------------------------
RAW_TAP=lmbench0

# RAW_MEM: the raw floor's guest RAM in MiB; RAW_RAM: its file (the memory
# modes), "memfd" for shared memfd RAM (raw-cpr), empty for anonymous RAM
# and RAW_CMDLINE its kernel command line; measure sets them for each run
RAW_MEM= RAW_RAM= RAW_CMDLINE=
raw_qemu_args() {   # NAME [RAMFILE|memfd]: common part of both processes' command lines
    echo "$QEMU_BIN -nodefaults -no-user-config -display none" \
         "-machine pc,accel=tcg -m $RAW_MEM -smp 1" \
         "-qmp unix:$LM_TMP/$1.qmp,server=on,wait=off -serial file:$SERIAL"
    case ${2:-} in
        '') ;;
        # cpr-transfer passes every RAM block as an fd: QEMU's own (ROMs)
        # too, with aux-ram-share
        memfd) echo "-object memory-backend-memfd,id=pc.ram,size=${RAW_MEM}M,share=on" \
                    "-machine memory-backend=pc.ram,aux-ram-share=on" ;;
        *) echo "-object memory-backend-file,id=pc.ram,mem-path=$2,size=${RAW_MEM}M,share=on" \
                "-machine memory-backend=pc.ram" ;;
    esac
}
# raw_nic_args: the raw floor's NIC, its tap handed over by backend
# transfer (v10), or with cpr=on in the CPR state (raw-cpr)
raw_nic_args() {   # NETDEV_OPTIONS
    local dev="virtio-net-pci,netdev=net0,mac=52:54:00:4c:4d:02,romfile="
    [ "$RAW_RAM" = memfd ] || dev+=",backend-transfer=on"
    echo "-netdev tap,id=net0,$1,script=no,downscript=no -device $dev"
}

boot_raw() {
    : >"$SERIAL"
    rm -f "$LM_TMP/rawsrc.qmp"
    # shellcheck disable=SC2046
    ip netns exec "$LM_NS" $(raw_qemu_args rawsrc "$RAW_RAM") \
        -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" -append "$RAW_CMDLINE" \
        $(raw_nic_args "ifname=$RAW_TAP$([ "$RAW_RAM" != memfd ] || echo ,cpr=on)") \
        </dev/null >"$LM_TMP/rawsrc.log" 2>&1 &
    RAW_SRC_PID=$!
    disown "$RAW_SRC_PID"
    lm_wait_until 10 ip -n "$LM_NS" link show "$RAW_TAP" || die "raw QEMU has no TAP: $(cat "$LM_TMP/rawsrc.log")"
    ip -n "$LM_NS" link set "$RAW_TAP" master "$LM_BRIDGE"
    ip -n "$LM_NS" link set "$RAW_TAP" up
    wait_guest
}

# migrate_raw [copy|shared|cpr]: the raw floor; with a RAM file, the new
# process on a file of its own (copy) or on the same one (shared); with
# memfd RAM, by cpr-transfer (cpr)
migrate_raw() {
    local rc=0 ram= opts=() netdev=incoming-fds=on incoming=(-incoming defer)
    rm -f "$LM_TMP/rawdst.qmp" "$LM_TMP/rawdst.cpr" "$LM_TMP/rawdst.mig"
    case ${1:-} in
        copy) ram=$SHM/raw-dst.ram ;;
        shared) ram=$RAW_RAM; opts=(--ignore-shared) ;;
        cpr)
            ram=memfd netdev=cpr=on
            opts=(--cpr "$LM_TMP/rawdst.cpr" "$LM_TMP/rawdst.mig")
            incoming+=(-incoming "{\"channel-type\": \"cpr\", \"addr\": {\"transport\": \"socket\", \"type\": \"unix\", \"path\": \"$LM_TMP/rawdst.cpr\"}}")
            ;;
    esac
    [ "$MAX_DOWNTIME" = 0 ] || opts+=(--max-downtime "$MAX_DOWNTIME")
    # shellcheck disable=SC2046
    lm_nsexec "$PY" "$here/rawmig.py" "${opts[@]}" "$LM_TMP/rawsrc.qmp" "$RAW_SRC_PID" \
        "$LM_TMP/rawdst.qmp" "$RUN_DIR/rawdst.log" -- $(raw_qemu_args rawdst "$ram") \
        $(raw_nic_args "$netdev") "${incoming[@]}" >"$RUN_DIR/rawmig.out" 2>&1 || rc=$?
    cat "$RUN_DIR/rawmig.out" >>"$RUN_DIR/meta"
    RAW_DST_PID=$(sed -n 's/^dst_pid=//p' "$RUN_DIR/rawmig.out")
    return "$rc"
}

stop_raw() {
    local p
    for p in ${RAW_SRC_PID:-} ${RAW_DST_PID:-}; do
        kill -TERM "$p" 2>/dev/null || :
        lm_wait_until 10 lm_pid_gone "$p" || kill -KILL "$p" 2>/dev/null || :
    done
    RAW_SRC_PID='' RAW_DST_PID=''
    rm -f "$SHM"/raw-*.ram
}

# ---- libvirt modes -----------------------------------------------------------------
boot_lv() {   # DOMAIN
    : >"$SERIAL"
    lv_virsh "$ROOT" start "$1" >/dev/null || die "start $1 (see $ROOT/log/qemu/$1.log)"
    wait_guest
}

stop_lv() {   # DOMAIN
    local pid
    pid=$(lv_qemu_pid "$ROOT" "$1" || :)
    lv_destroy "$ROOT" "$1" >/dev/null || :
    [ -z "$pid" ] || lm_wait_until 10 lm_pid_gone "$pid" || :
}

set_downtime() {   # DOMAIN
    [ "$MAX_DOWNTIME" = 0 ] ||
        lv_virsh "$ROOT" migrate-setmaxdowntime "$1" "$MAX_DOWNTIME" >/dev/null ||
        die "migrate-setmaxdowntime $1"
}

# migrate_lv DOMAIN ARGS...: the migration and the completed job's
# statistics in ONE virsh process (they live in that process's driver);
# -t times each command
migrate_lv() {
    local dom=$1 rc=0 outputs="3:file:$ROOT/libvirt.log" filters=
    shift
    if [ "${BENCH_DEBUG_LOG:-1}" = 1 ]; then
        outputs="1:file:$RUN_DIR/libvirt-debug.log $outputs"
        filters=$LOG_FILTERS
    fi
    LV_LOG_OUTPUTS=$outputs LV_LOG_FILTERS=$filters \
        lv_virsh "$ROOT" -t "migrate --live $* $dom; domjobinfo --completed $dom" \
        >"$RUN_DIR/virsh.out" 2>&1 || rc=$?
    return "$rc"
}

# ---- one measured run ----------------------------------------------------------------
# other QEMUs or builds on the host (e.g. tests running beside the
# benchmark) compete for the same cores: each run waits for a quiet host
# and records what it found
foreign_qemus() {
    local p n=0 ours
    ours=$(stat -L -c %i "/run/netns/$LM_NS")
    for p in $(pgrep -x qemu-system-x86 || :); do
        # an exited QEMU not yet reaped (this machine's init takes ~2 s)
        # has no namespace left to read, and runs nothing
        [ "$(sed 's/.*) //; s/ .*//' "/proc/$p/stat" 2>/dev/null)" != Z ] || continue
        [ "$(stat -L -c %i "/proc/$p/ns/net" 2>/dev/null)" = "$ours" ] || n=$((n + 1))
    done
    echo "$n"
}

# host_busy: percent of the CPU time not idle over 1 s
host_busy() {
    local a b
    read -r -a a </proc/stat; sleep 1; read -r -a b </proc/stat
    awk -v u="$(( (b[1] + b[2] + b[3] + b[6] + b[7]) - (a[1] + a[2] + a[3] + a[6] + a[7]) ))" \
        -v i="$(( (b[4] + b[5]) - (a[4] + a[5]) ))" \
        'BEGIN { printf "%d", (u + i) ? 100 * u / (u + i) : 0 }'
}

# wait_quiet: before a run's guest boots, wait until no other QEMU runs and
# the host is mostly idle (BENCH_MAX_BUSY %, default 20); gives up after
# BENCH_QUIET_WAIT s and runs anyway (the busy figure is in meta)
wait_quiet() {
    local deadline=$((SECONDS + ${BENCH_QUIET_WAIT:-300})) said='' busy
    while :; do
        busy=$(host_busy)
        [ "$(foreign_qemus)" -eq 0 ] && [ "$busy" -le "${BENCH_MAX_BUSY:-20}" ] && break
        [ "$SECONDS" -lt "$deadline" ] || { say "host still busy ($busy %), running anyway"; break; }
        [ -n "$said" ] || say "host busy ($busy % CPU, $(foreign_qemus) other QEMU): waiting"
        said=1
    done
    BUSY_BEFORE=$busy
}

# measure MODE ITER: boot the mode's guest, ping it, migrate it inside the
# ping window with the memory sampler on, stop it.
# tap_drops TAP: frames the kernel dropped instead of queueing them to the
# TAP's reader (the guest's direction)
tap_drops() {
    lm_nsexec cat "/sys/class/net/$1/statistics/tx_dropped" 2>/dev/null || echo "?"
}

measure() {
    local mode=$1 iter=$2 rc=0 t0 t1 mw waited fam=${1%@*} size=
    [ "$fam" = "$mode" ] || size=${mode#*@}
    RUN_NO=$((RUN_NO + 1))
    RUN_DIR=$OUT/runs/$(printf '%02d' "$RUN_NO")-$mode
    mkdir -p "$RUN_DIR"
    RAW_MEM=${size:-$GUEST_MEM_MIB} RAW_RAM= RAW_CMDLINE=$GUEST_CMDLINE
    if [ -n "$size" ]; then
        RAW_RAM=$SHM/raw-src.ram
        [ "$fam" != raw-cpr ] || RAW_RAM=memfd
        RAW_CMDLINE="$GUEST_CMDLINE localmig.dirty=$(dirty_mib "$size")"
    fi
    wait_quiet
    case $fam in
        raw|raw-copy|raw-shared|raw-cpr) boot_raw ;;
        classic|bt) boot_lv "$DOM" ;;
        copy|shared) define_mem "$size"; boot_lv "$MEMDOM" ;;
        cpr) define_mem "$size" memfd; boot_lv "$MEMDOM" ;;
        upgrade)
            boot_lv "$UPDOM"
            # the new definition: the running one on the reference QEMU
            lv_virsh "$ROOT" dumpxml --migratable "$UPDOM" |
                sed "s|<emulator>$STOCK_QEMU</emulator>|<emulator>$QEMU_BIN</emulator>|" \
                >"$RUN_DIR/new.xml"
            ;;
    esac
    kv mode "$mode"
    kv iteration "$iter"
    if [ -n "$size" ]; then
        kv ram_mib "$size"
        kv dirty_mib "$(dirty_mib "$size")"
    fi
    kv ping_interval "$INTERVAL"
    kv max_downtime "$MAX_DOWNTIME"
    # the libvirt modes' downtime limit, set the way an operator does, and
    # before the measured command (the raw floor sets it itself)
    case $fam in
        classic|bt) set_downtime "$DOM" ;;
        upgrade) set_downtime "$UPDOM" ;;
        copy|shared|cpr) set_downtime "$MEMDOM" ;;
    esac

    lm_nsexec "$LM_PINGSTAT" start "$RUN_DIR/ping.log" "$GUEST_IP" "$INTERVAL" >/dev/null
    "$LM_PINGSTAT" wait "$RUN_DIR/ping.log" 30 >/dev/null || die "no ping reply ($mode)"
    sleep "$SETTLE"
    # a memory run's guest first fills what it dirties: that growth is the
    # guest's, so the command waits for its end
    if [ -n "$size" ]; then
        waited=$("$PY" "$here/memwatch.py" --steady 60 "/run/netns/$LM_NS") ||
            say "run $RUN_NO ($mode): the guest's memory still grows after 60 s"
        kv steady_s "$waited"
    fi
    "$PY" "$here/memwatch.py" "$RUN_DIR/mem.log" 0.02 "/run/netns/$LM_NS" &
    mw=$!
    lm_wait_until 5 test -s "$RUN_DIR/mem.log"

    # the TAP that stays (raw, bt): what the kernel dropped on its way to
    # the guest (no reader attached, queue full) shows where a loss is
    case $fam in
        raw*) KEPT_TAP=$RAW_TAP ;;
        bt) KEPT_TAP=$(lv_domain_tap "$ROOT" "$DOM") ;;
        copy|shared|cpr) KEPT_TAP=$(lv_domain_tap "$ROOT" "$MEMDOM") ;;
        *) KEPT_TAP= ;;
    esac
    [ -z "$KEPT_TAP" ] || kv tap_drops_before "$(tap_drops "$KEPT_TAP")"
    kv foreign_qemus "$(foreign_qemus)"
    kv loadavg "$(cut -d' ' -f1 /proc/loadavg)"
    kv busy_before "$BUSY_BEFORE"
    t0=$(lm_now)
    case $fam in
        raw) migrate_raw || rc=$? ;;
        raw-copy) migrate_raw copy || rc=$? ;;
        raw-shared) migrate_raw shared || rc=$? ;;
        raw-cpr) migrate_raw cpr || rc=$? ;;
        classic) migrate_lv "$DOM" --local || rc=$? ;;
        bt) migrate_lv "$DOM" --local-backend-transfer || rc=$? ;;
        upgrade) migrate_lv "$UPDOM" --local --xml "$RUN_DIR/new.xml" || rc=$? ;;
        copy) migrate_lv "$MEMDOM" --local-backend-transfer || rc=$? ;;
        shared|cpr) migrate_lv "$MEMDOM" --local-backend-transfer --local-shared-memory || rc=$? ;;
    esac
    t1=$(lm_now)

    kill -TERM "$mw"
    wait "$mw" || :
    sleep "$SETTLE"
    "$LM_PINGSTAT" stop "$RUN_DIR/ping.log" >"$RUN_DIR/ping.summary"
    [ -z "$KEPT_TAP" ] || kv tap_drops_after "$(tap_drops "$KEPT_TAP")"
    kv t_cmd_start "$t0"
    kv t_cmd_end "$t1"
    kv rc "$rc"
    say "run $RUN_NO ($mode, iteration $iter): exit $rc, $(lm_ms_since "$t0") ms incl. ${SETTLE}s ping tail," \
        "largest gap $(sed -n 's/^max_gap_ms=//p' "$RUN_DIR/ping.summary") ms," \
        "lost $(sed -n 's/^lost_after_first_reply=//p' "$RUN_DIR/ping.summary")"
    [ "$rc" -eq 0 ] || say "see $RUN_DIR"

    case $fam in
        raw*) stop_raw ;;
        classic|bt) stop_lv "$DOM" ;;
        upgrade) stop_lv "$UPDOM" ;;
        copy|shared|cpr) stop_lv "$MEMDOM" ;;
    esac
}

machine() {
    {
        echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
            git -C "$top" diff --quiet HEAD -- 2>/dev/null || echo ' (with local changes)')"
        echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
        echo "cores=$(nproc)"
        echo "kernel=$(uname -sr)"
        echo "memory=$(awk '/^MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
        echo "accel=TCG (domain type qemu, -machine accel=tcg)"
        echo "qemu_reference=$("$QEMU_BIN" --version | head -n1)"
        echo "qemu_stock=$("$STOCK_QEMU" --version | head -n1)"
        echo "libvirt=$(lv_virsh "$ROOT" version 2>/dev/null | sed -n 's/^Using library: //p')"
        echo "guest=kernel $GUEST_KERNEL_VERSION, $GUEST_MEM_MIB MiB, 1 vCPU"
        echo "ping_interval=$INTERVAL"
        echo "max_downtime=$MAX_DOWNTIME"
        echo "runs=$RUNS"
        echo "modes=${MODES[*]}"
        echo "memory_modes=${MEMORY_MODES[*]}"
        echo "memory_sizes_mib=${SIZES[*]}"
        echo "memory_runs=$MEMORY_RUNS"
        echo "dirty_pct=$DIRTY_PCT"
        echo "debug_log=${BENCH_DEBUG_LOG:-1}"
    } >"$OUT/machine.env"
}

setup
machine
say "output in $OUT; $RUNS iteration(s) of: ${MODES[*]}; $MEMORY_RUNS of ${MEMORY_MODES[*]} at ${SIZES[*]} MiB; ping every $INTERVAL s"
T_START=$SECONDS
RUN_NO=0
n=${#MODES[@]}
for ((i = 1; n > 0 && i <= RUNS; i++)); do
    for ((j = 0; j < n; j++)); do
        measure "${MODES[$(((i - 1 + j) % n))]}" "$i"
    done
done
# the memory dimension: each size's runs together (one size in the tmpfs
# at a time), the modes rotated as above
n=${#MEMORY_MODES[@]}
for size in "${SIZES[@]}"; do
    for ((i = 1; n > 0 && i <= MEMORY_RUNS; i++)); do
        for ((j = 0; j < n; j++)); do
            measure "${MEMORY_MODES[$(((i - 1 + j) % n))]}@$size" "$i"
        done
    done
done
say "measured in $((SECONDS - T_START)) s"
"$PY" "$here/report.py" "$OUT"
echo "bench: raw samples, table.rst and gaps.png in $OUT"
