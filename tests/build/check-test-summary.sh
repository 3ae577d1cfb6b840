#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# build-aux/test-summary.py counts what CI reports: each libvirt test
# program once by its result, each TAP point of ours once, a TAP program
# that died early or short of its plan as failed.
set -uo pipefail
top=${LOCALMIG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}

. "$top/tests/e2e/lib/common.sh"

scratch=$(mktemp -d)
lm_defer rm -rf "$scratch"

entry() {   # NAME RESULT STDOUT
    python3 -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "result": sys.argv[2], "stdout": sys.argv[3]}))' "$@"
}

tap_plan 8

{
    entry virbuftest OK ""
    entry qemuxmlconftest FAIL "boom"
    entry virschematest EXPECTEDFAIL ""
    entry vircgrouptest SKIP ""
} >"$scratch/exitcode.json"
{
    entry e2e OK $'1..3\nok 1 - a\nok 2 - b # SKIP no vhost\nnot ok 3 - c'
} >"$scratch/tap.json"

out=$(python3 "$top/build-aux/test-summary.py" --exitcode "$scratch/exitcode.json" \
      --tap "$scratch/tap.json" 2>/dev/null)
rc=$?
tap_expect "programs count by result, TAP points one by one" \
    "3 passed, 2 failed, 2 skipped" "$out"
tap_expect "any failure makes the exit status non-zero" 1 "$rc"

entry e2e ERROR $'1..3\nok 1 - a\nnot ok 2 - b\n# why b\nok 3 - c\n# not this' >"$scratch/why.json"
tap_expect "stderr names each failed point with its diagnostics, nothing else" \
    "$(printf 'FAILED: e2e\n  not ok 2 - b\n  # why b')" \
    "$(python3 "$top/build-aux/test-summary.py" --tap "$scratch/why.json" 2>&1 >/dev/null)"

entry short FAIL $'1..4\nok 1 - a\nok 2 - b' >"$scratch/short.json"
tap_expect "points missing from the plan count as failed" "2 passed, 2 failed, 0 skipped" \
    "$(python3 "$top/build-aux/test-summary.py" --tap "$scratch/short.json" 2>/dev/null)"

entry crashed TIMEOUT "" >"$scratch/crash.json"
tap_expect "a TAP program that printed nothing and failed counts once" \
    "0 passed, 1 failed, 0 skipped" \
    "$(python3 "$top/build-aux/test-summary.py" --tap "$scratch/crash.json" 2>/dev/null)"

entry died ERROR $'ok 1 - a\nok 2 - b' >"$scratch/died.json"
tap_expect "a TAP program that died after good points without a plan is a failure" \
    "2 passed, 1 failed, 0 skipped" \
    "$(python3 "$top/build-aux/test-summary.py" --tap "$scratch/died.json" 2>/dev/null)"

entry good OK $'1..2\nok 1 - a\nok 2 - b' >"$scratch/good.json"
python3 "$top/build-aux/test-summary.py" --tap "$scratch/good.json" >/dev/null 2>&1
tap_expect "a clean run exits 0" 0 "$?"

entry skipped SKIP $'1..0 # SKIP not root' >"$scratch/skipped.json"
tap_expect "a TAP program that skipped everything counts as one skip" \
    "0 passed, 0 failed, 1 skipped" \
    "$(python3 "$top/build-aux/test-summary.py" --tap "$scratch/skipped.json" 2>/dev/null)"

