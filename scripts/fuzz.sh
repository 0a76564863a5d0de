#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.c) with clang and runs them.
#
#   scripts/fuzz.sh SECONDS     run every target for SECONDS each (default 60)
#   scripts/fuzz.sh --smoke     build and run all targets for ~24 s in total (CI); non-zero exit on
#                               any crash, leak, timeout or sanitizer report
#   scripts/fuzz.sh --seeds     regenerate the DTLS seed corpora from a real handshake
#   scripts/fuzz.sh --only NAME SECONDS   one target
#   scripts/fuzz.sh --build-only  build the targets, run nothing
#
# SEALNET_TLS_BACKEND=mbedtls builds them on the mbed TLS backend (build dir build-fuzz-mbedtls).
# Installs nothing (the Makefile's `deps.sh fuzz` does). Build dir: $FUZZ_BUILD (build-fuzz).
# The library is compiled with the fuzzer and sanitizer flags too (CMAKE_C_FLAGS below): without
# coverage inside libsealnet the fuzzer would be blind to the code it is meant to explore.
#
# Corpora: the committed seeds in fuzz/corpus/<target> are read; what the fuzzer finds goes to
# $FUZZ_BUILD/corpus/<target> (not committed). Crashes go to $FUZZ_BUILD/artifacts/<target>/;
# copy a reproducer to fuzz/regressions/<target>/ and it is replayed by every run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BACKEND=${SEALNET_TLS_BACKEND:-openssl}
if [ "$BACKEND" = openssl ]; then BUILD=${FUZZ_BUILD:-build-fuzz}; else BUILD=${FUZZ_BUILD:-build-fuzz-$BACKEND}; fi
JOBS=${JOBS:-2}

smoke=0 seeds=0 build_only=0 only="" secs=60
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) smoke=1 ;;
    --seeds) seeds=1 ;;
    --build-only) build_only=1 ;;
    --only) only=$2; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) secs=$1 ;;
    esac
    shift
done

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz.sh: $CC not found (scripts/deps.sh fuzz installs clang and libclang-rt-dev)" >&2
    exit 1
fi
FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -gline-tables-only"
CC=$CC cmake -S . -B "$BUILD" -DSEALNET_FUZZ=ON -DSEALNET_BUILD_TESTS=OFF \
    -DSEALNET_BUILD_BENCH=OFF -DSEALNET_BUILD_EXAMPLES=OFF -DSEALNET_BUILD_TOOLS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$FLAGS" -DSEALNET_TLS_BACKEND="$BACKEND" >/dev/null
cmake --build "$BUILD" -j "$JOBS" >/dev/null
if [ $build_only = 1 ]; then
    echo "fuzz.sh: targets built on the $BACKEND backend in $BUILD"
    exit 0
fi

if [ $seeds = 1 ]; then
    "$BUILD/fuzz/seedgen" "$ROOT/fuzz/corpus"
    exit 0
fi

targets=()
for src in fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    [ -n "$only" ] && [ "$t" != "$only" ] && continue
    targets+=("$t")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no target '$only'" >&2; exit 2; }
if [ $smoke = 1 ]; then
    secs=$((24 / ${#targets[@]}))
    [ $secs -ge 3 ] || secs=3
fi

# No kernel networking inside the targets (in-memory network, manual clock: fuzz_common.h), so
# what bounds executions/s is the sanitizers' allocator: no fill of fresh blocks (ASan still
# poisons them), a small quarantine (use-after-free is still caught within 16 MB of frees) and
# 10-frame allocation stacks in reports.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:max_malloc_fill_size=0:quarantine_size_mb=16:malloc_context_size=10}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=""
for t in "${targets[@]}"; do
    bin="$BUILD/fuzz/$t"
    work="$BUILD/corpus/$t"
    art="$BUILD/artifacts/$t"
    mkdir -p "$work" "$art"
    log="$BUILD/$t.log"
    # Known crashes first: every reproducer in fuzz/regressions/<target> must pass.
    if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t" 2>/dev/null)" ]; then
        if ! "$bin" -runs=0 "fuzz/regressions/$t"/* >"$BUILD/$t.regress.log" 2>&1; then
            echo "$t: a regression input still fails (see $BUILD/$t.regress.log)"
            status=1
        fi
    fi
    seeds_dir="fuzz/corpus/$t"
    mkdir -p "$seeds_dir"
    set +e
    # Scripts of operations (host, TLS stream) stay short: a long script is many inputs' worth
    # of work in one, and the fuzzer learns as much from several short ones.
    case "$t" in
    fuzz_host | fuzz_tls_server) max_len=1024 ;;
    *) max_len=4096 ;;
    esac
    "$bin" "$work" "$seeds_dir" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=$max_len -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
    cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
    line=$(printf '%-18s %4ss  execs %-9s exec/s %-6s cov %-6s' "$t" "$secs" "${execs:-?}" \
        "${rate:-?}" "${cov:-?}")
    if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
        line="$line FAILED (rc $rc): $(grep -m1 -E 'ERROR:|runtime error:|invariant failed' "$log" || true)"
        line="$line; artifacts in $art, log $log"
        status=1
    else
        line="$line ok"
    fi
    echo "$line"
    summary="$summary$line"$'\n'
done
printf '%s' "$summary" >"$BUILD/summary.txt"
exit $status
