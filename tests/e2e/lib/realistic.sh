# shellcheck shell=bash
# The realistic guest: the devices users' VMs have, and checks that each
# still works after a migration.  Source after lib/common.sh and
# lib/libvirt.sh, with guest.env sourced (lv_guest_test does that).
#
#   rg_domain_xml NAME LOGFILE DISK   domain XML on stdout
#   rg_bridge2_create                 br1 198.18.1.1/24 in LM_NS (net1)
#   rg_disk_make DIR                  DIR/base.qcow2 + DIR/disk.qcow2 overlay;
#                                     prints the overlay's path
#   rg_disk_verify IMAGE LOG          every acked write is in IMAGE (guest-disk)
#   rg_disk_last_ack LOG              the newest LOCALMIG-DISK-ACK n in LOG (0)
#   rg_console_sees_output DOM [S]    `virsh console DOM` shows LOCALMIG-TICK
#                                     within S s (default 10)
#   rg_vnc_answers DOM                the VNC server greets with RFB (from LM_NS)
#   rg_agent_socket DOM               the guest-agent channel's socket exists
#   rg_pty_of DOM                     the pty of the guest's serial 0
#   rg_guest_poweroff PTY             the guest powers itself off (ACPI), as
#                                     asked on PTY (rg_pty_of, read before:
#                                     virsh may wait for a job's locks)
#   rg_devices_snapshot [--no-tap] DOM  domblklist + domiflist, to compare
#   rg_qemu_user PID                  the user a QEMU process runs as
#   rg_pinged_both CMD...             CMD while both addresses are pinged
#   rg_answers_both                   both addresses answer pings
#   rg_stat2_of KEY                   a figure of the second address's ping
#
# Every virsh call goes through rg_virsh ARGS... (a single embed virsh on
# $root by default, see lv_virsh); a test talking to a daemon redefines it
# after sourcing this file, and rg_host_path PATH too when the daemon's
# paths are not the host's.  The helpers print what they found on stdout
# (for a TAP description) and explain a failure on stderr.
#
# The guest (tests/e2e/guest/build-guest.sh): eth0 198.18.0.2/24 on br0,
# eth1 198.18.1.2/24 on br1, the kernel console (and the disk writer's acks)
# on the file serial ttyS1, a tick every 0.5 s on the pty serial ttyS0.

RG_BRIDGE2=${RG_BRIDGE2:-br1}
RG_BRIDGE2_IP=198.18.1.1
RG_GUEST_DISK=$LM_LIB_DIR/guest-disk
# ttyS0 is the pty users attach to; the kernel console is the file on ttyS1
RG_CMDLINE=${RG_CMDLINE:-console=ttyS1 localmig.tick=ttyS0 quiet panic=-1}

rg_virsh() { lv_virsh "$root" "$@"; }
# rg_host_path PATH: where a path QEMU uses is on the host (the same, unless
# the daemon has private mounts; see lh_host_path)
rg_host_path() { echo "$1"; }

# rg_domain_xml NAME LOGFILE DISK: XML of the realistic guest.  As
# lv_domain_xml (pc machine, PVH ELF kernel, on_* destroy, emulator $QEMU)
# plus a qcow2 disk (virtio-blk vda), a pty serial 0 with the console on
# it, a file serial 1 (LOGFILE, append='on': the next QEMU of the domain
# must not truncate it) with the kernel console, a guest-agent channel,
# VNC on 127.0.0.1, virtio-rng, a balloon and two virtio NICs.
# Optional env: RG_MAC0/RG_MAC1, RG_TAP0/RG_TAP1 (TAP names), RG_NET0_XML/
# RG_NET1_XML (more elements in each <interface>, e.g. <backend
# transfer='on'/>), RG_DEVICES_XML (more devices), RG_CMDLINE, RG_BRIDGE2.
rg_domain_xml() {
    local log disk t0='' t1=''
    log=$(_lv_xml_escape "$2")
    disk=$(_lv_xml_escape "$3")
    [ -n "${RG_TAP0:-}" ] && t0="
      <target dev='$(_lv_xml_escape "$RG_TAP0")'/>"
    [ -n "${RG_TAP1:-}" ] && t1="
      <target dev='$(_lv_xml_escape "$RG_TAP1")'/>"
    lv_domain_head "$1" "$RG_CMDLINE"
    cat <<EOF
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <source bridge='$LM_BRIDGE'/>
      <mac address='${RG_MAC0:-52:54:00:4c:4d:02}'/>
      <model type='virtio'/>
      <rom enabled='no'/>$t0${RG_NET0_XML:-}
    </interface>
    <interface type='bridge'>
      <source bridge='$(_lv_xml_escape "$RG_BRIDGE2")'/>
      <mac address='${RG_MAC1:-52:54:00:4c:4d:12}'/>
      <model type='virtio'/>
      <rom enabled='no'/>$t1${RG_NET1_XML:-}
    </interface>
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <serial type='file'>
      <source path='$log' append='on'/>
      <target port='1'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <video>
      <model type='vga'/>
    </video>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
${RG_DEVICES_XML:-}
    <memballoon model='virtio'/>
  </devices>
</domain>
EOF
}

# rg_bridge2_create: the second bridge (net1) in LM_NS, set up as
# lm_netns_create sets up br0; it goes with the namespace.
rg_bridge2_create() { lm_bridge_create "$RG_BRIDGE2" "$RG_BRIDGE2_IP/24"; }

# ---- the guest's own shutdown -----------------------------------------------
rg_pty_of() {
    rg_virsh dumpxml "$1" | sed -n "s|.*<source path='\(/dev/pts/[0-9]*\)'.*|\1|p" | head -n1
}

# QEMU reads a pty only while it sees a client on it, and looks once a
# second: the command is typed with the pty held open around it.
rg_guest_poweroff() {
    { sleep 1.5; printf '%s\n' "$GUEST_POWEROFF_COMMAND"; sleep 1.5; } >"$1"
}

# ---- the disk ----------------------------------------------------------------
rg_disk_make() { "$RG_GUEST_DISK" make "$1" "${GUEST_DISK_MIB:-64}"; }

rg_disk_verify() { "$RG_GUEST_DISK" verify "$@"; }

rg_disk_last_ack() {
    # complete lines only (tr: the serial's \r\n)
    tr -d '\r' <"$1" 2>/dev/null |
        awk -v m="${GUEST_DISK_ACK_MARKER:-LOCALMIG-DISK-ACK}" \
            '$1 == m && $2 ~ /^[0-9]+$/ && $2 > n { n = $2 + 0 } END { print n + 0 }'
}

# ---- the console -------------------------------------------------------------
# _rg_ptycap OUT MARKER COUNT TIMEOUT_S: a new pty; the slave's path goes
# to OUT.tty, what is written to the slave goes to OUT.  Once COUNT lines
# "MARKER n" were seen (or after TIMEOUT_S) it types Ctrl-] (virsh
# console's escape), then reads
# on until every slave fd is closed (at most 10 s more) and exits; closing
# the master leaves a reader of the slave with EOF.  The n seen go to
# OUT.ticks.
_rg_ptycap() {
    /usr/bin/python3 - "$@" <<'EOF'
import errno, os, re, select, sys, time
out, marker = sys.argv[1], sys.argv[2].encode()
count, timeout = int(sys.argv[3]), float(sys.argv[4])
# complete lines only: a session may begin or end in the middle of one
# (what the last reader left in the pty comes first)
line_re = re.compile(re.escape(marker) + rb" (\d+)\r?\n")
master, slave = os.openpty()
with open(out + ".tmp", "w") as f:
    f.write(os.ttyname(slave))
os.rename(out + ".tmp", out + ".tty")
os.close(slave)
data = b""
opened = False
t0 = time.time()
escaped_at = None
with open(out, "wb") as log:
    while True:
        now = time.time()
        if escaped_at is None and (len(line_re.findall(data)) >= count or
                                   now - t0 > timeout):
            os.write(master, b"\x1d")
            escaped_at = now
        if escaped_at is not None and now - escaped_at > 10:
            break
        r, _, _ = select.select([master], [], [], 0.1)
        if not r:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            chunk = b""
        if not chunk:
            # EIO: no slave open (not yet, or no longer)
            if opened or escaped_at is not None:
                break
            time.sleep(0.05)
            continue
        opened = True
        data += chunk
        log.write(chunk)
        log.flush()
ticks = [int(n) for n in line_re.findall(data)]
with open(out + ".ticks", "w") as f:
    f.write(" ".join(map(str, ticks)))
EOF
}

# rg_console_sees_output DOM [TIMEOUT_S]: attach `virsh console DOM` (the
# pty of serial 0, where the guest ticks) on a pty of our own until it
# printed two ticks, at most TIMEOUT_S (default 10) s; two ticks, the
# second newer than the first: the guest runs and its output gets through
# now (not a line left in a buffer).  Prints the ticks seen, e.g. "ticks
# 12..13 (2)", and anything else virsh printed.  virsh exits on its escape
# character, or at the latest when the pty goes away.
rg_console_sees_output() {
    local dom=$1 timeout=${2:-10} out pcap vpid tty i ticks other
    local marker=${GUEST_TICK_MARKER:-LOCALMIG-TICK}
    out=$LM_TMP/console.$RANDOM
    _rg_ptycap "$out" "$marker" 2 "$timeout" &
    pcap=$!
    for ((i = 0; i < 100; i++)); do
        [ -e "$out.tty" ] && break
        sleep 0.05
    done
    tty=$(cat "$out.tty" 2>/dev/null) || {
        echo "no pty" >&2; kill "$pcap" 2>/dev/null; wait "$pcap"; return 1
    }
    # shellcheck disable=SC2094  # a terminal: read and written by design
    rg_virsh console "$dom" <"$tty" >"$tty" 2>&1 &
    vpid=$!
    wait "$pcap" || :
    # the pty is gone: virsh has seen its escape or EOF by now
    for ((i = 0; i < 100; i++)); do
        _rg_running "$vpid" || break
        sleep 0.1
    done
    if _rg_running "$vpid"; then
        echo "virsh console did not exit; killing it" >&2
        _rg_kill_tree "$vpid"
    fi
    wait "$vpid" 2>/dev/null || :
    # the ticks: two at least, each newer than the one before
    ticks=$(awk '{ for (i = 2; i <= NF; i++) if ($i <= $(i - 1)) next
                   if (NF >= 2) printf "ticks %d..%d (%d)", $1, $NF, NF }' \
            "$out.ticks" 2>/dev/null || :)
    # Left out: virsh's "One or more references were leaked after
    # disconnect" when it quits on the escape: the stream's event callback
    # is freed by the event loop after virsh already closed the connection
    # (seen in about a third of the sessions, before any migration as well).
    other=$(tr -d '\r' <"$out" | grep -v -e "$marker" -e '^[0-9]*$' \
            -e '^error: One or more references were leaked after disconnect' || :)
    if [ -n "$ticks" ]; then
        echo "$ticks${other:+; virsh also printed: $other}"
        return 0
    fi
    echo "not two $marker lines on the console within ${timeout}s; it printed:" >&2
    tr -d '\r' <"$out" | tail -n 5 >&2
    return 1
}

_rg_running() { kill -0 "$1" 2>/dev/null; }

# _rg_kill_tree PID: PID and its descendants (children first listed last)
_rg_kill_tree() {
    local c
    for c in $(pgrep -P "$1" || :); do _rg_kill_tree "$c"; done
    kill -KILL "$1" 2>/dev/null || :
}

# ---- VNC, agent, devices -----------------------------------------------------
# rg_vnc_answers DOM: the domain's VNC display (virsh domdisplay) answers
# with the 12-byte RFB greeting.  QEMU listens on 127.0.0.1 of the network
# namespace it was started in: the connection is made from inside
# ${RG_VNC_NETNS-$LM_NS} (RG_VNC_NETNS= for the host's namespace).  Prints
# "HOST:PORT greeting".
rg_vnc_answers() {
    local uri hostport host port greeting ns=${RG_VNC_NETNS-$LM_NS} run=()
    uri=$(rg_virsh domdisplay --type vnc "$1") || return 1
    hostport=${uri#vnc://}
    hostport=${hostport%%/*}
    host=${hostport%:*}
    port=$((5900 + ${hostport##*:}))
    [ -z "$ns" ] || run=(ip netns exec "$ns")
    # shellcheck disable=SC2016  # $1 and $2 are the inner bash's
    greeting=$("${run[@]}" timeout 5 bash -c \
        'exec 3<>"/dev/tcp/$1/$2" && head -c 12 <&3' _ "$host" "$port" | tr -d '\n') || :
    if [[ "$greeting" == "RFB 003."* ]]; then
        echo "$host:$port $greeting"
        return 0
    fi
    echo "VNC $uri ($host:$port) said '$greeting'" >&2
    return 1
}

# _rg_channel_path DOM NAME: source path of the virtio channel NAME
_rg_channel_path() {
    rg_virsh dumpxml "$1" | /usr/bin/python3 -c '
import sys, xml.etree.ElementTree as ET
for ch in ET.parse(sys.stdin).getroot().iter("channel"):
    t, s = ch.find("target"), ch.find("source")
    if t is not None and t.get("name") == sys.argv[1] and s is not None:
        print(s.get("path") or "")
        break
' "$2"
}

# rg_agent_socket DOM: the guest-agent channel's socket (path from the
# live XML) exists and is a UNIX socket; prints the path.
rg_agent_socket() {
    local path
    path=$(_rg_channel_path "$1" org.qemu.guest_agent.0) || return 1
    [ -z "$path" ] || path=$(rg_host_path "$path")
    if [ -n "$path" ] && [ -S "$path" ]; then
        echo "$path"
        return 0
    fi
    echo "guest agent channel: '${path:-no path in the XML}' is not a socket" >&2
    return 1
}

# rg_devices_snapshot [--no-tap] DOM: `domblklist --details` and
# `domiflist`; --no-tap blanks domiflist's interface column (a classic local
# migration gives every NIC a new TAP; backend transfer keeps them).
rg_devices_snapshot() {
    local notap=
    [ "$1" = --no-tap ] && { notap=1; shift; }
    rg_virsh domblklist --details "$1" || return 1
    if [ -n "$notap" ]; then
        rg_virsh domiflist "$1" | awk '{ $1 = "-"; print }'
    else
        rg_virsh domiflist "$1"
    fi
}

# rg_qemu_user PID: the (effective) user PID runs as.
rg_qemu_user() { ps -o user= -p "$1"; }

# ---- both addresses ----------------------------------------------------------
# rg_pinged_both CMD...: as pinged (lib/libvirt.sh: GUEST_IP every 10 ms,
# figures in $LM_TMP/last.stats, read with stat_of), and GUEST_IP2 too,
# figures in $LM_TMP/last2.stats (read with rg_stat2_of).
rg_pinged_both() {
    local log=$LM_TMP/ping2.$RANDOM rc=0
    lm_nsexec "$LM_PINGSTAT" start "$log" "$GUEST_IP2" 0.01 >/dev/null
    "$LM_PINGSTAT" wait "$log" 30 >/dev/null || :
    pinged "$@" || rc=$?
    "$LM_PINGSTAT" stop "$log" >"$LM_TMP/last2.stats"
    return $rc
}

rg_stat2_of() { sed -n "s/^$1=//p" "$LM_TMP/last2.stats"; }

# rg_answers_both: like answers, for both addresses; prints the figures.
rg_answers_both() {
    rg_pinged_both sleep 1 || return 1
    echo "$GUEST_IP: $(stat_of received)/$(stat_of sent)," \
        "$GUEST_IP2: $(rg_stat2_of received)/$(rg_stat2_of sent)"
    [ "$(stat_of received)" -gt 50 ] && [ "$(stat_of lost_after_first_reply)" -le 2 ] &&
        [ "$(rg_stat2_of received)" -gt 50 ] && [ "$(rg_stat2_of lost_after_first_reply)" -le 2 ]
}
