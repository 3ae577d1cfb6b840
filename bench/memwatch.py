#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""memwatch: sample the host's memory while a migration runs.

  memwatch.py LOG [PERIOD_S [NETNS]]

Until SIGTERM or SIGINT, every PERIOD_S (default 0.02) appends a line

  EPOCH_S  USED_KIB  RSS_KIB

to LOG: USED is MemTotal - MemAvailable from /proc/meminfo (the whole
host), RSS the summed private resident memory (RssAnon + RssShmem: guest
RAM, heaps; not the binaries and libraries, whose pages are shared) of
every QEMU and virsh process, the processes a local migration adds or
grows; with NETNS (e.g. /run/netns/NAME) only those inside that network
namespace (other guests on the host do not count).  The first line comes at once: a caller
waits for it before starting the command, and it is the baseline.
A QEMU process that exits (becomes a zombie or disappears) adds a line

  # exited PID EPOCH_S

(the sampling period is its resolution): when a process ended, apart from
when its parent or init reaped it.
"""

import os
import random
import signal
import sys
import time

WATCHED = {"qemu-system-x86", "virsh"}


def host_used_kib():
    vals = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, rest = line.split(":", 1)
            if key in ("MemTotal", "MemAvailable"):
                vals[key] = int(rest.split()[0])
    return vals["MemTotal"] - vals["MemAvailable"]


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


def main(argv):
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
            out.write("%.6f %d %d\n" % (t, host_used_kib(), rss))
            now = {pid for pid, alive in qemus.items() if alive}
            if running is not None:
                for pid in sorted(running - now):
                    out.write("# exited %d %.6f\n" % (pid, t))
            running = now
            time.sleep(max(0.0, period - (time.time() - t)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
