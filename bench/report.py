#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""report: reduce a benchmark's raw samples (bench/run.sh) to its figures.

  report.py [--no-plot] OUT

reads OUT/machine.env and OUT/runs/NN-MODE/{meta,ping.log,mem.log,
virsh.out,libvirt-debug.log}, prints the table (median, min, max per mode),
the phase breakdown, the memory dimension's table (runs named MODE@SIZE:
per mode and RAM size) and the targets as read-off lines, and writes
OUT/samples.csv and OUT/samples.json (one row per run), OUT/table.txt (what
was printed), OUT/table.rst (for docs/performance.rst), OUT/gaps.png and
OUT/memory.png (need python3-matplotlib; skipped with a note when it is
missing).

Only Debian 12's python3 standard library, except the plot.
"""

import csv
import datetime
import glob
import json
import os
import re
import statistics
import sys

MODES = ["raw", "classic", "bt", "upgrade"]
MODE_TITLE = {
    "raw": "raw QEMU floor",
    "classic": "libvirt --local",
    "bt": "libvirt backend transfer",
    "upgrade": "upgrade 7.2 -> 10.0",
}
# the memory dimension's modes (run names MODE@SIZE), in table order
MEMORY_MODES = ["raw-copy", "copy", "raw-shared", "shared", "raw-cpr", "cpr"]
MEMORY_TITLE = {
    "raw-copy": "raw floor, copy",
    "copy": "libvirt copy",
    "raw-shared": "raw floor, x-ignore-shared",
    "shared": "libvirt --local-shared-memory",
    "raw-cpr": "raw floor, cpr-transfer",
    "cpr": "libvirt --local-shared-memory, memfd (cpr-transfer)",
}
MEMORY_FIGURES = [
    ("wall_ms", "command wall time", "ms"),
    ("total_ms", "QEMU total time", "ms"),
    ("paused_ms", "guest paused", "ms"),
    ("gap_ms", "largest ping gap", "ms"),
    ("lost", "lost", ""),
    ("ram_sent_mib", "RAM sent", "MiB"),
    ("mem_host_mib", "host memory peak above the guest", "MiB"),
]


def family(mode):
    """A memory run's mode without its size; other modes as they are."""
    return mode.split("@", 1)[0]


def is_raw(mode):
    return family(mode) in ("raw", "raw-copy", "raw-shared", "raw-cpr")

# (key, label, unit): the per-run figures of the main table
FIGURES = [
    ("gap_ms", "largest ping gap", "ms"),
    ("switch_gap_ms", "ping gap at the switchover", "ms"),
    ("lost", "packets lost", ""),
    ("paused_ms", "guest paused (STOP->RESUME)", "ms"),
    ("downtime_ms", "QEMU downtime", "ms"),
    ("downtime_mib", "sent while stopped", "MiB"),
    ("total_ms", "QEMU total time", "ms"),
    ("wall_ms", "command wall time", "ms"),
    ("api_ms", "migration call", "ms"),
    ("first_reply_ms", "command to first reply of new QEMU", "ms"),
    ("mem_host_mib", "host memory peak", "MiB"),
    ("mem_rss_mib", "QEMU+virsh RSS peak", "MiB"),
]

# the phases of a migration command; their sum is the wall time
PHASES = [
    ("startup", "start-up (virsh, embedded driver)"),
    ("checks", "checks, new definition, caps lookup"),
    ("process", "new QEMU process start"),
    ("probe", "new process QMP set-up and probe"),
    ("migration", "migration (state transfer)"),
    ("switchover", "switchover (completed -> resumed)"),
    ("cleanup", "cleanup (until the old QEMU exited)"),
    ("reap", "old QEMU reaped (this machine's init)"),
    ("exit", "exit (virsh end)"),
]

REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from \S+ icmp_seq=(\d+)")
TRANSMITTED = re.compile(r"^(\d+) packets transmitted")


# ---- statistics ---------------------------------------------------------------
def stats(values):
    """(median, min, max, n) of the values that are not None."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals), len(vals)


# ---- ping log ----------------------------------------------------------------
def ping_figures(path, t_cmd=None, t_resume=None):
    """From a ping log: the largest gap between consecutive replies (ms),
    packets lost between the first and the last reply, sent and received.
    With t_resume (the new process resumed the guest): the gap around it,
    i.e. from the last reply before to the first reply after it
    (switch_gap_ms), and with t_cmd the time from t_cmd to that first reply
    (first_reply_ms)."""
    replies, seen, wraps, last_raw = [], set(), 0, None
    transmitted = None
    with open(path) as f:
        for line in f:
            m = REPLY.match(line)
            if m:
                raw = int(m.group(2))
                if last_raw is not None and raw < last_raw - 32768:
                    wraps += 1          # icmp_seq is 16 bits
                last_raw = raw
                seq = raw + 65536 * wraps
                if seq in seen:
                    continue            # duplicate
                seen.add(seq)
                replies.append((float(m.group(1)), seq))
                continue
            m = TRANSMITTED.match(line)
            if m:
                transmitted = int(m.group(1))
    out = {"sent": transmitted if transmitted is not None else max(seen, default=0),
           "received": len(replies), "gap_ms": None, "lost": None,
           "switch_gap_ms": None, "first_reply_ms": None}
    if len(replies) < 2:
        return out
    first, last = replies[0][1], max(seen)
    out["lost"] = last - first + 1 - len([s for _, s in replies if s >= first])
    out["gap_ms"] = max(t1 - t0 for (t0, _), (t1, _) in zip(replies, replies[1:])) * 1000
    if t_resume is not None:
        for (t0, _), (t1, _) in zip(replies, replies[1:]):
            if t0 <= t_resume < t1:
                out["switch_gap_ms"] = (t1 - t0) * 1000
                if t_cmd is not None:
                    out["first_reply_ms"] = (t1 - t_cmd) * 1000
                break
    return out


def ping_timeline(path):
    """[(reply time, gap to the previous reply in ms)]"""
    out, prev = [], None
    with open(path) as f:
        for line in f:
            m = REPLY.match(line)
            if m:
                t = float(m.group(1))
                if prev is not None:
                    out.append((t, (t - prev) * 1000))
                prev = t
    return out


# ---- memory samples ----------------------------------------------------------
def mem_figures(path, t_start=None):
    """Peaks over the baseline, MiB: the last sample at or before T_START
    (the command's start), else the first; the guest's own growth before
    the command (its first pass over the pages it dirties) is not the
    migration's.  "exits": the QEMU processes seen to exit, [(time, pid)].
    The host figure is HELD where the log has it (bench/memwatch.py), else
    USED (logs of before)."""
    rows, exits = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if line.startswith("# exited ") and len(parts) == 4:
                exits.append((float(parts[3]), int(parts[2])))
                continue
            if len(parts) in (3, 6):
                rows.append((float(parts[0]),) + tuple(int(p) for p in parts[1:]))
    if not rows:
        return {"mem_host_mib": None, "mem_rss_mib": None, "mem_samples": 0,
                "exits": exits}
    base = rows[0]
    if t_start is not None:
        base = max((r for r in rows if r[0] <= t_start), key=lambda r: r[0],
                   default=base)
    rows = [r for r in rows if r[0] >= base[0]]

    def peak(col):
        return (max(r[col] for r in rows) - base[col]) / 1024

    out = {"mem_host_mib": peak(1), "mem_rss_mib": peak(2),
           "mem_rss_peak_mib": max(r[2] for r in rows) / 1024,
           "mem_samples": len(rows), "exits": exits}
    if len(base) == 6:
        # MemAvailable's peak and the free-page accounting that moves it
        out.update({"mem_host_mib": peak(3), "mem_used_mib": peak(1),
                    "mem_pcp_max_mib": max(r[4] for r in rows) / 1024,
                    "mem_boost_max_mib": max(r[5] for r in rows) / 1024})
    return out


# ---- virsh output ----------------------------------------------------------------
def virsh_figures(path):
    """migrate's own time (virsh -t) and domjobinfo --completed's figures."""
    out = {"api_ms": None, "downtime_ms": None, "total_ms": None}
    with open(path) as f:
        text = f.read()
    m = re.search(r"\(Time: ([\d.]+) ms\)", text)
    if m:
        out["api_ms"] = float(m.group(1))
    m = re.search(r"^Total downtime:\s+(\d+)\s+ms", text, re.M)
    if m:
        out["downtime_ms"] = float(m.group(1))
    m = re.search(r"^Time elapsed:\s+(\d+)\s+ms", text, re.M)
    if m:
        out["total_ms"] = float(m.group(1))
    return out


# ---- libvirt's debug log --------------------------------------------------------
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}[+-]\d{4}): \d+: \w+ : (.*)$")
EVENT = re.compile(r"QEMU_MONITOR_RECV_EVENT: mon=(0x[0-9a-f]+) event=(\{.*\})")
SEND = re.compile(r"QEMU_MONITOR_SEND_MSG: mon=(0x[0-9a-f]+) msg=(\{.*?\})\s*(?:fd=|$)")
REPLY_MSG = re.compile(r"QEMU_MONITOR_RECV_REPLY: mon=(0x[0-9a-f]+) reply=(\{.*\})")
GREETING = re.compile(r"qemuMonitorJSONIOProcessLine:\d+ : Line \[\{\"QMP\"")
PHASE = re.compile(r"local migration of '.*': (\w+) -> (\w+)$")


def log_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f%z").timestamp()


def qemu_time(event):
    ts = event["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6


def libvirt_marks(path):
    """Timestamps of a local migration's steps in libvirt's debug log:
      t_api        virDomainMigrateToURI3 entered
      t_prepare    phase PREPARE (checks and the new definition done)
      t_launch     phase LAUNCH: the new process is being started
      t_greeting   the first QMP greeting after that: the new QEMU listens
      t_migrate    phase MIGRATE (the new process waits for the stream)
      t_stop       the source's STOP event (QEMU's timestamp)
      t_src_completed  the source's MIGRATION completed event (QEMU's)
      t_resume     the new process's RESUME event (QEMU's timestamp)
      t_cont_reply the reply to `cont`
      t_jobend     the job "migration out" ended
      qemu_downtime, qemu_total  (ms) from the source's query-migrate    The source is the monitor `migrate` was sent on."""
    marks, events, sends, replies = {}, [], [], []
    with open(path, errors="replace") as f:
        for line in f:
            m = LOG_LINE.match(line)
            if not m:
                continue
            when, msg = log_time(m.group(1)), m.group(2)
            p = PHASE.search(msg)
            if p:
                marks.setdefault("t_" + p.group(2), when)
            elif "virDomainMigrateToURI3:" in msg:
                marks.setdefault("t_api", when)
            elif GREETING.search(msg):
                if "t_launch" in marks:
                    marks.setdefault("t_greeting", when)
            elif "Stopping async job: migration out" in msg:
                marks.setdefault("t_jobend", when)
            else:
                for rx, into in ((EVENT, events), (SEND, sends), (REPLY_MSG, replies)):
                    r = rx.search(msg)
                    if r:
                        try:
                            into.append((when, r.group(1), json.loads(r.group(2))))
                        except ValueError:
                            pass
                        break
    src = next((mon for _, mon, sent in sends if sent.get("execute") == "migrate"), None)
    for _, mon, ev in events:
        name = ev.get("event")
        if mon == src and name == "STOP":
            marks.setdefault("t_stop", qemu_time(ev))
        elif mon == src and name == "MIGRATION" and \
                ev.get("data", {}).get("status") == "completed":
            marks.setdefault("t_src_completed", qemu_time(ev))
        elif name == "RESUME" and mon != src and "t_stop" in marks:
            marks.setdefault("t_resume", qemu_time(ev))
    for _, mon, rep in replies:
        ret = rep.get("return")
        if mon == src and isinstance(ret, dict) and ret.get("status") == "completed":
            for key, name in (("downtime", "qemu_downtime"), ("total-time", "qemu_total")):
                if key in ret:
                    marks.setdefault(name, float(ret[key]))
            if "downtime-bytes" in ret.get("ram", {}):
                marks.setdefault("qemu_downtime_bytes", float(ret["ram"]["downtime-bytes"]))
            if "transferred" in ret.get("ram", {}):
                marks.setdefault("qemu_ram_bytes", float(ret["ram"]["transferred"]))
    cont = next(((mon, sent.get("id")) for _, mon, sent in sends
                 if sent.get("execute") == "cont"), None)
    for when, mon, rep in replies:
        if cont and (mon, rep.get("id")) == cont:
            marks.setdefault("t_cont_reply", when)
    return marks


def span(marks, a, b):
    if marks.get(a) is None or marks.get(b) is None:
        return None
    return (marks[b] - marks[a]) * 1000


def phases(mode, marks):
    """Phase durations (ms) of one run from its marks (libvirt's or the raw
    floor's); a phase whose ends are unknown is None."""
    if is_raw(mode):
        return {
            "startup": span(marks, "t_cmd_start", "t_launch"),
            "checks": 0.0,
            "process": span(marks, "t_launch", "t_qmp"),
            "probe": span(marks, "t_qmp", "t_migrate"),
            "migration": span(marks, "t_migrate", "t_src_completed"),
            "switchover": span(marks, "t_src_completed", "t_resume"),
            "cleanup": span(marks, "t_resume", "t_gone"),
            "reap": 0.0,
            "exit": span(marks, "t_gone", "t_cmd_end"),
        }
    return {
        "startup": span(marks, "t_cmd_start", "t_api"),
        "checks": span(marks, "t_api", "t_launch"),
        "process": span(marks, "t_launch", "t_greeting"),
        "probe": span(marks, "t_greeting", "t_migrate"),
        "migration": span(marks, "t_migrate", "t_src_completed"),
        "switchover": span(marks, "t_src_completed", "t_resume"),
        "cleanup": span(marks, "t_resume", "t_old_exit"),
        "reap": span(marks, "t_old_exit", "t_jobend"),
        "exit": span(marks, "t_jobend", "t_cmd_end"),
    }


# ---- one run ---------------------------------------------------------------------
def read_kv(path):
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    out[k] = v
    return out


def mib(nbytes):
    return None if nbytes is None else nbytes / (1 << 20)


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def run_sample(run_dir):
    meta = read_kv(os.path.join(run_dir, "meta"))
    mode = meta.get("mode")
    t_cmd = num(meta.get("t_cmd_start"))
    row = {"run": os.path.basename(run_dir), "mode": mode,
           "iteration": int(meta.get("iteration", 0)),
           "ok": meta.get("rc") == "0",
           "foreign_qemus": int(meta.get("foreign_qemus") or 0),
           "loadavg": num(meta.get("loadavg")),
           "busy_before": num(meta.get("busy_before"))}
    marks = {"t_cmd_start": t_cmd, "t_cmd_end": num(meta.get("t_cmd_end"))}
    row["wall_ms"] = span(marks, "t_cmd_start", "t_cmd_end")
    exits = []
    mem = os.path.join(run_dir, "mem.log")
    if os.path.exists(mem):
        mf = mem_figures(mem, t_cmd)
        exits = mf.pop("exits")
        row.update(mf)
    row["ram_mib"] = num(meta.get("ram_mib"))
    if is_raw(mode):
        for k in ("t_launch", "t_qmp", "t_migrate", "t_completed", "t_running",
                  "t_quit", "t_gone", "t_stop", "t_src_completed", "t_resume"):
            marks[k] = num(meta.get(k))
        row["downtime_ms"] = num(meta.get("downtime"))
        row["downtime_mib"] = mib(num(meta.get("downtime_bytes")))
        row["total_ms"] = num(meta.get("total_time"))
        row["ram_sent_mib"] = mib(num(meta.get("transferred")))
        row["api_ms"] = span(marks, "t_launch", "t_gone")
        if meta.get("status") != "completed":
            row["ok"] = False
    else:
        vf = os.path.join(run_dir, "virsh.out")
        if os.path.exists(vf):
            row.update(virsh_figures(vf))
        lf = os.path.join(run_dir, "libvirt-debug.log")
        if os.path.exists(lf):
            marks.update(libvirt_marks(lf))
            # QEMU's own figures (domjobinfo's "Time elapsed" is the job's)
            for key, name in (("downtime_ms", "qemu_downtime"), ("total_ms", "qemu_total")):
                if name in marks:
                    row[key] = marks.pop(name)
            row["downtime_mib"] = mib(marks.pop("qemu_downtime_bytes", None))
            row["ram_sent_mib"] = mib(marks.pop("qemu_ram_bytes", None))
        # the old process ended: the first QEMU exit after the switchover
        if marks.get("t_resume") is not None:
            marks["t_old_exit"] = next((t for t, _ in sorted(exits)
                                        if t >= marks["t_resume"]), None)
    row["paused_ms"] = span(marks, "t_stop", "t_resume")
    ping = os.path.join(run_dir, "ping.log")
    if os.path.exists(ping):
        pf = ping_figures(ping, t_cmd, marks.get("t_resume"))
        row.update({k: pf[k] for k in ("gap_ms", "switch_gap_ms", "lost", "sent",
                                        "received", "first_reply_ms")})
    row["t_resume"] = marks.get("t_resume")
    for name, val in phases(mode, marks).items():
        row["phase_" + name + "_ms"] = val
    return row


def load(out_dir):
    rows = [run_sample(d) for d in sorted(glob.glob(os.path.join(out_dir, "runs", "*")))
            if os.path.isdir(d)]
    return [r for r in rows if r["mode"]]


# ---- output ------------------------------------------------------------------------
def fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "MiB" or (isinstance(v, float) and abs(v) < 10 and v != int(v)):
        return "%.1f" % v
    return "%d" % round(v)


def cell(st, unit):
    if st is None:
        return "-"
    med, lo, hi, _ = st
    return "%s (%s-%s)" % (fmt(med, unit), fmt(lo, unit), fmt(hi, unit))


def modes_of(rows):
    """The main table's modes: those without a RAM size."""
    present = {r["mode"] for r in rows if "@" not in r["mode"]}
    return [m for m in MODES if m in present] + sorted(present - set(MODES))


def memory_runs(rows):
    """The memory dimension's (mode, size) pairs, in table order."""
    pairs = {(family(r["mode"]), r["ram_mib"]) for r in rows
             if "@" in r["mode"] and r.get("ram_mib") is not None}
    order = {m: i for i, m in enumerate(MEMORY_MODES)}
    return sorted(pairs, key=lambda p: (order.get(p[0], len(order)), p[0], p[1]))


def memory_rows(rows):
    """One line per memory mode and RAM size: median (min-max) of each
    figure, and how many of its runs succeeded."""
    pairs = memory_runs(rows)
    header = ["mode", "RAM [MiB]", "runs"] + \
        ["%s%s" % (label, " [%s]" % unit if unit else "") for _, label, unit in MEMORY_FIGURES]
    body = []
    for fam, size in pairs:
        mode = "%s@%d" % (fam, size)
        n_ok = sum(1 for r in rows if r["mode"] == mode and r["ok"])
        n = sum(1 for r in rows if r["mode"] == mode)
        line = [MEMORY_TITLE.get(fam, fam), "%d" % size, "%d/%d" % (n_ok, n)]
        for key, _, unit in MEMORY_FIGURES:
            line.append(cell(stats(by_mode(rows, key).get(mode, [])), unit))
        body.append(line)
    return header, body


def memory_targets(rows):
    """The memory dimension's targets, read off the samples, for each
    family that shares memory (x-ignore-shared, cpr-transfer)."""
    lines = []

    def med(mode, key):
        st = stats(by_mode(rows, key).get(mode, []))
        return st[0] if st else None

    for sh in ("shared", "cpr"):
        sizes = sorted({s for f, s in memory_runs(rows) if f == sh})
        if len(sizes) >= 2:
            lo, hi = sizes[0], sizes[-1]
            a, b = med("%s@%d" % (sh, lo), "wall_ms"), med("%s@%d" % (sh, hi), "wall_ms")
            if a and b:
                lines.append("%s wall time at %d MiB: %d ms, %.2fx its %d ms at %d MiB"
                             " (target: within 1.3x)" % (sh, hi, round(b), b / a, round(a), lo))
            a, b = med("%s@%d" % (sh, lo), "total_ms"), med("%s@%d" % (sh, hi), "total_ms")
            if a and b:
                lines.append("%s QEMU total time at %d MiB: %d ms, %.2fx its %d ms at %d MiB"
                             % (sh, hi, round(b), b / a, round(a), lo))
        for size in sizes:
            st = stats(by_mode(rows, "mem_host_mib").get("%s@%d" % (sh, size), []))
            if st:
                lines.append("%s host memory peak above the guest at %d MiB: median %.1f,"
                             " max %.1f MiB (target: under 64 MiB)" % (sh, size, st[0], st[2]))
        if sizes:
            p_sh = med("%s@%d" % (sh, sizes[0]), "paused_ms")
            p_cp = med("copy@%d" % sizes[0], "paused_ms")
            if p_sh is not None and p_cp is not None:
                lines.append("%s guest pause at %d MiB: %.1f ms against copy's %.1f ms"
                             " (target: no longer)" % (sh, sizes[0], p_sh, p_cp))
    for fam in ("copy", "shared", "cpr"):
        lost = [v for (f, s) in memory_runs(rows) if f == fam
                for v in by_mode(rows, "lost").get("%s@%d" % (f, s), []) if v is not None]
        if lost:
            lines.append("%s (backend transfer) packets lost: 0 in %d/%d runs"
                         % (fam, sum(1 for v in lost if v == 0), len(lost)))
    return lines


def plot_memory(rows, path):
    """Wall time and host memory peak against the guest's RAM, per mode."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no memory plot: python3-matplotlib is not installed"
    pairs = memory_runs(rows)
    if not pairs:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    for fam in [m for m in MEMORY_MODES if any(f == m for f, _ in pairs)]:
        sizes = sorted(s for f, s in pairs if f == fam)
        for ax, key in ((ax1, "wall_ms"), (ax2, "mem_host_mib")):
            meds = []
            for s in sizes:
                st = stats(by_mode(rows, key).get("%s@%d" % (fam, s), []))
                meds.append(st[0] if st else float("nan"))
            ax.plot(sizes, meds, marker="o", label=MEMORY_TITLE.get(fam, fam))
    for ax, label in ((ax1, "command wall time [ms] (median)"),
                      (ax2, "host memory peak above the guest [MiB] (median)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("guest RAM [MiB]")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    ax2.axhline(64, color="red", ls=":", lw=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def by_mode(rows, key):
    out = {}
    for r in rows:
        if r["ok"]:
            out.setdefault(r["mode"], []).append(r.get(key))
    return out


def text_table(header, body):
    widths = [max(len(str(row[i])) for row in [header] + body)
              for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return lines


def rst_table(header, body):
    widths = [max(len(str(row[i])) for row in [header] + body)
              for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(), rule]
    for row in body:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    lines.append(rule)
    return lines


def figure_rows(rows, modes):
    body = []
    for key, label, unit in FIGURES:
        vals = by_mode(rows, key)
        name = label + (" [%s]" % unit if unit else "")
        body.append([name] + [cell(stats(vals.get(m, [])), unit) for m in modes])
    return body


def phase_rows(rows, modes):
    """Median of each phase per mode, and each libvirt mode's difference to
    the raw floor's median."""
    meds = {}
    for m in modes:
        for key, _ in PHASES:
            st = stats(by_mode(rows, "phase_%s_ms" % key).get(m, []))
            meds[(m, key)] = st[0] if st else None
    lv = [m for m in modes if m != "raw"]
    header = ["phase (median ms)"] + modes + ["%s-raw" % m for m in lv if "raw" in modes]
    body = []
    for key, label in PHASES:
        row = [label] + [fmt(meds[(m, key)]) for m in modes]
        if "raw" in modes:
            for m in lv:
                a, b = meds[(m, key)], meds[("raw", key)]
                row.append("%+d" % round(a - b) if a is not None and b is not None else "-")
        body.append(row)
    total = ["sum of phases"]
    for m in modes:
        vals = [meds[(m, k)] for k, _ in PHASES]
        total.append(fmt(sum(vals)) if None not in vals else "-")
    if "raw" in modes:
        for m in lv:
            a = [meds[(m, k)] for k, _ in PHASES]
            b = [meds[("raw", k)] for k, _ in PHASES]
            total.append("%+d" % round(sum(a) - sum(b)) if None not in a + b else "-")
    body.append(total)
    return header, body, meds


def biggest_phase(meds, mode):
    diffs = [(meds[(mode, k)] - meds[("raw", k)], k) for k, _ in PHASES
             if meds.get((mode, k)) is not None and meds.get(("raw", k)) is not None]
    return max(diffs) if diffs else None


def targets(rows, meds):
    """The issue's targets, read off the samples (never a pass/fail)."""
    lines = []
    gaps = by_mode(rows, "gap_ms")
    lost = by_mode(rows, "lost")
    raw_st, bt_st, cl_st = (stats(gaps.get(m, [])) for m in ("raw", "bt", "classic"))
    if bt_st:
        bl = [v for v in lost.get("bt", []) if v is not None]
        lines.append("bt packets lost: 0 in %d/%d runs (lost per run: %s)"
                     % (sum(1 for v in bl if v == 0), len(bl),
                        " ".join(str(v) for v in bl)))
    if bt_st and raw_st:
        lim = 1.2 * raw_st[0]
        within = sum(1 for v in gaps["bt"] if v is not None and v <= lim)
        # the floor's own spread: how often the floor stays within the limit
        raw_within = sum(1 for v in gaps["raw"] if v is not None and v <= lim)
        lines.append("bt largest gap: median %.1f ms (%.2fx the raw floor's), max %.1f ms;"
                     " 1.2 x raw floor median (%.1f ms) = %.1f ms: within it in %d/%d runs"
                     " (the raw floor's own runs: %d/%d)"
                     % (bt_st[0], bt_st[0] / raw_st[0], bt_st[2], raw_st[0], lim,
                        within, bt_st[3], raw_within, raw_st[3]))
    if bt_st and cl_st:
        lines.append("bt largest gap vs classic median %.1f ms: bt median %.2fx, bt max %.2fx"
                     " (target: at most 0.5x)"
                     % (cl_st[0], bt_st[0] / cl_st[0], bt_st[2] / cl_st[0]))
    walls = by_mode(rows, "wall_ms")
    raw_w = stats(walls.get("raw", []))
    for m in ("classic", "bt", "upgrade"):
        st = stats(walls.get(m, []))
        if st and raw_w:
            big = biggest_phase(meds, m) if meds else None
            lines.append("%s adds %d ms of wall time over the raw floor (median %d vs %d ms)%s"
                         % (m, round(st[0] - raw_w[0]), round(st[0]), round(raw_w[0]),
                            "; biggest phase: %s (%+d ms)" % (big[1], round(big[0]))
                            if big else ""))
    return lines


def plot(rows, modes, out_dir, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: python3-matplotlib is not installed"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8),
                                   gridspec_kw={"width_ratios": [1, 1.4]})
    gaps = by_mode(rows, "gap_ms")
    sw = by_mode(rows, "switch_gap_ms")
    for i, m in enumerate(modes):
        for vals, dx, mark, label in ((gaps.get(m, []), -0.12, "o", "largest gap"),
                                      (sw.get(m, []), 0.12, "x", "gap at the switchover")):
            vals = [v for v in vals if v is not None]
            n = len(vals)
            xs = [i + dx + (k - (n - 1) / 2) * 0.04 for k in range(n)]
            ax1.scatter(xs, vals, marker=mark, color="C0" if mark == "o" else "C1",
                        zorder=3, label=label if i == 0 else None)
            if vals:
                med = statistics.median(vals)
                ax1.plot([i + dx - 0.1, i + dx + 0.1], [med, med], color="black", lw=1)
    raw = [v for v in gaps.get("raw", []) if v is not None]
    if raw:
        med = statistics.median(raw)
        ax1.axhline(med, color="grey", ls="--", lw=1, label="raw floor median")
        ax1.axhline(1.2 * med, color="red", ls=":", lw=1, label="1.2 x raw floor median")
        ax1.legend(loc="upper left", fontsize=8)
    ax1.set_xticks(range(len(modes)))
    ax1.set_xticklabels([MODE_TITLE.get(m, m) for m in modes], rotation=15, fontsize=8)
    ax1.set_ylabel("gap between ping replies [ms]")
    ax1.set_ylim(bottom=0)
    ax1.set_title("ping gaps per run (bar: median)", fontsize=10)

    # one run per mode (the one with the median gap): gap to the previous
    # reply over time, 0 = when the gap ended
    for m in modes:
        ok = [r for r in rows if r["ok"] and r["mode"] == m and r.get("gap_ms") is not None]
        if not ok:
            continue
        ok.sort(key=lambda r: r.get("switch_gap_ms") or r["gap_ms"])
        r = ok[len(ok) // 2]
        tl = ping_timeline(os.path.join(out_dir, "runs", r["run"], "ping.log"))
        end = r.get("t_resume") or (max(tl, key=lambda x: x[1])[0] if tl else 0)
        pts = [((t - end) * 1000, g) for t, g in tl if -300 <= (t - end) * 1000 <= 300]
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", ms=3, lw=0.8,
                 label="%s (%s)" % (MODE_TITLE.get(m, m), r["run"]))
    ax2.set_xlabel("reply time relative to the new QEMU's RESUME event [ms]")
    ax2.set_ylabel("gap to the previous reply [ms]")
    ax2.set_title("ping replies around the switchover (median run per mode)", fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def downtime_limit(machine):
    ms = machine.get("max_downtime", "0")
    return ("QEMU's default downtime limit" if ms in ("", "0")
            else "downtime limit %s ms in every mode" % ms)


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1:
        sys.stderr.write(__doc__)
        return 2
    out_dir = args[0]
    machine = read_kv(os.path.join(out_dir, "machine.env"))
    rows = load(out_dir)
    if not rows:
        sys.stderr.write("report: no runs in %s\n" % out_dir)
        return 1
    all_rows = rows
    modes = modes_of(rows)
    mem_head, mem_body = memory_rows(rows)
    mem_targets = memory_targets(rows)
    # the main table and its targets: the runs without a RAM size
    rows = [r for r in rows if "@" not in r["mode"]]

    keys = ["run", "mode", "iteration", "ok", "foreign_qemus", "busy_before", "loadavg",
            "ram_mib", "ram_sent_mib"] + [k for k, _, _ in FIGURES] + \
        ["sent", "received", "mem_rss_peak_mib", "mem_used_mib", "mem_pcp_max_mib",
         "mem_boost_max_mib", "mem_samples"] + \
        ["phase_%s_ms" % k for k, _ in PHASES]
    with open(os.path.join(out_dir, "samples.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in all_rows:
            w.writerow({k: ("%.3f" % r[k] if isinstance(r.get(k), float) else r.get(k))
                        for k in keys})
    with open(os.path.join(out_dir, "samples.json"), "w") as f:
        json.dump({"machine": machine, "runs": all_rows}, f, indent=1, sort_keys=True)

    counts = {m: (sum(1 for r in rows if r["mode"] == m and r["ok"]),
                  sum(1 for r in rows if r["mode"] == m)) for m in modes}
    head = ["figure: median (min-max)"] + ["%s %d/%d" % (m, *counts[m]) for m in modes]
    body = figure_rows(rows, modes)
    ph_head, ph_body, meds = phase_rows(rows, modes)
    tlines = targets(rows, meds)

    desc = ["%s on %s (%s cores, %s), %s; %s; %s; %s; ping every %s s; %s; %s"
            % (machine.get("date", "?"), machine.get("cpu", "?"), machine.get("cores", "?"),
               machine.get("accel", machine.get("kvm", "?")), machine.get("kernel", "?"),
               machine.get("qemu_reference", "?"), machine.get("qemu_stock", "?"),
               "libvirt " + re.sub(r"^libvirt ", "", machine.get("libvirt", "?")),
               machine.get("ping_interval", "?"), downtime_limit(machine),
               "commit " + machine.get("commit", "?"))]
    lines = desc + [""]
    if modes:
        lines += text_table(head, body) + [""] + \
            text_table(ph_head, ph_body) + [""] + ["target: " + t for t in tlines]
    mem_lines = []
    if mem_body:
        mem_lines = ["memory: guest RAM a shared file in a tmpfs (a shared memfd for cpr-transfer), %s %% of it rewritten"
                     " every second or so; median (min-max)" % machine.get("dirty_pct", "?")]
        lines += [""] + mem_lines + text_table(mem_head, mem_body) + [""] + \
            ["target: " + t for t in mem_targets]
    busy = [r["run"] for r in all_rows if r.get("foreign_qemus") or
            (r.get("busy_before") or 0) > 20]
    if busy:
        lines.append("WARNING: other QEMUs or >20% CPU busy on the host before: " + " ".join(busy))
    failed = [r["run"] for r in all_rows if not r["ok"]]
    if failed:
        lines.append("failed runs (left out of the figures): " + " ".join(failed))
    notes = []
    if "--no-plot" in argv:
        notes.append("no plot (--no-plot)")
    else:
        if modes:
            notes.append(plot(rows, modes, out_dir, os.path.join(out_dir, "gaps.png")))
        if mem_body:
            notes.append(plot_memory(all_rows, os.path.join(out_dir, "memory.png")))
    lines += [n for n in notes if n]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "table.txt"), "w") as f:
        f.write(text)
    rst = ["Run of %s, commit %s, %s iteration(s) of the modes interleaved."
           % (machine.get("date", "?"), machine.get("commit", "?"), machine.get("runs", "?")),
           "",
           "Machine: %s, %s cores, %s, %s, %s RAM; %s (reference); %s; libvirt %s;"
           " guest %s; ping every %s s; %s; libvirt debug log %s."
           % (machine.get("cpu", "?"), machine.get("cores", "?"), machine.get("accel", machine.get("kvm", "?")),
              machine.get("kernel", "?"), machine.get("memory", "?"),
              machine.get("qemu_reference", "?"), machine.get("qemu_stock", "?"),
              re.sub(r"^libvirt ", "", machine.get("libvirt", "?")), machine.get("guest", "?"),
              machine.get("ping_interval", "?"), downtime_limit(machine),
              "on" if machine.get("debug_log", "1") == "1" else "off"),
           ""]
    if modes:
        rst += rst_table(head, body) + [""] + rst_table(ph_head, ph_body) + [""] + \
            ["- " + t for t in tlines]
    if mem_body:
        rst += [""] + mem_lines + [""] + rst_table(mem_head, mem_body) + [""] + \
            ["- " + t for t in mem_targets]
    with open(os.path.join(out_dir, "table.rst"), "w") as f:
        f.write("\n".join(rst) + "\n")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
