#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Our translatable messages must reach libvirt's translation domain: every
# file of ours that marks a string with _() or N_() is listed in the
# assembled po/POTFILES, and xgettext, run the way libvirt's po/meson.build
# runs it, extracts every such string from it.
set -uo pipefail
top=${LOCALMIG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/build-aux/common.sh"

. "$top/tests/e2e/lib/common.sh"

potfiles=$LIBVIRT_SRCDIR/po/POTFILES
if [ ! -f "$potfiles" ]; then
    tap_skip_all "libvirt is not assembled; run ./localmig build"
fi

cd "$top"
mapfile -t files < <(grep -rlE '\bN?_\("' src include tools 2>/dev/null | LC_ALL=C sort)
tap_plan $(( ${#files[@]} * 2 + 1 ))

if [ ${#files[@]} -gt 0 ]; then
    tap_ok "${#files[@]} file(s) of ours have translatable strings"
else
    tap_not_ok "no file of ours has a translatable string"
fi

for f in "${files[@]}"; do
    if grep -qxF "$f" "$potfiles"; then
        tap_ok "$f is listed in po/POTFILES"
    else
        tap_not_ok "$f is missing from po/POTFILES (add it in the po patch)"
    fi

    pot=$(xgettext --from-code=UTF-8 --keyword=_ --keyword=N_ --no-wrap \
              --directory="$LIBVIRT_SRCDIR" --output=- "$f" 2>&1)
    # Each literal passed to _() must come out as a msgid. The regex
    # covers single-line literals, which is what libvirt's style asks for.
    missing=0
    while IFS= read -r msg; do
        grep -qF "msgid \"$msg\"" <<<"$pot" || { missing=$((missing + 1));
            tap_diag "not extracted: $msg"; }
    done < <(grep -oE '\bN?_\("([^"\\]|\\.)*"\)' "$f" |
             sed -E 's/^N?_\("//; s/"\)$//')
    if [ $missing -eq 0 ]; then
        tap_ok "xgettext extracts every message of $f"
    else
        tap_not_ok "xgettext misses $missing message(s) of $f"
    fi
done
