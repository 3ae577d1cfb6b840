#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""memwatch: sample the host's memory while a migration runs.

  memwatch.py LOG [PERIOD_S [NETNS]]
  memwatch.py --steady TIMEOUT_S NETNS

Until SIGTERM or SIGINT, every PERIOD_S (default 0.02) appends a line

  EPOCH_S  USED_KIB  RSS_KIB  HELD_KIB  PCP_KIB  BOOST_KIB

to LOG.  HELD is what processes and the kernel hold, from /proc/meminfo:
AnonPages + Shmem (guest RAM, a copy of it, heaps, tmpfs and memfd files)
+ PageTables + SecPageTables + KernelStack + SUnreclaim, and the hugepages
in use; the benchmark's host figure.  USED is MemTotal - MemAvailable, the
estimate most tools show: it also moves with pages parked on the per-CPU
free lists (PCP, summed over /proc/zoneinfo's "count:"), held by nobody,
which is why it is not the figure; PCP and kswapd's watermark boost
(BOOST), which also lowers MemAvailable, are kept to show it.  RSS is the summed private
resident memory (RssAnon + RssShmem: guest RAM, heaps; not the binaries
and libraries, whose pages are shared) of every QEMU and virsh process,
the processes a local migration adds or grows; with NETNS (e.g.
/run/netns/NAME) only those inside that network namespace (other guests
on the host do not count).  The first line comes at once: a caller waits
for it before starting the command (bench/report.py takes the last line
at or before the command's start as the baseline).
A QEMU process that exits (becomes a zombie or disappears) adds a line

  # exited PID EPOCH_S

(the sampling period is its resolution): when a process ended, apart from
when its parent or init reaped it.

--steady waits until the watched processes' RSS grows by less than 2 MiB
in a second (a guest done with its first pass over the memory it
dirties), at most TIMEOUT_S; prints the seconds waited, exits 1 on the
timeout.
"""

import os
import random
import signal
import sys
import time

WATCHED = {"qemu-system-x86", "virsh"}


HELD_KEYS = ("AnonPages", "Shmem", "PageTables", "SecPageTables",
             "KernelStack", "SUnreclaim")


def host_kib():
    """(USED, HELD) from /proc/meminfo, KiB."""
    vals = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, rest = line.split(":", 1)
            vals[key] = int(rest.split()[0])
    # hugepages are counted in pages of Hugepagesize; in use = total - free
    huge = (vals.get("HugePages_Total", 0) - vals.get("HugePages_Free", 0)) * \
        vals.get("Hugepagesize", 0)
    held = sum(vals.get(k, 0) for k in HELD_KEYS) + huge
    return vals["MemTotal"] - vals["MemAvailable"], held


def zone_kib():
    """(PCP, BOOST) summed over every zone of /proc/zoneinfo, KiB."""
    pcp = boost = 0
    with open("/proc/zoneinfo") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "count:":
                pcp += int(parts[1])
            elif len(parts) == 2 and parts[0] == "boost":
                boost += int(parts[1])
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    return pcp * page_kib, boost * page_kib


def netns_id(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def scan(qemus, names, netns=None):
    """Summed private RSS of the watched processes; QEMU pids and their
    state go to QEMUS (pid -> True while running, False once a zombie).
    NAMES caches each pid's comm (the others' for about ten passes), so a
    pass reads few files: the sampler itself stays light."""
    total = 0
    pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    for pid in list(names):
        # a process forked by virsh carries the forking thread's name
        # until it executes QEMU: forget the others' names now and then
        if pid not in pids or (names[pid] not in WATCHED and random.random() < 0.1):
            del names[pid]
    for pid in pids:
        if pid not in names:
            try:
                with open("/proc/%d/comm" % pid) as f:
                    names[pid] = f.read().strip()
                if netns and names[pid] in WATCHED and \
                        netns_id("/proc/%d/ns/net" % pid) != netns:
                    names[pid] = "(elsewhere)"
            except OSError:
                continue
        comm = names[pid]
        if comm not in WATCHED:
            continue
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("State:") and comm.startswith("qemu"):
                        qemus[pid] = line.split()[1] != "Z"
                    elif line.startswith(("RssAnon:", "RssShmem:")):
                        total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue        # gone meanwhile
    return total


def steady(timeout, netns, slack_kib=2048):
    names, prev, start = {}, None, time.time()
    while True:
        rss = scan({}, names, netns)
        waited = time.time() - start
        if prev is not None and rss - prev < slack_kib:
            print("%.1f" % waited)
            return 0
        if waited >= timeout:
            print("%.1f" % waited)
            return 1
        prev = rss
        time.sleep(1.0)


def main(argv):
    if len(argv) == 4 and argv[1] == "--steady":
        return steady(float(argv[2]), netns_id(argv[3]))
    if len(argv) not in (2, 3, 4):
        sys.stderr.write(__doc__)
        return 2
    period = float(argv[2]) if len(argv) >= 3 else 0.02
    netns = netns_id(argv[3]) if len(argv) == 4 else None
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    running, names = None, {}
    with open(argv[1], "w", buffering=1) as out:
        while not stop:
            t = time.time()
            qemus = {}
            rss = scan(qemus, names, netns)
            used, held = host_kib()
            pcp, boost = zone_kib()
            out.write("%.6f %d %d %d %d %d\n" % (t, used, rss, held, pcp, boost))
            now = {pid for pid, alive in qemus.items() if alive}
            if running is not None:
                for pid in sorted(running - now):
                    out.write("# exited %d %.6f\n" % (pid, t))
            running = now
            time.sleep(max(0.0, period - (time.time() - t)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
