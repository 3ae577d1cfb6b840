#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The assembly of the libvirt tree (build-aux/assemble.sh) keeps its
# promises: our files land in the tree, every patch is applied, a file of
# ours that would replace an upstream file and a patch that does not apply
# are both refused with a message, and a re-run with nothing changed writes
# nothing. Works on a scratch copy of this repository.
set -uo pipefail
top=${LOCALMIG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/build-aux/common.sh"

. "$top/tests/e2e/lib/common.sh"

scratch=$(mktemp -d)
lm_defer rm -rf "$scratch"
repo=$scratch/repo
export LOCALMIG_BUILD_ROOT=$scratch/build
src=$LOCALMIG_BUILD_ROOT/libvirt-src

tap_plan 8

mkdir -p "$repo"
(cd "$top" && cp -r build-aux patches $LOCALMIG_OVERLAY_DIRS "$repo"/ 2>/dev/null)
rm -rf "$repo/tests/e2e" "$repo/tests/build"

tap_check "the tree assembles" "$repo/build-aux/assemble.sh" 2>"$scratch/err"

missing=0
while read -r f; do
    cmp -s "$repo/$f" "$src/$f" || { tap_diag "not in the tree: $f"; missing=1; }
done < <(cd "$repo" && find $LOCALMIG_OVERLAY_DIRS -type f ! -name .gitignore)
tap_check "every file of ours is in the tree" test $missing = 0

# Later patches may change lines an earlier one added, so the series is
# undone from its last patch back, on a copy of the files it touches: each
# patch must come off cleanly where the patches after it left the tree.
undo=$scratch/undo
unapplied=0
sed -n 's|^+++ b/||p' "$repo"/patches/*.patch | sort -u | while read -r f; do
    [ -f "$src/$f" ] || continue
    mkdir -p "$undo/$(dirname "$f")"
    cp "$src/$f" "$undo/$f"
done
mapfile -t series < <(printf '%s\n' "$repo"/patches/*.patch | sort -r)
for p in "${series[@]}"; do
    [ -e "$p" ] || continue
    patch -d "$undo" -p1 -R --fuzz=0 --batch --quiet --no-backup-if-mismatch <"$p" \
        >/dev/null 2>&1 || { tap_diag "not applied: ${p##*/}"; unapplied=1; break; }
done
tap_check "every patch of the series is applied" test $unapplied = 0

touch "$scratch/before"
sleep 1
"$repo/build-aux/assemble.sh" 2>/dev/null
changed=$(find "$src" -newer "$scratch/before" | head -n 5)
tap_check "a re-run with nothing changed writes nothing" test -z "$changed"

# An edit to one file of ours touches that file only, so ninja rebuilds
# only what depends on it.
mkdir -p "$repo/src/util"
echo "/* scratch */" >"$repo/src/util/virlocalmigscratch.h"
"$repo/build-aux/assemble.sh" 2>/dev/null
changed=$(find "$src" -type f -newer "$scratch/before")
tap_check "an added file changes only that file in the tree" \
    test "$changed" = "$src/src/util/virlocalmigscratch.h"
rm "$repo/src/util/virlocalmigscratch.h"

mkdir -p "$repo/src/qemu"
echo "/* not ours */" >"$repo/src/qemu/qemu_driver.c"
"$repo/build-aux/assemble.sh" 2>"$scratch/err"
rc=$?
tap_check "a file of ours that would replace an upstream file is refused" \
    grep -q "qemu_driver.c would overwrite" "$scratch/err"
tap_check "and the assembly fails" test $rc != 0
rm "$repo/src/qemu/qemu_driver.c"

cat >"$repo/patches/9999-does-not-fit.patch" <<'PATCH'
--- a/README.rst
+++ b/README.rst
@@ -1,3 +1,3 @@
-This line is not in libvirt's README
+so this patch cannot apply
 nor is this one
 or this one
PATCH
"$repo/build-aux/assemble.sh" 2>"$scratch/err"
rc=$?
if [ $rc != 0 ] && grep -q "9999-does-not-fit.patch does not apply" "$scratch/err"; then
    tap_ok "a patch that does not apply fails the assembly, naming the patch"
else
    tap_not_ok "a patch that does not apply fails the assembly, naming the patch"
fi

