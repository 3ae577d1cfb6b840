#!/bin/bash
# Fuzz the parser of a local migration's status XML (<localMigration>,
# src/qemu/qemu_migration_local_state.c) with libFuzzer, under ASan (leaks
# included) and UBSan, for a bounded time. The seeds are the status XML of
# the unit tests; a crash, a leak, a refusal that still returns state, or
# a state that does not read back as itself fails. TAP output.
#
# Env: LIBVIRT_BUILDDIR (the libvirt build whose libvirt.so it links),
#      LOCALMIG_FUZZ_SECONDS (default 60; the suite's bound),
#      LOCALMIG_BUILD_ROOT (the fuzzer is built in its fuzz/ once per
#      change of its sources).
set -euo pipefail
. "$(dirname "$0")/../e2e/lib/common.sh"

top=$(cd "$(dirname "$0")/../.." && pwd)
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
builddir=${LIBVIRT_BUILDDIR:-$top/_build/libvirt}
srcdir=$builddir/../libvirt-src
out=${LOCALMIG_BUILD_ROOT:-$top/_build}/fuzz
seconds=${LOCALMIG_FUZZ_SECONDS:-60}
cc=${LOCALMIG_FUZZ_CC:-clang}

command -v "$cc" >/dev/null || tap_skip_all "no $cc (install-deps installs clang)"
[ -f "$builddir/src/libvirt.so" ] || tap_skip_all "no libvirt build in $builddir"

tap_plan 3
mkdir -p "$out"

sources=("$fuzz_dir/localmigstatefuzz.c" "$top/src/qemu/qemu_migration_local_state.c")
bin=$out/localmigstatefuzz
stamp=$(cat "${sources[@]}" "$top/src/qemu/qemu_migration_local_state.h" "$0" |
        sha256sum | cut -c1-16)
if [ ! -x "$bin" ] || [ "$(cat "$bin.stamp" 2>/dev/null)" != "$stamp" ]; then
    # the libvirt tree's own includes, as for the driver's sources
    incs=()
    for d in "$builddir" "$srcdir"; do
        incs+=(-I"$d" -I"$d/include" -I"$d/src" -I"$d/src/util" -I"$d/src/qemu")
    done
    # shellcheck disable=SC2046
    if "$cc" -g -O1 -std=gnu99 -fsanitize=fuzzer,address,undefined \
           -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
           -D_FILE_OFFSET_BITS=64 "${incs[@]}" \
           $(pkg-config --cflags glib-2.0 libxml-2.0) \
           "${sources[@]}" -o "$bin.new" \
           -L"$builddir/src" -Wl,-rpath,"$builddir/src" -lvirt \
           $(pkg-config --libs glib-2.0 libxml-2.0) >"$out/build.log" 2>&1; then
        mv "$bin.new" "$bin"
        echo "$stamp" >"$bin.stamp"
        tap_ok "fuzzer built with $cc (libFuzzer, ASan, UBSan)"
    else
        tap_diag "$(tail -20 "$out/build.log")"
        tap_not_ok "fuzzer built with $cc"
        tap_bail "no fuzzer"
    fi
else
    tap_ok "fuzzer up to date ($bin)"
fi

lm_tmpdir
corpus=$LM_TMP/corpus
mkdir -p "$corpus"
cp "$top"/tests/qemustatusxml2xmldata/migration-local-*-in.xml "$corpus/"
cp "$fuzz_dir"/seeds/* "$corpus/"
# blank lines crashed libvirt's XML error reporting (patch 0026); written
# here, as syntax-check refuses such a file in the tree
printf '\n\n' >"$corpus/blank-lines.xml"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# each seed once: the suite's own inputs must pass before any mutation
if "$bin" -runs=0 "$corpus" >"$LM_TMP/seeds.log" 2>&1; then
    tap_ok "the $(ls "$corpus" | wc -l) seeds parse without a crash or a leak"
else
    tap_diag "$(tail -30 "$LM_TMP/seeds.log")"
    tap_not_ok "the seeds parse without a crash or a leak"
fi

if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -dict="$fuzz_dir/localmigstate.dict" -artifact_prefix="$LM_TMP/" \
        -print_final_stats=1 "$corpus" >"$LM_TMP/fuzz.log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LM_TMP/fuzz.log")
    cov=$(grep -o 'cov: [0-9]*' "$LM_TMP/fuzz.log" | tail -1)
    tap_ok "$seconds s of fuzzing: ${execs:-?} inputs, $cov, no crash, leak or round-trip difference"
else
    tap_diag "$(grep -v '^#' "$LM_TMP/fuzz.log" | tail -40)"
    for a in "$LM_TMP"/crash-* "$LM_TMP"/leak-*; do
        [ -f "$a" ] && tap_diag "input: $(head -c 2000 "$a")"
    done
    tap_not_ok "$seconds s of fuzzing: no crash, leak or round-trip difference"
fi
