#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Add the apt entries the build needs, derived from the machine's own
# Debian sources (no archive host is written in this repository):
#  - deb-src for trixie: libvirt 11.3.0 and QEMU 10.0.13 sources
#  - deb for bookworm-backports: meson >= 1.5 and python3-pycotap for QEMU
# Idempotent: rewrites one file of ours and runs apt-get update only when
# that file changed or the lists are missing.
set -euo pipefail

out=/etc/apt/sources.list.d/libvirt-localmig.sources

base_uri() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ "$f" = "$out" ] && continue
        [ -f "$f" ] || continue
        # The first URIs line of a stanza that lists bookworm.
        awk '
            /^[[:space:]]*$/ { if (uri != "" && suite) { print uri; exit } uri=""; suite=0; next }
            /^URIs:/ { uri=$2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite=1 }
            END { if (uri != "" && suite) print uri }
        ' "$f" | head -n1
    done | head -n1
}

uri=$(base_uri)
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
    echo "apt-sources: no Debian bookworm entry found in the apt sources" >&2
    exit 1
fi

tmp=$(mktemp)
cat >"$tmp" <<EOT
# Written by libvirt-localmig build-aux/apt-sources.sh
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT

if ! cmp -s "$tmp" "$out" || [ ! -e /var/lib/apt/lists/lock ] || \
   ! ls /var/lib/apt/lists/*bookworm-backports*Packages* >/dev/null 2>&1; then
    install -m 0644 "$tmp" "$out"
    apt-get update -q -o DPkg::Lock::Timeout=600
fi
rm -f "$tmp"
