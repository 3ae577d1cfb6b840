# shellcheck shell=bash
# Shared helpers for the e2e tests; source this file (tests run as root).
#
#   TAP:       tap_plan N | tap_ok DESC | tap_not_ok DESC | tap_result RC DESC
#              tap_check DESC CMD... | tap_expect DESC WANT GOT
#              tap_skip DESC WHY | tap_skip_all WHY
#              tap_diag MSG... | tap_bail WHY
#   cleanup:   lm_defer CMD ARGS...   (run LIFO on every exit path)
#   scratch:   lm_tmpdir              (sets LM_TMP; LM_KEEP=1 keeps it)
#   netns:     lm_netns_create        (sets LM_NS: bridge br0 198.18.0.1/24)
#              lm_bridge_create NAME ADDR/PREFIX (another bridge in LM_NS)
#   checks:    lm_leftovers [--ns NS] [--match STR]... [DIR]...
#   misc:      lm_now (epoch seconds, µs), lm_ms_since T0, lm_wait_until,
#              lm_pid_alive / lm_pid_gone PID, lm_nsexec CMD...
#
# Exit status of a test: 0 only if every test point passed and the plan was
# met; the summary line and the status are produced by the EXIT trap, so a
# test script simply ends (or dies) and the right thing happens.

LM_E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LM_LIB_DIR=$LM_E2E_DIR/lib
# shellcheck disable=SC2034  # used by the tests that source this file
LM_PINGSTAT=$LM_LIB_DIR/pingstat

# Fixed test addressing (see the project brief): nothing leaves the netns.
LM_BRIDGE=br0
LM_BRIDGE_IP=198.18.0.1
LM_PREFIX=24

# ---- TAP ---------------------------------------------------------------------
_tap_planned=
_tap_n=0
_tap_failed=0
_tap_skipped=0

tap_plan() { _tap_planned=$1; echo "1..$1"; }

tap_diag() {
    local line
    # One "# " per line, so multi-line command output stays valid TAP.
    printf '%s\n' "$@" | while IFS= read -r line; do echo "# $line"; done
}

tap_ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }

tap_not_ok() {
    _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1))
    echo "not ok $_tap_n - $*"
}

# tap_result RC DESC: ok when RC is 0.
tap_result() {
    local rc=$1; shift
    if [ "$rc" -eq 0 ]; then tap_ok "$@"; else tap_not_ok "$@"; fi
    return "$rc"
}

# tap_expect DESC WANT GOT: ok when GOT is WANT, else both as diagnostics.
tap_expect() {
    if [ "$3" = "$2" ]; then
        tap_ok "$1"
    else
        tap_not_ok "$1"
        tap_diag "want: $2" "got:  $3"
    fi
}

# tap_check DESC CMD...: run CMD (in a subshell, output captured); on
# failure its output goes to diag.  Returns CMD's status: under set -e write
# `tap_check ... || tap_bail WHY` (fatal) or `tap_check ... || :` (not).
tap_check() {
    local desc=$1 out rc=0; shift
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" -eq 0 ]; then
        tap_ok "$desc"
    else
        tap_not_ok "$desc"
        tap_diag "command failed (exit $rc): $*" "$out"
    fi
    return "$rc"
}

tap_skip() {
    _tap_n=$((_tap_n + 1)); _tap_skipped=$((_tap_skipped + 1))
    echo "ok $_tap_n - $1 # SKIP ${2:-}"
}

# Skip the whole test (only before any test point was printed).
tap_skip_all() {
    echo "1..0 # SKIP $*"
    _tap_planned=0
    exit 0
}

# Stop here: later test points depend on something that failed.  Remaining
# planned points are reported as failed by the exit trap.
tap_bail() {
    echo "Bail out! $*"
    exit 1
}

# ---- cleanup -----------------------------------------------------------------
_lm_cleanups=()
_lm_exiting=

# lm_defer CMD ARGS...: register a cleanup; they run last-in first-out.
lm_defer() {
    local q
    q=$(printf '%q ' "$@")
    _lm_cleanups+=("$q")
}

_lm_on_exit() {
    local rc=$? i
    [ -n "$_lm_exiting" ] && return
    _lm_exiting=1
    set +e
    trap '' INT TERM HUP   # a second Ctrl-C must not skip the cleanup
    for ((i = ${#_lm_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${_lm_cleanups[i]}" || tap_diag "cleanup failed: ${_lm_cleanups[i]}"
    done
    if [ "$_tap_planned" = 0 ] || { [ -z "$_tap_planned" ] && [ "$_tap_n" = 0 ]; }; then
        exit "$rc"      # skipped entirely, or not a TAP script (demo)
    fi
    local passed=$((_tap_n - _tap_failed - _tap_skipped))
    if [ -n "$_tap_planned" ] && [ "$_tap_n" -lt "$_tap_planned" ]; then
        tap_diag "planned $_tap_planned test points but ran $_tap_n"
        _tap_failed=$((_tap_failed + _tap_planned - _tap_n))
    fi
    if [ -z "$_tap_planned" ]; then
        echo "1..$_tap_n"   # no plan given up front: print it at the end
    fi
    [ "$rc" -ne 0 ] && tap_diag "aborted with exit status $rc"
    tap_diag "summary: $passed passed, $_tap_failed failed, $_tap_skipped skipped"
    if [ "$_tap_failed" -gt 0 ] || [ "$rc" -ne 0 ]; then exit 1; fi
    exit 0
}
trap _lm_on_exit EXIT
# Signals turn into a normal exit so the EXIT trap cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- small utilities ---------------------------------------------------------
lm_now() { echo "$EPOCHREALTIME"; }

# lm_ms_since T0: milliseconds elapsed since epoch time T0 (from lm_now).
lm_ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

# lm_wait_until TIMEOUT_S CMD...: poll CMD every 50 ms until it succeeds.
lm_wait_until() {
    local timeout=$1; shift
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# lm_pid_alive PID: true while PID runs (a zombie counts as gone, so that
# a slow reaper does not count). A SIGKILLed process's leader turns zombie
# before its other threads have exited, and until the last has, the
# process still holds its files and their locks (virtqemud's driver.pid):
# it is gone once the leader is a zombie alone.
lm_pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ] && return 0
    ls "/proc/$1/task" 2>/dev/null | grep -qvx "$1"
}
lm_pid_gone() { ! lm_pid_alive "$1"; }

# lm_tmpdir: private scratch dir in LM_TMP, removed at exit unless LM_KEEP=1.
# Kept short: QEMU's UNIX socket paths below it must fit in 108 bytes.
lm_tmpdir() {
    LM_TMP=$(mktemp -d "${LOCALMIG_TMPDIR:-/tmp}/lm-e2e.XXXXXX")
    if [ "${LM_KEEP:-0}" = 1 ]; then
        lm_defer tap_diag "kept scratch dir $LM_TMP"
    else
        lm_defer rm -rf "$LM_TMP"
    fi
}

# ---- network namespace -------------------------------------------------------
# lm_netns_create [TAG]: new namespace (name in LM_NS) with lo up and bridge
# br0 at 198.18.0.1/24; it is destroyed at exit with everything inside it.
lm_netns_create() {
    LM_NS="lm-${1:-e2e}-$$-$RANDOM"
    ip netns add "$LM_NS"
    lm_defer lm_netns_destroy "$LM_NS"
    ip -n "$LM_NS" link set lo up
    # No IPv6 on new links: keeps router solicitations and DAD out of the
    # way (and out of any capture) without touching the host.
    ip netns exec "$LM_NS" sh -c 'echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6' || true
    lm_bridge_create "$LM_BRIDGE" "$LM_BRIDGE_IP/$LM_PREFIX"
}

# lm_bridge_create NAME ADDR/PREFIX: a bridge in LM_NS with an address.
lm_bridge_create() {
    # STP off and no forward delay: a new TAP port forwards at once.
    ip -n "$LM_NS" link add "$1" type bridge stp_state 0 forward_delay 0
    ip -n "$LM_NS" addr add "$2" dev "$1"
    ip -n "$LM_NS" link set "$1" up
    # Short neighbour timers: an unanswered ARP is retried every 100 ms
    # instead of every second, so a blackout shows in the ping log with
    # about the ping interval's resolution rather than in whole seconds.
    ip netns exec "$LM_NS" sh -c '
        echo 100 >/proc/sys/net/ipv4/neigh/'"$1"'/base_reachable_time_ms
        echo 100 >/proc/sys/net/ipv4/neigh/'"$1"'/retrans_time_ms'
}

# lm_netns_destroy NS: stop every process left in NS, then delete it.
lm_netns_destroy() {
    local ns=$1 pids i
    [ -e "/run/netns/$ns" ] || return 0
    pids=$(ip netns pids "$ns")
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            pids=$(ip netns pids "$ns")
            [ -z "$pids" ] && break
            sleep 0.1
        done
        # shellcheck disable=SC2086
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null && sleep 0.2
    fi
    ip netns del "$ns"
}

# lm_nsexec CMD...: run CMD inside the test's namespace.
lm_nsexec() { ip netns exec "$LM_NS" "$@"; }

# lm_tap_info VIEW TAP...: what virt-tap-info --json says of the TAPs of
# the test's namespace, in one VIEW of lib/tapinfo.py (holders, queues,
# ident, summary); fails when a TAP is no device there.
lm_tap_info() {
    local view=$1
    shift
    lm_nsexec "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virt-tap-info" --json "$@" |
        python3 "$LM_LIB_DIR/tapinfo.py" "$view"
}

# ---- leftover check ----------------------------------------------------------
# lm_leftovers [--ns NS] [--match STR]... [DIR]...
# Prints one line per thing left behind and fails if there is any:
#   - processes inside NS, and TAP/TUN devices inside NS;
#   - processes anywhere whose command line contains a STR (e.g. the scratch
#     dir: QEMU started by libvirt names its sockets and logs below it);
#   - UNIX sockets below the DIRs.
lm_leftovers() {
    local ns="" matches=() found=0 p pid args arg m
    while [ $# -gt 0 ]; do
        case "$1" in
            --ns) ns=$2; shift 2 ;;
            --match) matches+=("$2"); shift 2 ;;
            *) break ;;
        esac
    done
    if [ -n "$ns" ] && [ -e "/run/netns/$ns" ]; then
        for pid in $(ip netns pids "$ns"); do
            echo "process left in netns $ns: $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
            found=1
        done
        while read -r p; do
            [ -n "$p" ] || continue
            echo "tun/tap device left in netns $ns: $p"
            found=1
        done < <(ip -n "$ns" -o link show type tun | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }')
    fi
    if [ ${#matches[@]} -gt 0 ]; then
        for p in /proc/[0-9]*; do
            pid=${p#/proc/}
            [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
            # mapfile is a builtin: scanning forks nothing that could match.
            mapfile -d '' args 2>/dev/null <"$p/cmdline" || continue
            for m in "${matches[@]}"; do
                for arg in "${args[@]}"; do
                    if [[ "$arg" == *"$m"* ]]; then
                        echo "process left: $pid ${args[*]}"
                        found=1
                        continue 3
                    fi
                done
            done
        done
    fi
    for p in "$@"; do
        [ -d "$p" ] || continue
        while read -r m; do
            echo "socket left: $m"
            found=1
        done < <(find "$p" -type s)
    done
    return "$found"
}
