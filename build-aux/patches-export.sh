#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Write the commits upstream..HEAD of the tree made by patches-edit.sh back
# into patches/ as the numbered series (replacing the old one):
#
#   build-aux/patches-export.sh [DIR]   (default: _build/libvirt-git)
set -euo pipefail
. "$(dirname "$0")/common.sh"

dir=${1:-$LOCALMIG_BUILD_ROOT/libvirt-git}
git -C "$dir" rev-parse -q --verify upstream >/dev/null ||
    localmig_die "$dir is not a tree made by patches-edit.sh"
[ -z "$(git -C "$dir" status --porcelain)" ] ||
    localmig_die "$dir has uncommitted changes; commit them first"

rm -f "$LOCALMIG_TOP"/patches/*.patch
# --zero-commit and no signature keep the files stable across re-exports,
# so the series only shows a diff where a patch really changed.
git -C "$dir" format-patch -q --zero-commit --no-signature \
    -o "$LOCALMIG_TOP/patches" upstream..HEAD
ls "$LOCALMIG_TOP"/patches/*.patch 2>/dev/null | sed 's|.*/||'
