#!/bin/bash
# virsh's job watcher and a job that ends at once: `virsh migrate` runs the
# migration in a worker thread and watches it from a main loop; a worker
# that was refused before the loop ran quit the loop too early, and virsh
# then waited forever (4 of 200 refused `migrate --local` runs hung before
# the fix, 0 after). This runs refusals of the test driver, which are
# instant, and fails if any of them hangs. No guest, no root. TAP output.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$LM_LIB_DIR/libvirt.sh"

RUNS=${VIRSH_WATCH_RUNS:-100}
lv_have_build || tap_skip_all "no libvirt build at $LIBVIRT_BUILDDIR"
tap_plan 2

hung=0 refused=0
for ((i = 0; i < RUNS; i++)); do
    rc=0
    timeout 10 "$LIBVIRT_BUILDDIR/run" "$LIBVIRT_BUILDDIR/tools/virsh" -q \
        -c test:///default migrate --live --local test >/dev/null 2>&1 || rc=$?
    case $rc in
        124) hung=$((hung + 1)) ;;
        0) ;;
        *) refused=$((refused + 1)) ;;
    esac
done
tap_expect "the test driver refuses every migrate --local ($RUNS runs)" "$RUNS" "$refused"
tap_expect "no refused migrate hangs in virsh's job watcher" 0 "$hung"
