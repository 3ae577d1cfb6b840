#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# libvirt's syntax-check over the assembled tree, our files and patches
# included: the same style gate a patch to upstream libvirt must pass.
#
# syntax-check only exists in a git checkout (it lists files with git), so
# it runs on a scratch git index of the assembled tree. keycodemapdb is a
# git submodule upstream, which syntax-check never sees; it stays out here
# too. Each sc_ rule is one TAP point.
set -uo pipefail
top=${LOCALMIG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/build-aux/common.sh"
. "$top/tests/e2e/lib/common.sh"

[ -f "$LIBVIRT_SRCDIR/meson.build" ] ||
    tap_skip_all "libvirt is not assembled; run ./localmig build"
command -v git >/dev/null || tap_skip_all "git is not installed"

lm_tmpdir
# Hard links: nothing below writes to the source tree.
cp -al "$LIBVIRT_SRCDIR" "$LM_TMP/src" 2>/dev/null ||
    cp -a "$LIBVIRT_SRCDIR" "$LM_TMP/src"
(
    cd "$LM_TMP/src" &&
    git init -q &&
    echo /subprojects/keycodemapdb/ >.git/info/exclude &&
    git add -A &&
    git -c user.name=localmig -c user.email=localmig@localhost \
        commit -q -m "assembled tree"
) || tap_bail "cannot make a git index of the tree"

export PATH=/usr/bin:$PATH
meson setup "$LM_TMP/build" "$LM_TMP/src" "${LIBVIRT_MESON_OPTIONS[@]}" \
    >"$LM_TMP/setup.log" 2>&1 || {
    tap_diag "$(tail -n 20 "$LM_TMP/setup.log")"
    tap_bail "meson setup failed"
}
meson test -C "$LM_TMP/build" --suite syntax-check \
    --num-processes "${LOCALMIG_JOBS:-2}" >"$LM_TMP/test.log" 2>&1

python3 - "$LM_TMP/build/meson-logs/testlog.json" <<'PY'
import json
import sys

entries = [json.loads(line) for line in open(sys.argv[1])]
failed = 0
print("1..%d" % len(entries))
for n, e in enumerate(entries, 1):
    name = e["name"].split(" / ")[-1]
    if e["result"] == "OK":
        print("ok %d - sc_%s" % (n, name))
        continue
    failed += 1
    print("not ok %d - sc_%s" % (n, name))
    out = (e.get("stdout") or "") + (e.get("stderr") or "")
    for line in out.strip().splitlines()[-12:]:
        if not line.startswith("make: "):
            print("# " + line)
sys.exit(1 if failed or not entries else 0)
PY
