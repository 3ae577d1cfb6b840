#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""taptool: look at the TAP file descriptors a process holds, read-only.

  taptool.py fds PID              one line per TAP fd of PID: "FD IFNAME",
                                  from /proc/PID/fdinfo ("iff:" line)
  taptool.py state PID FD         settings of that open TAP file, as
                                  key=value: ifname, tun flags, vnet header
                                  size, sndbuf, O_NONBLOCK
  taptool.py same PID1 FD1 PID2 FD2
                                  exit 0 when both are the same open file
                                  (kcmp KCMP_FILE), i.e. one was handed over

`state` reads through a duplicate of the process's own descriptor taken
with pidfd_getfd(2): the same open file, so the same tun queue and the same
settings.  It must not open /dev/net/tun and attach (TUNSETIFF) to look:
that would add a queue to the device, and a destination QEMU doing that is
what the tests check against.  Re-opening /proc/PID/fd/N would not do
either, it opens /dev/net/tun anew (an unattached tun file).  Only "get"
ioctls are used on the duplicate, which is closed at once.
"""

import ctypes
import fcntl
import os
import struct
import sys

SYS_KCMP = 312
SYS_PIDFD_GETFD = 438
KCMP_FILE = 0
TUNGETIFF = 0x800454d2
TUNGETSNDBUF = 0x800454d3
TUNGETVNETHDRSZ = 0x800454d7
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_MULTI_QUEUE = 0x0100

libc = ctypes.CDLL(None, use_errno=True)


def syscall(nr, *args):
    ret = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def tap_fds(pid):
    out = []
    for name in sorted(os.listdir("/proc/%d/fdinfo" % pid), key=int):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, name)) as f:
                for line in f:
                    if line.startswith("iff:"):
                        # empty for a detached multiqueue queue
                        out.append((int(name),
                                    line[4:].strip() or "(detached)"))
        except OSError:
            pass
    return out


def state(pid, fd):
    pidfd = os.pidfd_open(pid)
    try:
        dup = syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    finally:
        os.close(pidfd)
    try:
        ifr = bytearray(40)
        fcntl.ioctl(dup, TUNGETIFF, ifr)
        ifname = bytes(ifr[:16]).split(b"\0")[0].decode()
        flags = struct.unpack_from("H", ifr, 16)[0]
        hdr = bytearray(4)
        fcntl.ioctl(dup, TUNGETVNETHDRSZ, hdr)
        sndbuf = bytearray(4)
        fcntl.ioctl(dup, TUNGETSNDBUF, sndbuf)
        fl = fcntl.fcntl(dup, fcntl.F_GETFL)
    finally:
        os.close(dup)
    return [
        ("ifname", ifname),
        ("flags", "0x%04x" % flags),
        ("vnet_hdr", int(bool(flags & IFF_VNET_HDR))),
        ("multi_queue", int(bool(flags & IFF_MULTI_QUEUE))),
        ("vnet_hdr_sz", struct.unpack("i", hdr)[0]),
        ("sndbuf", struct.unpack("i", sndbuf)[0]),
        ("nonblock", int(bool(fl & os.O_NONBLOCK))),
    ]


def main(argv):
    if argv[:1] == ["fds"] and len(argv) == 2:
        for fd, ifname in tap_fds(int(argv[1])):
            print(fd, ifname)
        return 0
    if argv[:1] == ["state"] and len(argv) == 3:
        for k, v in state(int(argv[1]), int(argv[2])):
            print("%s=%s" % (k, v))
        return 0
    if argv[:1] == ["same"] and len(argv) == 5:
        p1, f1, p2, f2 = map(int, argv[1:])
        return 0 if syscall(SYS_KCMP, p1, p2, KCMP_FILE, f1, f2) == 0 else 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
