#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""rawmig: the raw floor, one local migration with backend transfer driven
over QMP directly, no libvirt.

  rawmig.py [--ignore-shared | --cpr CPR_SOCK MAIN_SOCK] [--max-downtime MS]
            SRC_QMP SRC_PID DST_QMP DST_LOG -- QEMU ARGS...

--max-downtime: the source's downtime-limit (what virsh
migrate-setmaxdowntime sets); QEMU's default without it.
--ignore-shared: x-ignore-shared on both sides (both map the guest's RAM
from one shared file: it is not sent).
--cpr: migration mode cpr-transfer (QEMU 10.0): the destination's command
line has a second -incoming, the CPR channel on CPR_SOCK; the source's
migrate sends it the CPR state (the RAM's memfds, the taps' fds with
cpr=on) there, then the stream over MAIN_SOCK, where the destination's
migrate-incoming listens.  The destination's monitor answers only once it
has the CPR state, so t_qmp is when its CPR channel listens, t_monitor
when its QMP answers, and backend-transfer is not set (the taps have
cpr=on).
SRC_QMP/SRC_PID: the running QEMU (its virtio-net has backend-transfer=on).
QEMU ARGS: the destination's command line (a tap netdev with
incoming-fds=on, -incoming defer, no -S: it runs as soon as the state is
in, the quickest a switchover can be).  Steps, each timestamped:

  t_launch     the destination is executed
  t_qmp        its QMP answers (qmp_capabilities done)
  t_migrate    backend-transfer set on both (and no bandwidth cap on the
               source, as libvirt does), the socket pair handed over
               (getfd on both, migrate-incoming fd:), `migrate` sent
  t_completed  the source's MIGRATION event says completed (the "events"
               capability is on, as libvirt sets it) and was received
  t_running    the destination's RESUME event was received
  t_quit       `quit` sent to the source
  t_gone       the source process is gone

and from QEMU's own event timestamps (microseconds): t_stop (the source's
STOP), t_src_completed (its MIGRATION completed) and t_resume (the
destination's RESUME), t_passN (when pass N over the memory began).
Prints these and the source's figures (downtime, total_time, setup_time,
transferred, downtime_bytes: sent after the stop, dirty_sync_count) as
key=value lines, then dst_pid.  Exit 1 if the migration did not
complete.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "qemu", "tests"))
import lmqmp  # noqa: E402  (the reference QEMU tests' QMP client)


UNLIMITED = 1 << 62     # bytes/s


def connect(path, timeout=20.0):
    deadline = time.time() + timeout
    while True:
        try:
            return lmqmp.QMP(path)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.005)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_event(q, name, statuses, timeout=120.0):
    """Wait for event NAME (with data.status in STATUSES) on QMP q; returns
    its status (or True)."""
    q.sock.settimeout(timeout)
    seen = 0
    while True:
        for ev in q.events[seen:]:
            if ev.get("event") == name:
                status = ev.get("data", {}).get("status")
                if statuses is None:
                    return True
                if status in statuses:
                    return status
        seen = len(q.events)
        msg = q._read()
        if "event" in msg:
            q.events.append(msg)


def event_time(events, name, status):
    """QEMU's timestamp of the first event NAME (with data.status STATUS)."""
    for ev in events:
        if ev.get("event") != name:
            continue
        if status and ev.get("data", {}).get("status") != status:
            continue
        ts = ev["timestamp"]
        return ts["seconds"] + ts["microseconds"] / 1e6
    return None


def main(argv):
    max_downtime = None
    ignore_shared = False
    cpr = None
    while argv[:1] in (["--max-downtime"], ["--ignore-shared"], ["--cpr"]):
        if argv[0] == "--ignore-shared":
            ignore_shared = True
            argv = argv[1:]
        elif argv[0] == "--cpr" and len(argv) > 2:
            cpr = (argv[1], argv[2])
            argv = argv[3:]
        elif argv[0] == "--max-downtime" and len(argv) > 1:
            max_downtime = int(argv[1])
            argv = argv[2:]
        else:
            break
    if len(argv) < 6 or argv[4] != "--":
        sys.stderr.write(__doc__)
        return 2
    src_qmp, src_pid, dst_qmp, dst_log = argv[0], int(argv[1]), argv[2], argv[3]
    cmd = argv[5:]
    t = {}

    t["t_launch"] = time.time()
    with open(dst_log, "w") as log:
        dst_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    start_new_session=True)
    if cpr:
        wait_socket(cpr[0])
        t["t_qmp"] = time.time()
        src = lmqmp.QMP(src_qmp)
        src.cmd("migrate-set-capabilities", {"capabilities": [
            {"capability": "events", "state": True}]})
        params = {"mode": "cpr-transfer", "max-bandwidth": UNLIMITED}
        if max_downtime:
            params["downtime-limit"] = max_downtime
        src.cmd("migrate-set-parameters", params)
        t["t_migrate"] = time.time()
        src.cmd("migrate", {"channels": [
            {"channel-type": "main", "addr": unix_addr(cpr[1])},
            {"channel-type": "cpr", "addr": unix_addr(cpr[0])}]})
        dst = connect(dst_qmp)
        t["t_monitor"] = time.time()
        dst.cmd("migrate-incoming", {"uri": "unix:" + cpr[1]})
        return finish(t, src, src_pid, dst, dst_proc)

    dst = connect(dst_qmp)
    t["t_qmp"] = time.time()
    src = lmqmp.QMP(src_qmp)
    src.cmd("migrate-set-capabilities", {"capabilities": [
        {"capability": "events", "state": True}]})
    if ignore_shared:
        for q in (src, dst):
            q.cmd("migrate-set-capabilities", {"capabilities": [
                {"capability": "x-ignore-shared", "state": True}]})

    # the stream's settings libvirt uses for a local migration: no
    # bandwidth cap on the source (QEMU's default is 128 MiB/s), the
    # downtime limit the libvirt modes get; backend transfer on both sides
    params = {"backend-transfer": True, "max-bandwidth": UNLIMITED}
    if max_downtime:
        params["downtime-limit"] = max_downtime
    src.cmd("migrate-set-parameters", params)
    dst.cmd("migrate-set-parameters", {"backend-transfer": True})
    lmqmp.fd_channel(src, dst)
    t["t_migrate"] = time.time()
    src.cmd("migrate", {"uri": "fd:migrate"})
    return finish(t, src, src_pid, dst, dst_proc)


def unix_addr(path):
    return {"transport": "socket", "type": "unix", "path": path}


def wait_socket(path, timeout=20.0):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise OSError("%s did not appear" % path)
        time.sleep(0.002)


def finish(t, src, src_pid, dst, dst_proc):
    """From a started migration on: wait for it, quit the source, print
    the figures."""
    # wait on the events (no polling that would compete with the
    # migration for QEMU's main loop)
    status = wait_event(src, "MIGRATION", ("completed", "failed", "cancelled"))
    t["t_completed"] = time.time()
    info = src.cmd("query-migrate")
    if status == "completed":
        wait_event(dst, "RESUME", None)
    t["t_running"] = time.time()

    t["t_quit"] = time.time()
    try:
        src.cmd("quit")
    except lmqmp.QMPError:
        pass            # the connection may close before the reply
    src.close()
    while alive(src_pid):
        time.sleep(0.002)
    t["t_gone"] = time.time()
    dst.close()

    for name, q, want in (("t_stop", src, ("STOP", None)),
                          ("t_src_completed", src, ("MIGRATION", "completed")),
                          ("t_resume", dst, ("RESUME", None))):
        ts = event_time(q.events, *want)
        if ts is not None:
            t[name] = ts
    for key, val in t.items():
        print("%s=%.6f" % (key, val))
    print("status=%s" % status)
    for key in ("downtime", "total-time", "setup-time"):
        if key in info:
            print("%s=%s" % (key.replace("-", "_"), info[key]))
    ram = info.get("ram", {})
    for key in ("transferred", "downtime-bytes", "dirty-sync-count"):
        if key in ram:
            print("%s=%d" % (key.replace("-", "_"), ram[key]))
    # when each pass over the guest's memory began (QEMU's clock): the
    # last one's length is what the guest had to dirty before the stop
    for ev in src.events:
        if ev.get("event") == "MIGRATION_PASS":
            ts = ev["timestamp"]
            print("t_pass%d=%.6f" % (ev["data"]["pass"],
                                     ts["seconds"] + ts["microseconds"] / 1e6))
    print("dst_pid=%d" % dst_proc.pid)
    return 0 if status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
