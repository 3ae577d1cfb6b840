#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/report.py on synthetic samples whose figures are known: the gap and
# loss extraction from a ping log, the phase marks from libvirt debug log
# lines, the raw floor's step times, the memory peaks, and the median /
# min / max per mode in samples.json and the printed table.
set -uo pipefail
top=${LOCALMIG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}

. "$top/tests/e2e/lib/common.sh"

scratch=$(mktemp -d)
lm_defer rm -rf "$scratch"

tap_plan 25

# Three libvirt runs (bt) and one raw run.  Ping replies every 10 ms from
# T-1 s to T+1 s (T = command start); the replies between the source's
# STOP and a while after the RESUME are missing.  Per bt run k (1, 2, 3):
# STOP at T+0.800, RESUME at T+0.800+0.010*k, replies dropped for
# 0.805 < t < 0.835+0.010*k (3+k lost), so the gap around the switchover
# is 40+10k ms and the new process first answers at T+0.840+0.010*k.
/usr/bin/python3 - "$scratch" <<'PY'
import datetime, json, os, sys

out = sys.argv[1]
T = 1893456000.0                      # 2030-01-01 00:00:00 UTC


def stamp(t):
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S.") + "%03d+0000" % (round(t * 1000) % 1000)


def ping_log(path, t0, drop_from, drop_to):
    with open(path, "w") as f:
        f.write("# pingstat started_at=%.6f target=198.18.0.2 interval=0.01\n" % (t0 - 1.1))
        f.write("PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.\n")
        n = 0
        for i in range(201):
            t = t0 - 1.0 + 0.01 * i
            n += 1
            if drop_from < t - t0 < drop_to:
                continue
            f.write("[%.6f] 64 bytes from 198.18.0.2: icmp_seq=%d ttl=64 time=0.5 ms\n" % (t, n))
        f.write("\n%d packets transmitted, %d received\n" % (n, n))


def mem_log(path, t0, used_kib, rss_kib, exit_at=None, grown_kib=0):
    """GROWN_KIB: the guest's own growth in the 5 s before the command."""
    with open(path, "w") as f:
        if grown_kib:
            f.write("%.6f %d 500000\n" % (t0 - 5, 1000000 - grown_kib))
        f.write("%.6f 1000000 500000\n" % t0)
        f.write("%.6f %d %d\n" % (t0 + 0.5, 1000000 + used_kib, 500000 + rss_kib))
        if exit_at:
            f.write("# exited 4242 %.6f\n" % exit_at)
        f.write("%.6f 1000000 500000\n" % (t0 + 1.0))


def mem_log6(path, t0, held_kib, pcp_kib):
    """memwatch's full lines: MemAvailable's figure (USED) also rises with
    PCP_KIB parked on the per-CPU free lists, HELD does not."""
    with open(path, "w") as f:
        f.write("%.6f 1000000 500000 800000 0 0\n" % t0)
        f.write("%.6f %d 500000 800000 %d 2048\n" % (t0 + 0.3, 1000000 + pcp_kib, pcp_kib))
        f.write("%.6f %d 501024 %d 0 0\n" % (t0 + 0.5, 1000000 + held_kib, 800000 + held_kib))
        f.write("%.6f 1000000 500000 800000 0 0\n" % (t0 + 1.0))


def log(f, t, msg):
    f.write("%s: 100: debug : %s\n" % (stamp(t), msg))


def event(mon, t, name, status=None):
    ev = {"timestamp": {"seconds": int(t), "microseconds": round((t % 1) * 1e6)},
          "event": name}
    if status:
        ev["data"] = {"status": status}
    return "qemuMonitorJSONIOProcessLine:207 : QEMU_MONITOR_RECV_EVENT: mon=%s event=%s" % (
        mon, json.dumps(ev))


for k in (1, 2, 3):
    d = os.path.join(out, "runs", "0%d-bt" % k)
    os.makedirs(d)
    t0 = T + 100 * k
    resume = t0 + 0.800 + 0.010 * k
    with open(os.path.join(d, "meta"), "w") as f:
        f.write("mode=bt\niteration=%d\nrc=0\nt_cmd_start=%.6f\nt_cmd_end=%.6f\n"
                % (k, t0, t0 + 2.0 + 0.1 * k))
    ping_log(os.path.join(d, "ping.log"), t0, 0.805, 0.835 + 0.010 * k)
    mem_log(os.path.join(d, "mem.log"), t0, 1024 * 10 * k, 1024 * 20 * k, t0 + 1.2)
    with open(os.path.join(d, "virsh.out"), "w") as f:
        f.write("(Time: %d.5 ms)\n\nTotal downtime:   %d ms\nTime elapsed:     999 ms\n"
                "\n(Time: 0.2 ms)\n" % (1800 + k, 90 + k))
    with open(os.path.join(d, "libvirt-debug.log"), "w") as f:
        log(f, t0 + 0.300, "virDomainMigrateToURI3:4743 : dom=0x1, flags=0x600001")
        log(f, t0 + 0.310, "qemuMigrationLocalSetPhase:1502 : local migration of 'd': prepare -> prepare")
        log(f, t0 + 0.320, "qemuMigrationLocalSetPhase:1502 : local migration of 'd': prepare -> launch")
        log(f, t0 + 0.350, 'qemuMonitorJSONIOProcessLine:193 : Line [{"QMP": {"version": {}}}]')
        log(f, t0 + 0.600, "qemuMigrationLocalSetPhase:1502 : local migration of 'd': launch -> migrate")
        log(f, t0 + 0.601, 'qemuMonitorSend:836 : QEMU_MONITOR_SEND_MSG: mon=0xa msg={"execute":"migrate","arguments":{"uri":"fd:x"},"id":"libvirt-9"}')
        log(f, t0 + 0.801, event("0xa", t0 + 0.800, "STOP"))
        log(f, t0 + 0.801, event("0xb", t0 + 0.805, "MIGRATION", "completed"))
        log(f, t0 + 0.802, event("0xa", t0 + 0.790 + 0.010 * k, "MIGRATION", "completed"))
        log(f, t0 + 0.803, 'qemuMonitorJSONIOProcessLine:212 : QEMU_MONITOR_RECV_REPLY: mon=0xa reply={"return": {"status": "completed", "downtime": %d, "total-time": %d, "ram": {"downtime-bytes": %d}}, "id": "libvirt-10"}' % (20 + k, 300 + k, (1 + k) << 19))
        log(f, t0 + 0.804, "qemuMigrationLocalSetPhase:1502 : local migration of 'd': migrate -> switchover")
        log(f, t0 + 0.805, 'qemuMonitorSend:836 : QEMU_MONITOR_SEND_MSG: mon=0xc msg={"execute":"cont","id":"libvirt-3"}')
        log(f, t0 + 0.806, event("0xc", resume, "RESUME"))
        log(f, t0 + 0.807, 'qemuMonitorJSONIOProcessLine:212 : QEMU_MONITOR_RECV_REPLY: mon=0xc reply={"return": {}, "id": "libvirt-3"}')
        log(f, t0 + 1.900, "virDomainObjEndAsyncJob:652 : Stopping async job: migration out (vm=0x2 name=d)")

d = os.path.join(out, "runs", "04-raw")
os.makedirs(d)
t0 = T + 1000
def raw_marks(f, t0, marks):
    """The raw floor's step times, MARK=seconds after t0."""
    for key, dt in marks:
        f.write("%s=%.6f\n" % (key, t0 + dt))


with open(os.path.join(d, "meta"), "w") as f:
    f.write("mode=raw\niteration=1\n")
    raw_marks(f, t0, (("t_launch", 0.05), ("t_qmp", 0.08), ("t_migrate", 0.1),
                      ("t_stop", 0.30), ("t_src_completed", 0.302), ("t_resume", 0.305),
                      ("t_gone", 0.31)))
    f.write("status=completed\ndowntime=4\ndowntime_bytes=262144\ntotal_time=200\nt_cmd_start=%.6f\n"
            "t_cmd_end=%.6f\nrc=0\n" % (t0, t0 + 0.35))
ping_log(os.path.join(d, "ping.log"), t0, 0.295, 0.312)
mem_log(os.path.join(d, "mem.log"), t0, 2048, 4096)

# The memory dimension: a raw floor sharing 256 MiB, and libvirt sharing
# 256 MiB (wall 300 ms, host peak 20 MiB) and 4096 MiB (wall 390 ms, host
# peak 30 MiB); no debug log, so no pause figure.
d = os.path.join(out, "runs", "05-raw-shared@256")
os.makedirs(d)
t0 = T + 2000
with open(os.path.join(d, "meta"), "w") as f:
    f.write("mode=raw-shared@256\niteration=1\nram_mib=256\nstatus=completed\n"
            "transferred=1048576\nt_cmd_start=%.6f\nt_cmd_end=%.6f\nrc=0\n" % (t0, t0 + 0.2))
mem_log(os.path.join(d, "mem.log"), t0, 1024 * 5, 1024)
def memory_run(n, fam, size, wall, peak, grown=0):
    """A libvirt run of the memory dimension: wall time, host peak (MiB),
    the guest's growth before the command (MiB)."""
    d = os.path.join(out, "runs", "%02d-%s@%d" % (n, fam, size))
    os.makedirs(d)
    t0 = T + 1000 * n
    with open(os.path.join(d, "meta"), "w") as f:
        f.write("mode=%s@%d\niteration=1\nram_mib=%d\nt_cmd_start=%.6f\n"
                "t_cmd_end=%.6f\nrc=0\n" % (fam, size, size, t0, t0 + wall))
    ping_log(os.path.join(d, "ping.log"), t0, 0.1, 0.1)
    mem_log(os.path.join(d, "mem.log"), t0, 1024 * peak, 1024, grown_kib=1024 * grown)


memory_run(6, "shared", 256, 0.300, 20)
# its guest still filling 100 MiB before the command: not in the peak
memory_run(7, "shared", 4096, 0.390, 30, 100)

# The raw floor of cpr-transfer at 256 MiB: its destination's QMP answers
# after the migrate (t_monitor), guest stopped 6 ms, 0.2 MiB sent, host
# peak 28 MiB, wall 160 ms.
d = os.path.join(out, "runs", "08-raw-cpr@256")
os.makedirs(d)
t0 = T + 8000
with open(os.path.join(d, "meta"), "w") as f:
    f.write("mode=raw-cpr@256\niteration=1\nram_mib=256\n")
    raw_marks(f, t0, (("t_launch", 0.01), ("t_qmp", 0.03), ("t_migrate", 0.035),
                      ("t_monitor", 0.06), ("t_stop", 0.10), ("t_src_completed", 0.104),
                      ("t_resume", 0.106), ("t_gone", 0.13)))
    f.write("status=completed\ntotal_time=27\ntransferred=209715\nt_cmd_start=%.6f\n"
            "t_cmd_end=%.6f\nrc=0\n" % (t0, t0 + 0.16))
ping_log(os.path.join(d, "ping.log"), t0, 0.1, 0.1)
mem_log6(os.path.join(d, "mem.log"), t0, 1024 * 28, 1024 * 150)

# libvirt's cpr-transfer of a memfd guest: 256 MiB (wall 250 ms, host
# peak 18 MiB) and 4096 MiB (wall 300 ms, host peak 25 MiB).
memory_run(9, "cpr", 256, 0.250, 18)
memory_run(10, "cpr", 4096, 0.300, 25)
PY

out=$(/usr/bin/python3 "$top/bench/report.py" --no-plot "$scratch" 2>&1)
rc=$?
tap_expect "report.py runs on the synthetic samples" 0 "$rc"
[ "$rc" -eq 0 ] || tap_diag "$out"

# val RUN KEY: a figure of samples.json, rounded to 0.1
val() {
    /usr/bin/python3 -c '
import json, sys
runs = {r["run"]: r for r in json.load(open(sys.argv[1]))["runs"]}
v = runs[sys.argv[2]].get(sys.argv[3])
print("%.1f" % v if isinstance(v, (int, float)) and not isinstance(v, bool) else v)' \
        "$scratch/samples.json" "$1" "$2" 2>&1
}
row() { grep -m1 "^$1" <<<"$out" | sed 's/  */ /g'; }

tap_expect "ping: gap at the switchover, largest gap, loss (bt #2)" "60.0 60.0 5.0" \
    "$(val 02-bt switch_gap_ms) $(val 02-bt gap_ms) $(val 02-bt lost)"
tap_expect "ping: command to the new process's first reply (bt #3)" "870.0" "$(val 03-bt first_reply_ms)"
tap_expect "ping: replies 1 s before the command count as sent/received" "201.0 197.0" \
    "$(val 01-bt sent) $(val 01-bt received)"
tap_expect "libvirt log: STOP (source monitor) to RESUME (new monitor), QEMU timestamps" "20.0" \
    "$(val 02-bt paused_ms)"
tap_expect "libvirt log: QEMU's downtime and total time from query-migrate, not domjobinfo" "22.0 302.0" \
    "$(val 02-bt downtime_ms) $(val 02-bt total_ms)"
tap_expect "sent while stopped: downtime-bytes from libvirt's log (bt #2) and the raw floor's meta, in MiB" \
    "1.5 0.2" "$(val 02-bt downtime_mib) $(val 04-raw downtime_mib)"
tap_expect "libvirt log: phases start-up, checks, process, probe" "300.0 20.0 30.0 250.0" \
    "$(val 01-bt phase_startup_ms) $(val 01-bt phase_checks_ms) $(val 01-bt phase_process_ms) $(val 01-bt phase_probe_ms)"
tap_expect "libvirt log: phases migration (to the source's completed event, not another monitor's), switchover" \
    "200.0 10.0" "$(val 01-bt phase_migration_ms) $(val 01-bt phase_switchover_ms)"
tap_expect "libvirt log + memwatch: cleanup to the old QEMU's exit, reap, exit" "390.0 700.0 200.0" \
    "$(val 01-bt phase_cleanup_ms) $(val 01-bt phase_reap_ms) $(val 01-bt phase_exit_ms)"
tap_expect "virsh -t: the migrate command's own time" "1802.5" "$(val 02-bt api_ms)"
tap_expect "memwatch: peaks over the baseline in MiB" "30.0 60.0" \
    "$(val 03-bt mem_host_mib) $(val 03-bt mem_rss_mib)"
tap_expect "raw floor: phases from its step times" "50.0 30.0 20.0 202.0 3.0 5.0 40.0" \
    "$(for p in startup process probe migration switchover cleanup exit; do val 04-raw "phase_${p}_ms"; done | tr '\n' ' ' | sed 's/ $//')"
tap_expect "table: median (min-max) per mode" "ping gap at the switchover [ms] 30 (30-30) 60 (50-70)" \
    "$(row 'ping gap at the switchover')"
tap_expect "target: bt's gap against the floor's median, beside the floor's own runs" \
    "target: bt largest gap: median 60.0 ms (2.00x the raw floor's), max 70.0 ms; 1.2 x raw floor median (30.0 ms) = 36.0 ms: within it in 0/3 runs (the raw floor's own runs: 1/1)" \
    "$(row 'target: bt largest gap')"
tap_expect "phase table: bt's difference to the raw floor" \
    "new process QMP set-up and probe 20 250 +230" "$(row 'new process QMP')"
tap_expect "memory: the raw floor's RAM sent, from its meta, in MiB" "1.0" \
    "$(val 05-raw-shared@256 ram_sent_mib)"
tap_expect "memory table: a line per mode and size, apart from the main table" \
    "libvirt --local-shared-memory 4096 1/1 390 (390-390) - - 10 (10-10) 0 (0-0) - 30.0 (30.0-30.0)" \
    "$(row 'libvirt --local-shared-memory *4096')"
tap_expect "memory target: shared time at the largest size against the smallest" \
    "target: shared wall time at 4096 MiB: 390 ms, 1.30x its 300 ms at 256 MiB (target: within 1.3x)" \
    "$(row 'target: shared wall time')"
tap_expect "memory target: shared host memory peak per size" \
    "target: shared host memory peak above the guest at 256 MiB: median 20.0, max 20.0 MiB (target: under 64 MiB)" \
    "$(row 'target: shared host memory peak above the guest at 256')"
tap_expect "memory table: the raw floor of cpr-transfer, its pause from QEMU's STOP and RESUME" \
    "raw floor, cpr-transfer 256 1/1 160 (160-160) 27 (27-27) 6.0 (6.0-6.0) 10 (10-10) 0 (0-0) 0.2 (0.2-0.2) 28.0 (28.0-28.0)" \
    "$(row 'raw floor, cpr-transfer')"
tap_expect "memwatch: the host figure is what is held, not MemAvailable's, which PCP lists move" \
    "28.0 150.0 150.0 2.0" \
    "$(for k in mem_host_mib mem_used_mib mem_pcp_max_mib mem_boost_max_mib; do val 08-raw-cpr@256 "$k"; done | tr '\n' ' ' | sed 's/ $//')"
tap_expect "raw floor of cpr-transfer: the new process's wait for the CPR state counts as its start" \
    "20.0 5.0 69.0" \
    "$(for p in process probe migration; do val 08-raw-cpr@256 "phase_${p}_ms"; done | tr '\n' ' ' | sed 's/ $//')"
tap_expect "memory table: libvirt's cpr-transfer, a line per size" \
    "libvirt --local-shared-memory, memfd (cpr-transfer) 4096 1/1 300 (300-300) - - 10 (10-10) 0 (0-0) - 25.0 (25.0-25.0)" \
    "$(row 'libvirt --local-shared-memory, memfd (cpr-transfer) *4096')"
tap_expect "memory target: cpr's time at the largest size against the smallest, apart from shared's" \
    "target: cpr wall time at 4096 MiB: 300 ms, 1.20x its 250 ms at 256 MiB (target: within 1.3x)" \
    "$(row 'target: cpr wall time')"
