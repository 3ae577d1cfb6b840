# shellcheck shell=bash
# Helpers to run the BUILT (uninstalled) libvirt's embedded QEMU driver
# inside the test's network namespace.  Source after lib/common.sh.
#
#   lv_have_build / lv_wait_build TIMEOUT_S
#   lv_ensure_qemu_user          the driver needs user libvirt-qemu to exist
#   lv_embed_root DIR            create an embed root with our qemu.conf
#                                (and the shared capabilities cache)
#   lv_virsh ROOT CMD...         one embed virsh process (in LM_NS)
#   lv_domain_xml NAME SERIAL    domain XML for the test guest on stdout
#   lv_qemu_pid ROOT NAME        pid of the domain's QEMU (from libvirt)
#   lv_domain_tap ROOT NAME      the domain's TAP device name (domiflist)
#   lv_destroy ROOT NAME         destroy, after the reconnect job is done
#
# Why embedded: `qemu:///embed?root=DIR` runs the whole QEMU driver inside
# the virsh process, so no daemon has to be installed or managed, and the
# driver, its TAPs and QEMU all live in the namespace virsh is started in.
# QEMU keeps running when virsh exits; the next embed virsh on the same root
# reconnects to it.

LIBVIRT_BUILDDIR=${LIBVIRT_BUILDDIR:-$(cd "$LM_E2E_DIR/../.." && pwd)/_build/libvirt}
QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}

# The QEMU driver module is linked late (and removed while relinking), so
# virsh alone does not mean the build is usable.
lv_have_build() {
    [ -x "$LIBVIRT_BUILDDIR/tools/virsh" ] && [ -x "$LIBVIRT_BUILDDIR/run" ] &&
        [ -f "$LIBVIRT_BUILDDIR/src/libvirt_driver_qemu.so" ]
}

# lv_wait_build TIMEOUT_S: wait for a build that is still in progress.
lv_wait_build() {
    local deadline=$((SECONDS + $1))
    until lv_have_build; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 10
    done
}

# Running as root, the driver resolves its compiled-in default user
# (libvirt-qemu on Debian) before reading qemu.conf, and fails if it does
# not exist.  `make install`-like steps create it; do the same if missing.
lv_ensure_qemu_user() {
    getent passwd libvirt-qemu >/dev/null && return 0
    if getent group libvirt-qemu >/dev/null; then
        useradd --system --gid libvirt-qemu --no-create-home \
            --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
    else
        useradd --system --user-group --no-create-home \
            --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
    fi
}

# lv_reference_qemu: the reference QEMU's qemu.env (QEMU_BIN, QEMU_BIN_V10,
# QEMU_BIN_LOCAL, QEMU_FIRMWARE_DIR) sourced, or the test skipped
lv_reference_qemu() {
    local env=${LOCALMIG_BUILD_ROOT:-$LM_E2E_DIR/../../_build}/qemu/qemu.env
    [ -f "$env" ] || tap_skip_all "no reference QEMU: run qemu/build.sh (./localmig build)"
    # shellcheck disable=SC1090
    . "$env"
}

# lv_embed_root DIR: a fresh embed root.  The settings keep the driver from
# needing anything the test host does not give it: QEMU runs as root with
# no security driver, no cgroups, no mount namespace, and its stdout/stderr
# go to a plain file instead of virtlogd.
lv_embed_root() {
    local root=$1
    mkdir -p "$root/etc" "$root/cache/qemu/capabilities"
    _lv_caps_restore "$root"
    cat >"$root/etc/qemu.conf" <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
}

# Probing a QEMU binary's capabilities costs about 2 s per binary under TCG
# (the driver also probes qemu-system-i386), and a fresh root would pay it
# in every test.  Roots share the results through a cache dir instead.
# libvirt validates each cached file (binary and libvirt ctimes, host) and
# re-probes if stale, so sharing never hides a changed binary.
# LV_SHARE_CAPS=0 disables this.
LV_CAPS_CACHE=${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/libvirt-qemu-caps

_lv_caps_restore() {
    local root=$1
    [ "${LV_SHARE_CAPS:-1}" = 1 ] || return 0
    if [ -d "$LV_CAPS_CACHE" ]; then
        cp -p "$LV_CAPS_CACHE"/*.xml "$root/cache/qemu/capabilities/" 2>/dev/null || :
    fi
    lm_defer _lv_caps_save "$root"
}

_lv_caps_save() {
    local f tmp
    mkdir -p "$LV_CAPS_CACHE"
    for f in "$1"/cache/qemu/capabilities/*.xml; do
        [ -f "$f" ] || continue
        cmp -s "$f" "$LV_CAPS_CACHE/${f##*/}" && continue
        # copy + rename: concurrent tests never see half a file
        tmp=$(mktemp "$LV_CAPS_CACHE/.tmp.XXXXXX")
        cp -p "$f" "$tmp" && mv -f "$tmp" "$LV_CAPS_CACHE/${f##*/}"
    done
}

# lv_virsh ROOT CMD...: run one virsh with the embedded driver on ROOT,
# inside LM_NS.  Several commands run in one process when given as ONE
# string argument, 'cmd1 ARGS; cmd2 ARGS' (virsh splits a lone argument on
# ';'; separate arguments form a single command).  Only one embed process may use a root at a time (the
# driver takes a pid file), so calls are serialised on a lock in ROOT.
lv_virsh() {
    local root=$1; shift
    # The driver's own log (warnings up) goes to a file in the root instead
    # of cluttering stderr; virsh still prints errors.  LV_LOG_OUTPUTS and
    # LV_LOG_FILTERS replace that for one call (e.g. to record QMP).
    LIBVIRT_LOG_OUTPUTS=${LV_LOG_OUTPUTS:-"3:file:$root/libvirt.log"} \
        LIBVIRT_LOG_FILTERS=${LV_LOG_FILTERS:-} \
        flock "$root/.virsh.lock" \
        ip netns exec "$LM_NS" "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virsh" \
        -q -c "qemu:///embed?root=$root" "$@"
}

_lv_xml_escape() {
    local s=$1
    s=${s//&/&amp;}; s=${s//</&lt;}; s=${s//>/&gt;}
    s=${s//\'/&apos;}; s=${s//\"/&quot;}
    printf '%s' "$s"
}

# lv_domain_xml NAME SERIAL_LOG: XML of the test guest (needs guest.env
# sourced).  Optional env: LV_MAC (default 52:54:00:4c:4d:02), LV_TAP to
# choose the TAP name (not vnet*: reserved by libvirt), LV_NET_XML for
# more elements of the <interface> (e.g. <backend transfer='on'/>),
# LV_DEVICES_XML for more devices, QEMU for the emulator binary.
# lv_domain_head NAME CMDLINE: the start of the test guests' XML, up to
# and with the opening of <devices> and the <emulator> ($QEMU).  pc machine
# + ELF kernel: QEMU boots it through the PVH entry, the fast path under
# TCG.  No USB: nothing the guest does not use.
lv_domain_head() {
    local name kernel initrd cmdline emulator
    name=$(_lv_xml_escape "$1")
    cmdline=$(_lv_xml_escape "$2")
    kernel=$(_lv_xml_escape "$GUEST_KERNEL")
    initrd=$(_lv_xml_escape "$GUEST_INITRD")
    emulator=$(_lv_xml_escape "$QEMU")
    cat <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>$GUEST_MEM_MIB</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$kernel</kernel>
    <initrd>$initrd</initrd>
    <cmdline>$cmdline</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$emulator</emulator>
    <controller type='usb' model='none'/>
EOF
}

lv_domain_xml() {
    local serial target=
    serial=$(_lv_xml_escape "$2")
    [ -n "${LV_TAP:-}" ] && target="
      <target dev='$(_lv_xml_escape "$LV_TAP")'/>"
    # No balloon, no NIC option ROM: nothing to slow the boot or the
    # migration.
    lv_domain_head "$1" "$GUEST_CMDLINE"
    cat <<EOF
    <interface type='bridge'>
      <source bridge='$LM_BRIDGE'/>
      <mac address='${LV_MAC:-52:54:00:4c:4d:02}'/>
      <model type='virtio'/>
      <rom enabled='no'/>$target${LV_NET_XML:-}
    </interface>
${LV_DEVICES_XML:-}
    <serial type='file'>
      <source path='$serial'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# lv_qemu_pid ROOT NAME: QEMU's pid, from the pid file the driver keeps in
# its state dir (ROOT/run/qemu) while the domain runs.
lv_qemu_pid() {
    local pidfile="$1/run/qemu/$2.pid"
    [ -s "$pidfile" ] && cat "$pidfile"
}

# lv_domain_tap ROOT NAME: the TAP libvirt created for the domain's NIC.
lv_domain_tap() {
    lv_virsh "$1" domiflist "$2" |
        awk '$2 == "bridge" && !p { print $1; p = 1 }'
}

# lv_destroy ROOT NAME: a new embed process first reconnects to running
# domains in the background while holding their job; `destroy` kills QEMU
# before taking the job, so issued at once it races the reconnect and may
# report "domain is not running".  domstats takes the job, i.e. waits for
# the reconnect to finish, in the same process.
lv_destroy() {
    local out rc=0
    out=$(lv_virsh "$1" "domstats $2; destroy $2" 2>&1) || rc=$?
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" >&2
    return "$rc"
}

# lv_guest_test PLAN NAME: the common start of a test with the guest.
# Skips unless root with a libvirt build, prints the TAP plan, makes the
# guest image (the first test point) and sources its guest.env, then sets
# up LM_TMP, an embedded driver root, the namespace and the domain XML
# ($LM_TMP/$dom.xml).  Sets root, dom (lm-NAME-PID) and serial.
lv_guest_test() {
    local plan=$1 name=$2

    [ "$(id -u)" = 0 ] || tap_skip_all "must run as root"
    lv_wait_build "${LIBVIRT_WAIT:-0}" ||
        tap_skip_all "no libvirt build at $LIBVIRT_BUILDDIR (set LIBVIRT_WAIT to wait)"

    tap_plan "$plan"

    tap_check "guest image built" "$LM_E2E_DIR/guest/build-guest.sh" ||
        tap_bail "no guest image"
    . "${LOCALMIG_CACHE:-/var/cache/libvirt-localmig}/guest/guest.env"

    lm_tmpdir
    root=$LM_TMP/root
    dom=lm-$name-$$
    serial=$LM_TMP/serial.log
    lv_ensure_qemu_user
    lv_embed_root "$root"
    lm_netns_create "$name"
    lv_domain_xml "$dom" "$serial" >"$LM_TMP/$dom.xml"
}

# lv_shared_memory SOURCE: the domain XML on stdin, its memory shared and
# backed by SOURCE (file, memfd): a <memoryBacking> right after <memory>
lv_shared_memory() {
    SRC=$1 awk '{ print } /^  <memory unit=/ {
        print "  <memoryBacking>\n    <source type=\x27" ENVIRON["SRC"] "\x27/>"
        print "    <access mode=\x27shared\x27/>\n  </memoryBacking>" }'
}

# lv_memfd_of PID: "inode" of the guest RAM memfd QEMU PID maps shared
lv_memfd_of() {
    awk '$2 ~ /^...s/ && $6 ~ /^\/memfd:memory-backend-memfd/ { print $5; exit }' "/proc/$1/maps" 2>/dev/null || :
}

# lv_ramfile_of PID: the inode of each guest RAM file QEMU PID maps
# shared, a line each (one for a guest on one file); by inode because QEMU
# may see the file under another path in its mount namespace
lv_ramfile_of() {
    awk '$2 ~ /^...s/ && $6 ~ /\/pc\.ram$/ { print $5 }' "/proc/$1/maps" 2>/dev/null | sort -u
}

# lv_mib BYTES: in MiB, two decimals
lv_mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }

# --- the guest under test (globals: root, dom, LM_TMP, GUEST_IP) ---------

show_logs() {
    tap_diag "libvirt log:" "$(grep -v ' info : \| warning : ' "$root/libvirt.log" 2>/dev/null | tail -n 10)"
    tap_diag "libvirt QEMU log:" "$(tail -n 10 "$root/log/qemu/$dom.log" 2>/dev/null)"
}

# QEMU processes of the domain (there must be exactly one between steps)
qemu_pids() {
    local p
    for p in $(pgrep -f -- "-name guest=$dom," || :); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = qemu-system-x86 ] && echo "$p"
    done | sort
}

# a QEMU of the domain other than $old
new_qemu() { qemu_pids | grep -vx "$old" | head -n1 || :; }
has_new_qemu() { [ -n "$(new_qemu)" ]; }

one_qemu() {
    local pids
    pids=$(qemu_pids)
    [ "$(wc -w <<<"$pids")" -eq 1 ] && [ "$pids" = "$(lv_qemu_pid "$root" "$dom")" ]
}

# ping the guest every 10 ms for the duration of "$@"; the figures of
# pingstat go to $LM_TMP/last.stats (read them with stat_of).  Losses are
# lost_after_first_reply; an unanswered_tail of 1 is the ping still in
# flight when pingstat stopped, not a loss.
pinged() {
    local log=$LM_TMP/ping.$RANDOM rc=0
    lm_nsexec "$LM_PINGSTAT" start "$log" "$GUEST_IP" 0.01 >/dev/null
    "$LM_PINGSTAT" wait "$log" 30 >/dev/null || :
    "$@" || rc=$?
    sleep 1
    "$LM_PINGSTAT" stop "$log" >"$LM_TMP/last.stats"
    return $rc
}

stat_of() { sed -n "s/^$1=//p" "$LM_TMP/last.stats"; }

answers() {
    pinged sleep 1 && [ "$(stat_of received)" -gt 50 ] &&
        [ "$(stat_of lost_after_first_reply)" -le 2 ]
}

# migrate_pinged LABEL ARGS...: `virsh migrate ARGS` while the guest is
# pinged (figures in last.stats); two test points: the command succeeded,
# and the domain runs on a new QEMU (pid0 -> pid1) while the old one is gone.
migrate_pinged() {
    local label=$1 t0
    shift
    pid0=$(lv_qemu_pid "$root" "$dom")
    t0=$(lm_now)
    if pinged lv_virsh "$root" migrate "$@" >"$LM_TMP/migrate.out" 2>&1; then
        tap_ok "$label ($(lm_ms_since "$t0") ms incl. ping tail)"
    else
        tap_not_ok "$label"
        tap_diag "$(cat "$LM_TMP/migrate.out")"
        show_logs
    fi
    pid1=$(lv_qemu_pid "$root" "$dom" || :)
    if [ -n "$pid1" ] && [ "$pid1" != "$pid0" ] && lm_pid_alive "$pid1" &&
       lm_wait_until 10 lm_pid_gone "$pid0"; then
        tap_ok "$label: QEMU pid $pid0 -> $pid1, the old process is gone"
    else
        tap_not_ok "$label: QEMU pid changed ($pid0 -> '$pid1')"
    fi
}

# lv_guest_end [HOOK]: the last two test points of a guest test: the
# domain is destroyed and undefined, and nothing of it is left behind.
# HOOK (a command) runs in between, e.g. to check and stop what the test
# started beside the guest.
lv_guest_end() {
    local pid
    pid=$(lv_qemu_pid "$root" "$dom" || :)
    tap_check "destroy and undefine" lv_virsh "$root" "domstats $dom; destroy $dom; undefine $dom" || :
    [ -z "$pid" ] || lm_wait_until 10 lm_pid_gone "$pid" || :
    [ $# -eq 0 ] || "$@"
    tap_check "nothing left behind (processes, sockets, TAPs, dirs)" \
        lm_leftovers --ns "$LM_NS" --match "$root" "$LM_TMP" || :
}

# --- faults in the middle of a local migration ---------------------------
# Each fault_* OPTION runs `virsh migrate --live OPTION` (--local or
# --local-backend-transfer) slowed down to SLOW_BANDWIDTH MiB/s so that the
# fault lands while the state streams, checks that the migration failed
# (one TAP point), then calls the test's after_fault NAME, which checks what
# is left.  They set old (the domain's QEMU before) and new (the one started
# for the migration).

# start_slow OPTION: the slowed-down migration in the background; waits for
# the new QEMU.
start_slow() {
    old=$(lv_qemu_pid "$root" "$dom")
    LIBVIRT_LOG_OUTPUTS="3:file:$root/libvirt.log" \
        ip netns exec "$LM_NS" "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virsh" \
        -q -c "qemu:///embed?root=$root" \
        migrate --live "$1" --bandwidth "${SLOW_BANDWIDTH:-2}" "$dom" \
        >"$LM_TMP/slow.out" 2>&1 &
    virsh_pid=$!
    new=
    lm_wait_until 30 has_new_qemu && new=$(new_qemu)
    sleep 2   # into the MIGRATE phase
}

# domjobabort: with the embedded driver no second virsh can reach the
# domain while migrate runs, so this uses virsh's own abort: on a terminal,
# Ctrl-C during migrate calls virDomainAbortJob.
fault_abort() {
    old=$(lv_qemu_pid "$root" "$dom")
    rm -f "$LM_TMP/tty.in"
    mkfifo "$LM_TMP/tty.in"
    LIBVIRT_LOG_OUTPUTS="3:file:$root/libvirt.log" \
        script -qfec "ip netns exec $LM_NS $LIBVIRT_BUILDDIR/run $LIBVIRT_BUILDDIR/tools/virsh -q -c 'qemu:///embed?root=$root' migrate --live $1 --bandwidth ${SLOW_BANDWIDTH:-2} $dom" \
        /dev/null <"$LM_TMP/tty.in" >"$LM_TMP/slow.out" 2>&1 &
    virsh_pid=$!
    exec 9>"$LM_TMP/tty.in"
    new=
    lm_wait_until 30 has_new_qemu && new=$(new_qemu)
    sleep 2
    printf '\003' >&9
    if [ -n "$new" ] && ! wait "$virsh_pid" && grep -qi "cancel\|abort" "$LM_TMP/slow.out"; then
        tap_ok "$1: domjobabort (Ctrl-C in virsh migrate) ends the migration: $(tr -d '\r' <"$LM_TMP/slow.out" | tr '\n' ' ')"
    else
        tap_not_ok "$1: domjobabort (Ctrl-C in virsh migrate) ends the migration"
        tap_diag "$(cat "$LM_TMP/slow.out")"
    fi
    exec 9>&-
    after_fault "domjobabort"
}

# the new QEMU killed mid-migration
fault_kill_new() {
    start_slow "$1"
    if [ -n "$new" ]; then
        kill -9 "$new"
        if ! wait "$virsh_pid"; then
            tap_ok "$1: killing the new QEMU $new fails the migration: $(tr '\n' ' ' <"$LM_TMP/slow.out")"
        else
            tap_not_ok "$1: killing the new QEMU fails the migration"
        fi
    else
        wait "$virsh_pid" || :
        tap_not_ok "$1: kill new QEMU: it did not appear"
    fi
    after_fault "new QEMU killed"
}

# the daemon (for the embedded driver: virsh) killed mid-migration; the
# next virsh recovers: the new QEMU is discarded, the old one resumed
fault_kill_daemon() {
    start_slow "$1"
    if [ -n "$new" ]; then
        pkill -9 -P "$virsh_pid" 2>/dev/null || :
        kill -9 "$virsh_pid" 2>/dev/null || :
        wait "$virsh_pid" 2>/dev/null || :
        pkill -9 -f -- "-c qemu:///embed?root=$root migrate" || :
        # the next virsh reconnects (domstats waits for that) and recovers
        lv_virsh "$root" "domstats $dom" >/dev/null 2>&1 || :
        if lm_pid_gone "$virsh_pid" && lm_wait_until 10 lm_pid_gone "$new"; then
            tap_ok "$1: daemon (virsh) killed mid-migration; the next one discarded the new QEMU $new"
        else
            tap_not_ok "$1: the daemon restarted after its death discards the new QEMU $new"
        fi
    else
        wait "$virsh_pid" || :
        tap_not_ok "$1: kill daemon: the new QEMU did not appear"
    fi
    after_fault "daemon killed"
}
