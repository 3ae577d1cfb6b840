# shellcheck shell=bash
# Host mode: the BUILT virtlogd and virtqemud run as daemons, the way a
# libvirt host runs them, inside the test's network namespace, and virsh
# reaches them through the remote driver (qemu:///system), as Nova does.
# Source after lib/common.sh and lib/libvirt.sh.
#
#   lh_start             start virtlogd, then virtqemud (sets LH_URI, LH_RUN,
#                        LH_LOG, LH_ETC, LH_LIB)
#   lh_virsh ARGS...     virsh on LH_URI (through the remote driver)
#   lh_exec CMD...       run CMD where the daemons run (their net and mount
#                        namespaces)
#   lh_qemu_pid NAME     the domain's QEMU pid (from the daemon's pidfile)
#   lh_host_path PATH    the host's path of a path the daemons see
#   lh_virtlogd_reexec   SIGUSR1: virtlogd re-executes itself, keeping its
#                        open streams
#   lh_virtlogd_restart  virtlogd stopped and started again
#   lh_virtqemud_kill    SIGKILL to virtqemud
#   lh_virtqemud_start   start virtqemud (again)
#   lh_lockd_enable      lock_manager = "lockd", with virtlockd
#   lh_stop              stop both (run by the cleanup)
#   lh_points_enable     virtqemud restarted with the test stop points'
#                        directory (LH_TEST_STOP_DIR)
#   lh_point_arm P | lh_point_reached P | lh_points_release
#                        arm test point P, wait until a job waits at it,
#                        let every job go on
#
# What is libvirt's default and what is not:
#   - qemu.conf, virtqemud.conf and virtlogd.conf are the files the build
#     ships, unchanged: QEMU runs as libvirt-qemu under the DAC driver with
#     dynamic_ownership and remember_owner, in a mount namespace of its own,
#     in the host's cgroup controllers, with its output going to virtlogd.
#   - The daemons' directories (/usr/local/etc/libvirt, /run/libvirt and
#     libvirt's dirs under /var/local) are private to the test: the daemons
#     run in a mount namespace where those paths are bind mounts of dirs in
#     LM_TMP, so nothing of the host's is touched and nothing is left. The
#     paths themselves are the built-in ones; no setting names a path.
#   - The host's cgroup hierarchies are mounted where the daemons run, as
#     on the host itself (ip netns exec's fresh /sys hides them).
#   - /dev/kvm is root:kvm 0660 with libvirt-qemu in group kvm, as Debian
#     hosts have it. This machine has it root:root 0600, so the mount
#     namespace gets a node with Debian's mode (the host's node is left
#     alone). Without it the daemon sees "KVM usable" change between its
#     probe and every capability lookup, and probes each binary again at
#     each lookup (seconds each). Guests still run TCG (<domain type='qemu'>).
#   - The daemons' own log goes to a file (LIBVIRT_LOG_OUTPUTS), for the
#     test's diagnostics; virtlogd and the domain logs are untouched.
#   - With LH_TEST_STOP_DIR set, virtqemud gets it as
#     LIBVIRT_LOCALMIG_TEST_STOP_DIR: a local migration then stops at the
#     test points armed there (qemu_migration_local.c), so that a fault
#     lands in the phase it names. Nothing else sets it.

# The paths a -Dsystem=false build uses (prefix /usr/local).
_LH_DIRS="/usr/local/etc/libvirt /run/libvirt /var/local/lib/libvirt
/var/local/log/libvirt /var/local/cache/libvirt"

# lh_exec CMD...: CMD in the daemons' network and mount namespaces.
lh_exec() {
    nsenter -t "$LH_HOLDER" -m -n -- "$@"
}

# _lh_daemon NAME ARGS...: start the built daemon NAME where they run; it
# daemonizes itself (-d) and writes its pid to /run/libvirt/NAME.pid.
_lh_daemon() {
    lh_exec env LD_LIBRARY_PATH="$LIBVIRT_BUILDDIR/src" LIBVIRT_DIR_OVERRIDE=1 \
        LIBVIRT_LOG_OUTPUTS="${LH_LOG_OUTPUTS:-3:file:/var/local/log/libvirt/$1.log}" \
        LIBVIRT_LOG_FILTERS="${LH_LOG_FILTERS:-}" \
        ${LH_TEST_STOP_DIR:+LIBVIRT_LOCALMIG_TEST_STOP_DIR="$LH_TEST_STOP_DIR"} \
        "$LIBVIRT_BUILDDIR/src/$1" -d -p "/run/libvirt/$1.pid" "${@:2}"
}

# the host's node with Debian's owner and mode, for the namespace only
_lh_kvm_node() {
    [ -c /dev/kvm ] || return 0
    getent group kvm >/dev/null || groupadd --system kvm
    id -nG libvirt-qemu | grep -qw kvm || usermod -aG kvm libvirt-qemu
    mknod -m 0660 "$LM_TMP/dev-kvm" c "$((0x$(stat -c '%t' /dev/kvm)))" \
        "$((0x$(stat -c '%T' /dev/kvm)))"
    chgrp kvm "$LM_TMP/dev-kvm"
}

# The host's cgroup hierarchies, mounted again where the daemons run:
# `ip netns exec` mounts a fresh /sys for the namespace, which hides them,
# and virtqemud then puts QEMU in no cgroup at all.
_lh_cgroup_mounts() {
    awk '$3 == "tmpfs" && $2 == "/sys/fs/cgroup" {
             printf "mount -t tmpfs -o mode=755 cgroup %s; ", $2 }
         ($3 == "cgroup" || $3 == "cgroup2") && $2 ~ "^/sys/fs/cgroup" {
             printf "mkdir -p %s; mount -t %s -o %s %s %s; ", $2, $3, $4, $3, $2 }' \
        /proc/mounts
}

# lh_start: the private dirs, the namespace holder, the shipped config
# files, then virtlogd and virtqemud as daemons.
lh_start() {
    local d src binds=""
    LH_ROOT=$LM_TMP/host
    for d in $_LH_DIRS; do
        src=$LH_ROOT$d
        mkdir -p "$src" "$d"
        binds+="mount --bind $src $d; "
    done
    _lh_kvm_node
    binds+=$(_lh_cgroup_mounts)
    [ ! -e "$LM_TMP/dev-kvm" ] || binds+="mount --bind $LM_TMP/dev-kvm /dev/kvm; "
    LH_ETC=$LH_ROOT/usr/local/etc/libvirt
    LH_RUN=$LH_ROOT/run/libvirt
    LH_LIB=$LH_ROOT/var/local/lib/libvirt
    LH_LOG=$LH_ROOT/var/local/log/libvirt
    # shipped config files, as a package installs them
    cp "$LIBVIRT_BUILDDIR/src/qemu/qemu.conf" "$LIBVIRT_BUILDDIR/src/virtqemud.conf" \
        "$LH_ETC/"
    cp "$LIBVIRT_BUILDDIR/../libvirt-src/src/logging/virtlogd.conf" "$LH_ETC/"

    # A process that keeps the mount namespace (private mounts) alive;
    # every daemon and lh_exec enters it.
    ip netns exec "$LM_NS" unshare --mount --propagation private \
        sh -c "$binds exec sleep infinity" &
    LH_HOLDER=$!
    lm_defer lh_stop
    lm_wait_until 10 sh -c "nsenter -t $LH_HOLDER -m test -e /usr/local/etc/libvirt/qemu.conf" ||
        tap_bail "the daemons' mount namespace did not come up"

    LH_URI="qemu:///system?socket=$LH_RUN/virtqemud-sock"
    _lh_virtlogd_start || tap_bail "virtlogd did not start"
    lh_virtqemud_start || tap_bail "virtqemud did not start"
}

_lh_virtlogd_start() {
    _lh_daemon virtlogd || return 1
    lm_wait_until 10 test -S "$LH_RUN/virtlogd-sock"
}

lh_virtqemud_start() {
    rm -f "$LH_RUN/virtqemud-sock"
    _lh_daemon virtqemud || return 1
    # the socket is there before the driver has started; a list waits
    lm_wait_until 60 test -S "$LH_RUN/virtqemud-sock" &&
        lm_wait_until 60 lh_virsh list || return 1
    # Each running domain reconnects in a thread of its own that holds a
    # job. A destroy meanwhile kills QEMU before it waits for that job, the
    # reconnection then stops the domain, and the destroy fails with
    # "domain is not running". A query job waits the reconnection out.
    local d
    for d in $(lh_virsh list --name); do
        lh_virsh dommemstat "$d" >/dev/null 2>&1 || :
    done
}

_lh_pid() { cat "$LH_RUN/$1.pid" 2>/dev/null; }

lh_virtqemud_kill() {
    local pid
    pid=$(_lh_pid virtqemud) || return 1
    kill -KILL "$pid" && lm_wait_until 10 lm_pid_gone "$pid"
    rm -f "$LH_RUN/virtqemud.pid"
}

# SIGUSR1 makes virtlogd exec itself with its state (open streams
# included) handed over; the pid stays the same.
lh_virtlogd_reexec() {
    local pid
    pid=$(_lh_pid virtlogd) || return 1
    kill -USR1 "$pid"
}

lh_virtlogd_restart() {
    local pid
    pid=$(_lh_pid virtlogd) || return 1
    kill -TERM "$pid" && lm_wait_until 10 lm_pid_gone "$pid" || return 1
    rm -f "$LH_RUN/virtlogd-sock" "$LH_RUN/virtlogd.pid"
    _lh_virtlogd_start
}

# lh_lockd_enable: the host configures lock_manager = "lockd" (not a
# default: hosts that share disks turn it on); virtqemud is restarted on
# it with virtlockd beside it.
lh_lockd_enable() {
    local pid
    pid=$(_lh_pid virtqemud) || return 1
    kill -TERM "$pid" && lm_wait_until 20 lm_pid_gone "$pid" || return 1
    echo 'lock_manager = "lockd"' >>"$LH_ETC/qemu.conf"
    _lh_daemon virtlockd || return 1
    lm_wait_until 10 test -S "$LH_RUN/virtlockd-sock" || return 1
    lh_virtqemud_start
}

lh_points_enable() {
    LH_TEST_STOP_DIR=$LM_TMP/stop
    mkdir -p "$LH_TEST_STOP_DIR"
    lh_virtqemud_kill && lh_virtqemud_start
}

lh_point_arm() { : >"$LH_TEST_STOP_DIR/$1"; }
lh_point_reached() { lm_wait_until 60 test -e "$LH_TEST_STOP_DIR/$1.reached"; }
lh_points_release() { rm -f "$LH_TEST_STOP_DIR"/*; }

lh_stop() {
    local d pid
    for d in virtqemud virtlockd virtlogd; do
        pid=$(_lh_pid "$d") || continue
        kill -TERM "$pid" 2>/dev/null && lm_wait_until 10 lm_pid_gone "$pid" ||
            kill -KILL "$pid" 2>/dev/null
    done
    [ -z "${LH_HOLDER:-}" ] || { kill "$LH_HOLDER" 2>/dev/null; wait "$LH_HOLDER" 2>/dev/null; } || :
}

# lh_virsh ARGS...: the client side stays on the host, as virsh and Nova
# do; only the socket path says which daemon.
lh_virsh() {
    LD_LIBRARY_PATH="$LIBVIRT_BUILDDIR/src" LIBVIRT_DIR_OVERRIDE=1 \
        "$LIBVIRT_BUILDDIR/tools/virsh" -q -c "$LH_URI" "$@"
}

# lh_host_path PATH: where PATH, as the daemons and QEMU see it, is on the
# host (their private dirs are bind mounts of dirs below LH_ROOT).
lh_host_path() {
    local d
    for d in $_LH_DIRS; do
        case "$1" in "$d"/*) echo "$LH_ROOT$1"; return 0 ;; esac
    done
    echo "$1"
}

lh_qemu_pid() {
    local f=$LH_RUN/qemu/$1.pid
    [ -s "$f" ] && cat "$f"
}
