#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Count every test of one or more meson runs and print the closing line
#
#   test-summary.py --exitcode libvirt/meson-logs/testlog.json \
#                   --tap localmig/meson-logs/testlog.json
#
#   N passed, N failed, N skipped
#
# A libvirt test program counts once, by its meson result. A TAP program of
# ours counts each test point it printed; one that died before printing a
# point (or printed fewer than its plan) counts the missing ones as failed.
#
# On standard error, each failed program's name, and for a TAP program its
# "not ok" lines with the diagnostics after them: CI shows only the end of
# its log, and this is what says what failed.

import json
import re
import sys

PASS = {"OK", "EXPECTEDFAIL"}
SKIP = {"SKIP"}

TAP_LINE = re.compile(r"^(not ok|ok)\b(.*)$")
TAP_PLAN = re.compile(r"^1\.\.(\d+)")
# at most this many diagnostic lines after one "not ok"
DIAG_LINES = 6


def failed_points(entry):
    """The "not ok" lines of a TAP output, each with its first diagnostics."""
    out = []
    diag = None
    for line in (entry.get("stdout") or "").splitlines():
        if line.startswith("not ok"):
            out.append(line)
            diag = 0
        elif diag is not None and line.startswith("#") and diag < DIAG_LINES:
            out.append(line)
            diag += 1
        elif TAP_LINE.match(line):
            diag = None
    return out


def count_tap(entry):
    passed = failed = skipped = 0
    planned = None
    for line in (entry.get("stdout") or "").splitlines():
        m = TAP_PLAN.match(line)
        if m:
            planned = int(m.group(1))
            continue
        m = TAP_LINE.match(line)
        if not m:
            continue
        directive = m.group(2).upper()
        if "# SKIP" in directive:
            skipped += 1
        elif m.group(1) == "ok":
            passed += 1
        else:
            failed += 1
    seen = passed + failed + skipped
    if planned is not None and seen < planned:
        failed += planned - seen
    if seen == 0 and not planned:
        if entry["result"] in PASS:
            passed = 1
        elif entry["result"] in SKIP:
            skipped = 1
        else:
            failed = 1
    elif entry["result"] not in PASS | SKIP and failed == 0:
        # the program failed (crash, timeout) after printing good points
        failed = 1
    return passed, failed, skipped


def main(args):
    # meson's log does not record the protocol: the caller says it, as
    # --exitcode LOG or --tap LOG
    passed = failed = skipped = 0
    for protocol, path in zip(args[::2], args[1::2]):
        with open(path) as fh:
            for line in fh:
                entry = json.loads(line)
                if protocol == "--tap":
                    p, f, s = count_tap(entry)
                elif entry["result"] in PASS:
                    p, f, s = 1, 0, 0
                elif entry["result"] in SKIP:
                    p, f, s = 0, 0, 1
                else:
                    p, f, s = 0, 1, 0
                if f:
                    print("FAILED: %s" % entry["name"], file=sys.stderr)
                    if protocol == "--tap":
                        for line in failed_points(entry):
                            print("  " + line[:300], file=sys.stderr)
                passed += p
                failed += f
                skipped += s
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
