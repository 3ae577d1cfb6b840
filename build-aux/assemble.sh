#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Assemble the libvirt source tree the product is built from:
#   pinned upstream tarball + patches/*.patch + our own files.
#
# The tree is first assembled in a staging directory and then synced into
# $LIBVIRT_SRCDIR by content, so that files whose content did not change
# keep their mtime and ninja rebuilds only what an edit touched. A stamp of
# every input lets an unchanged re-run return at once.
set -euo pipefail
. "$(dirname "$0")/common.sh"

cd "$LOCALMIG_TOP"

localmig_fetch_orig libvirt "$LIBVIRT_ORIG" "$LIBVIRT_SHA256"

# Our files that go into the upstream tree. tests/e2e (end-to-end tests)
# and tests/build (checks of this repository) run against the build and
# are not part of it.
overlay_files() {
    local d
    for d in $LOCALMIG_OVERLAY_DIRS; do
        [ -d "$d" ] || continue
        find "$d" \( -path tests/e2e -o -path tests/build \) -prune \
             -o -type f ! -name .gitignore -print
    done | LC_ALL=C sort
}

# The series, in order (the glob sorts by name).
shopt -s nullglob
series=(patches/*.patch)
shopt -u nullglob

inputs_hash() {
    {
        echo "$LIBVIRT_SHA256"
        sha256sum build-aux/assemble.sh build-aux/common.sh
        overlay_files | while read -r f; do sha256sum "$f"; done
        for f in "${series[@]}"; do sha256sum "$f"; done
    } | sha256sum | cut -d' ' -f1
}

stamp=$LOCALMIG_BUILD_ROOT/libvirt-src.stamp
hash=$(inputs_hash)
if [ -d "$LIBVIRT_SRCDIR" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
    exit 0
fi

# The pristine tree is unpacked once into the cache; each assembly stages a
# hard-linked copy of it (cheap), with real copies of the files the series
# patches, so the cache itself is never written through a link.
pristine=$LOCALMIG_CACHE/libvirt-$LIBVIRT_VERSION
if [ "$(cat "$pristine/.localmig-sha256" 2>/dev/null)" != "$LIBVIRT_SHA256" ]; then
    rm -rf "$pristine"
    mkdir -p "$pristine"
    tar -xJf "$LOCALMIG_CACHE/$LIBVIRT_ORIG" -C "$pristine" --strip-components=1
    echo "$LIBVIRT_SHA256" >"$pristine/.localmig-sha256"
fi

stage=$LOCALMIG_BUILD_ROOT/libvirt-stage
rm -rf "$stage"
mkdir -p "$LOCALMIG_BUILD_ROOT"
cp -al "$pristine" "$stage" 2>/dev/null || cp -a "$pristine" "$stage"
rm "$stage/.localmig-sha256"
sed -n 's|^+++ b/||p' "${series[@]}" /dev/null | sort -u | while read -r f; do
    if [ -f "$stage/$f" ]; then
        cp --remove-destination "$pristine/$f" "$stage/$f"
    fi
done

# The series applies to pristine upstream files only, without fuzz: a hunk
# that no longer fits must be refreshed, not guessed.
for p in "${series[@]}"; do
    if ! patch -d "$stage" -p1 --forward --batch --fuzz=0 \
             --no-backup-if-mismatch --quiet <"$p" >"$stage.patch.log" 2>&1; then
        cat "$stage.patch.log" >&2
        localmig_die "patch $p does not apply to libvirt $LIBVIRT_VERSION"
    fi
done
rm -f "$stage.patch.log"

# Our own files are additions: never let one replace an upstream file.
overlay_files | while read -r f; do
    if [ -e "$stage/$f" ]; then
        localmig_die "$f would overwrite a file of the upstream tree; rename it"
    fi
    mkdir -p "$stage/$(dirname "$f")"
    cp -p "$f" "$stage/$f"
done

mkdir -p "$LIBVIRT_SRCDIR"
rsync -rlpc --delete "$stage/" "$LIBVIRT_SRCDIR/"
rm -rf "$stage"
echo "$hash" >"$stamp"
localmig_log "assembled libvirt $LIBVIRT_VERSION in $LIBVIRT_SRCDIR"
