#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""lmqmp: a minimal QMP client for the reference QEMU tests.

Commands (SOCK is a QEMU QMP UNIX socket path):

  lmqmp.py SOCK cmd NAME [JSON]     run one command, print its "return" as
                                    JSON; on a QMP error print its "desc" to
                                    stdout and exit 1
  lmqmp.py SOCK schema-has PATH     exit 0 when the QMP schema has PATH, e.g.
                                    migrate-set-parameters/arg-type/backend-transfer
                                    or netdev_add/arg-type/+tap/incoming-fds
  lmqmp.py SOCK wait-migration [S]  poll query-migrate until the migration is
                                    completed or failed (timeout S, default 60)
                                    and print its key=value summary; exit 1
                                    unless completed
  lmqmp.py SOCK wait-status STATUS [S]
                                    wait until query-status says STATUS
  lmqmp.py migrate-fd SRC DST       migrate SRC to DST over a socketpair whose
                                    ends are handed over with getfd and used as
                                    fd: URIs, the way libvirt does it; returns
                                    once both sides have the channel (check the
                                    result with wait-migration)

No third-party modules: the tests run with Debian's /usr/bin/python3.
"""

import array
import json
import socket
import sys
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self._read()                  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QMPError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None, fds=None):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        data = json.dumps(msg).encode() + b"\n"
        if fds:
            self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                        array.array("i", fds))])
        else:
            self.sock.sendall(data)
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise QMPError(reply["error"].get("desc", str(reply["error"])))
            return reply.get("return")

    def close(self):
        self.sock.close()


def schema_has(qmp, path):
    schema = {e["name"]: e for e in qmp.cmd("query-qmp-schema")}
    parts = path.split("/")
    node = schema.get(parts[0])
    if node is None:
        return False
    for part in parts[1:]:
        if part in ("arg-type", "ret-type"):
            node = schema.get(node.get(part))
        elif part.startswith("+"):
            cases = {v["case"]: v["type"] for v in node.get("variants", [])}
            node = schema.get(cases.get(part[1:]))
        else:
            members = {m["name"]: m for m in node.get("members", [])}
            if part not in members:
                return False
            node = schema.get(members[part]["type"], members[part])
        if node is None:
            return False
    return True


def wait_migration(qmp, timeout):
    deadline = time.time() + timeout
    while True:
        info = qmp.cmd("query-migrate")
        status = info.get("status", "none")
        if status in ("completed", "failed", "cancelled"):
            break
        if time.time() > deadline:
            print("status=timeout")
            return 1
        time.sleep(0.02)
    ram = info.get("ram", {})
    print("status=%s" % status)
    for key in ("total-time", "downtime", "setup-time"):
        if key in info:
            print("%s=%s" % (key, info[key]))
    if "transferred" in ram:
        print("transferred=%s" % ram["transferred"])
    if "error-desc" in info:
        print("error-desc=%s" % info["error-desc"])
    return 0 if status == "completed" else 1


def wait_status(qmp, want, timeout):
    deadline = time.time() + timeout
    while True:
        status = qmp.cmd("query-status")["status"]
        if status == want:
            return 0
        if time.time() > deadline:
            print("status=%s" % status)
            return 1
        time.sleep(0.02)


def fd_channel(src, dst):
    """Join SRC and DST (QMP) by a socketpair whose ends each gets as fd
    "migrate" (getfd), and start DST's incoming side on it: SRC's
    `migrate` to "fd:migrate" is what is left."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    dst.cmd("getfd", {"fdname": "migrate"}, fds=[b.fileno()])
    src.cmd("getfd", {"fdname": "migrate"}, fds=[a.fileno()])
    a.close()
    b.close()
    dst.cmd("migrate-incoming", {"uri": "fd:migrate"})


def migrate_fd(src_path, dst_path):
    src, dst = QMP(src_path), QMP(dst_path)
    fd_channel(src, dst)
    src.cmd("migrate", {"uri": "fd:migrate"})
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "migrate-fd":
        return migrate_fd(argv[1], argv[2])
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    path, what, rest = argv[0], argv[1], argv[2:]
    try:
        qmp = QMP(path)
    except (OSError, QMPError) as e:
        print("cannot talk to QMP at %s: %s" % (path, e))
        return 1
    try:
        if what == "cmd":
            args = json.loads(rest[1]) if len(rest) > 1 else None
            print(json.dumps(qmp.cmd(rest[0], args)))
            return 0
        if what == "schema-has":
            return 0 if schema_has(qmp, rest[0]) else 1
        if what == "wait-migration":
            return wait_migration(qmp, float(rest[0]) if rest else 60)
        if what == "wait-status":
            return wait_status(qmp, rest[0],
                               float(rest[1]) if len(rest) > 1 else 60)
    except QMPError as e:
        print(e)
        return 1
    finally:
        qmp.close()
    sys.stderr.write("lmqmp: unknown command %s\n" % what)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
