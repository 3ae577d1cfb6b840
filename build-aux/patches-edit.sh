#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Make an editable git tree of upstream libvirt with our series applied as
# commits, one per patch:
#
#   build-aux/patches-edit.sh [DIR]     (default: _build/libvirt-git)
#
# Edit, commit (amend or `git rebase -i upstream` to change a patch), then
# write the series back with build-aux/patches-export.sh. Our own files
# (src/, tests/, ...) are edited in this repository, not there.
set -euo pipefail
. "$(dirname "$0")/common.sh"

dir=${1:-$LOCALMIG_BUILD_ROOT/libvirt-git}
[ -e "$dir" ] && localmig_die "$dir exists; remove it or name another directory"

localmig_fetch_orig libvirt "$LIBVIRT_ORIG" "$LIBVIRT_SHA256"

mkdir -p "$dir"
tar -xJf "$LOCALMIG_CACHE/$LIBVIRT_ORIG" -C "$dir" --strip-components=1
cd "$dir"
git init -q
git config user.name "${GIT_AUTHOR_NAME:-libvirt-localmig}"
git config user.email "${GIT_AUTHOR_EMAIL:-localmig@localhost}"
git add -A
git commit -q -m "libvirt $LIBVIRT_VERSION upstream release"
git tag upstream

shopt -s nullglob
for p in "$LOCALMIG_TOP"/patches/*.patch; do
    git am -q --keep-cr "$p" ||
        localmig_die "$(basename "$p") does not apply; resolve with git am, then export"
done
localmig_log "$(git rev-list --count upstream..HEAD) patches applied in $dir"
