#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The one reader of `virt-tap-info --json` for the tests: its output on
# standard input, one view of it on standard output.
#
#   holders   the pids holding any of the TAPs, sorted: "PID PID "
#   queues    each holder with its queues: "PID queues=N ... "
#   ident     each TAP: "NAME IFINDEX MASTER (port P) " or "NAME IFINDEX none "
#   summary   one line per TAP: "NAME, ifindex I, port P of M, held by PID (COMM)"

import json
import sys


def main(view):
    taps = json.load(sys.stdin)
    if view == "holders":
        pids = sorted({h["pid"] for t in taps for h in t["holders"]})
        sys.stdout.write("".join("%d " % p for p in pids))
    elif view == "queues":
        sys.stdout.write("".join("%d queues=%d " % (h["pid"], len(h["queues"]))
                                 for t in taps for h in t["holders"]))
    elif view == "ident":
        for t in taps:
            where = ("%s (port %s)" % (t["master"], t["port"] or "?")
                     if t["master"] else "none")
            sys.stdout.write("%s %d %s " % (t["tap"], t["ifindex"], where))
    elif view == "summary":
        for t in taps:
            held = ", ".join("%d (%s)" % (h["pid"], h.get("comm") or "?")
                             for h in t["holders"])
            print("%s, ifindex %d, port %s of %s, held by %s"
                  % (t["tap"], t["ifindex"], t["port"], t["master"], held))
    else:
        sys.exit("tapinfo.py: unknown view '%s'" % view)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "holders")
