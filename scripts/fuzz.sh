#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.c) with clang and runs them.
#
#   scripts/fuzz.sh SECONDS     the long run: every target for SECONDS each (default 60; the
#                               10-minute run is `make fuzz FUZZ_SECONDS=600`) on FUZZ_WORKERS
#                               processes (default: every core), or until it has run FUZZ_EXECS
#                               inputs (default 10000000, the goal; 0 = no limit), whichever
#                               comes first; prints per target the total executions, wall and CPU
#                               time, exec/s, exec per CPU-second, coverage, findings and whether
#                               the goal was reached
#   scripts/fuzz.sh --smoke     build and run all targets for ~24 s in total (CI, `make test`);
#                               non-zero exit on any crash, leak, timeout or sanitizer report
#   scripts/fuzz.sh --seeds     regenerate the DTLS seed corpora from a real handshake
#   scripts/fuzz.sh --only NAME SECONDS   one target
#   scripts/fuzz.sh --build-only  build the targets, run nothing
#
# Sanitizers. The smoke run and every replay use AddressSanitizer + UndefinedBehaviorSanitizer +
# LeakSanitizer (build dir $FUZZ_BUILD, default build-fuzz). The long run uses a throughput build
# by default (FUZZ_SANITIZE=ubsan: UBSan only, build-fuzz-fast): OpenSSL allocates at every step
# of every input and ASan's allocator (poisoning, quarantine, allocation stacks) is dear, so
# ASan runs these targets 1.5-2.5x slower than UBSan alone (figures in
# docs/hostile-inputs.md) and 10 M executions in 10 minutes would be out of reach. Memory errors
# are still looked for on everything the long run keeps: afterwards every input of the corpus (and
# every known crash in fuzz/regressions) is replayed under ASan+UBSan+LSan, and a report there
# fails the run. FUZZ_SANITIZE=asan runs the long run itself under ASan+UBSan.
#
# FUZZ_FLAGS adds libFuzzer flags to every run. SEALNET_TLS_BACKEND=mbedtls builds them on the
# mbed TLS backend (build dirs get a -mbedtls suffix). Installs nothing (the Makefile's `deps.sh
# fuzz` does). The library is compiled with the fuzzer and sanitizer flags too (CMAKE_C_FLAGS
# below): without coverage inside libsealnet the fuzzer would be blind to the code it is meant to
# explore.
#
# Corpora: the committed seeds in fuzz/corpus/<target> are read; what the fuzzer finds goes to
# $FUZZ_BUILD/corpus/<target> (not committed, shared by the smoke and long runs). Crashes go to
# $FUZZ_BUILD/artifacts/<target>/; copy a reproducer to fuzz/regressions/<target>/ and it is
# replayed by every run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BACKEND=${SEALNET_TLS_BACKEND:-openssl}
suffix=""
[ "$BACKEND" = openssl ] || suffix="-$BACKEND"
BUILD=${FUZZ_BUILD:-build-fuzz$suffix}
FAST_BUILD=${FUZZ_FAST_BUILD:-build-fuzz-fast$suffix}
JOBS=${JOBS:-2}
WORKERS=${FUZZ_WORKERS:-$(nproc 2>/dev/null || echo 1)}
SANITIZE=${FUZZ_SANITIZE:-ubsan}
GOAL=${FUZZ_EXECS:-10000000}

smoke=0 seeds=0 build_only=0 only="" secs=60
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) smoke=1 ;;
    --seeds) seeds=1 ;;
    --build-only) build_only=1 ;;
    --only) only=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) secs=$1 ;;
    esac
    shift
done
case "$SANITIZE" in
asan | ubsan) ;;
*) echo "fuzz.sh: FUZZ_SANITIZE must be asan or ubsan (got '$SANITIZE')" >&2; exit 2 ;;
esac

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz.sh: $CC not found (scripts/deps.sh fuzz installs clang and libclang-rt-dev)" >&2
    exit 1
fi
COMMON="-fno-omit-frame-pointer -fno-sanitize-recover=undefined -gline-tables-only"
# Plumbing that is on every path and says nothing about the input: not instrumented (see there).
COMMON="$COMMON -fsanitize-coverage-ignorelist=$ROOT/fuzz/coverage-ignore.txt"
build() { # dir, sanitizers
    CC=$CC cmake -S . -B "$1" -DSEALNET_FUZZ=ON -DSEALNET_BUILD_TESTS=OFF \
        -DSEALNET_BUILD_BENCH=OFF -DSEALNET_BUILD_EXAMPLES=OFF -DSEALNET_BUILD_TOOLS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="-fsanitize=$2 $COMMON" \
        -DSEALNET_TLS_BACKEND="$BACKEND" >/dev/null
    cmake --build "$1" -j "$JOBS" >/dev/null
}
long=0
[ $smoke = 0 ] && [ $seeds = 0 ] && [ $build_only = 0 ] && long=1
build "$BUILD" fuzzer-no-link,address,undefined
RUN_BUILD=$BUILD
if [ $long = 1 ] && [ "$SANITIZE" = ubsan ]; then
    build "$FAST_BUILD" fuzzer-no-link,undefined
    RUN_BUILD=$FAST_BUILD
fi
if [ $build_only = 1 ]; then
    echo "fuzz.sh: targets built on the $BACKEND backend in $BUILD (ASan+UBSan)"
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
    WORKERS=1
fi

# No kernel networking inside the targets (in-memory network, manual clock: fuzz_common.h), so
# what bounds executions/s under ASan is its allocator: no fill of fresh blocks (ASan still
# poisons them), a small quarantine (use-after-free is still caught within 16 MB of frees) and
# 10-frame allocation stacks in reports.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:max_malloc_fill_size=0:quarantine_size_mb=16:malloc_context_size=10}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
FAIL_RE='ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant failed'
# WORKERS processes of one target (binary, log directory, libFuzzer arguments) on the shared
# corpus directory (each reloads what the others add), output in <logdir>/fuzz-<n>.log, until
# together they have run GOAL inputs (0: no goal) or -max_total_time is up. Not a fixed share
# each: two workers' speeds differ by a fifth or more (they mutate different inputs), and a worker
# done with its share would leave its core idle while the other is still short. So each may run
# up to the whole goal, and once the executions they have reported (the "#N" of their status
# lines, a second or less behind) add up to it, all are stopped with SIGUSR1: libFuzzer's
# graceful exit, which prints the final statistics counted below. A worker that fails stops the
# others too. Returns the first failing worker's status.
run_workers() {
    local bin=$1 logdir=$2
    shift 2
    local pids=() i n st total rc=0 stopping=0
    for ((i = 0; i < WORKERS; i++)); do
        (cd "$logdir" && exec "$bin" "$@" >"fuzz-$i.log" 2>&1) &
        pids+=($!)
    done
    while :; do
        local live=()
        total=0
        for ((i = 0; i < WORKERS; i++)); do
            if [ -n "${pids[$i]}" ] && ! kill -0 "${pids[$i]}" 2>/dev/null; then
                wait "${pids[$i]}"
                st=$?
                [ $st -ne 0 ] && [ $rc -eq 0 ] && rc=$st
                pids[i]=""
            fi
            [ -n "${pids[$i]}" ] && live+=("${pids[$i]}")
            n=$(grep -ao '^#[0-9]*' "$logdir/fuzz-$i.log" 2>/dev/null | tail -1 | tr -d '#')
            total=$((total + ${n:-0}))
        done
        [ ${#live[@]} -eq 0 ] && break
        if [ $stopping = 0 ] && { [ $rc -ne 0 ] || { [ "$GOAL" -gt 0 ] && [ $total -ge "$GOAL" ]; }; }; then
            kill -USR1 "${live[@]}" 2>/dev/null
            stopping=1
        fi
        sleep 0.5
    done
    return $rc
}

status=0
summary=""
if [ $long = 1 ]; then
    san="UBSan"
    [ "$SANITIZE" = asan ] && san="ASan+UBSan"
    limit="at most ${secs}s per target"
    [ "$GOAL" -gt 0 ] && limit="$limit or $GOAL executions, whichever first"
    echo "fuzz.sh: $BACKEND backend, $limit, $WORKERS worker(s), $san (corpus replayed under ASan+UBSan+LSan afterwards)"
fi
for t in "${targets[@]}"; do
    bin="$ROOT/$RUN_BUILD/fuzz/$t"
    asan_bin="$ROOT/$BUILD/fuzz/$t"
    work="$ROOT/$BUILD/corpus/$t"
    art="$ROOT/$BUILD/artifacts/$t"
    logdir="$ROOT/$BUILD/logs/$t"
    rm -rf "$logdir"
    mkdir -p "$work" "$art" "$logdir"
    log="$logdir/run.log"
    # Known crashes first: every reproducer in fuzz/regressions/<target> must pass.
    if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t" 2>/dev/null)" ]; then
        if ! "$asan_bin" -runs=0 "fuzz/regressions/$t"/* >"$logdir/regress.log" 2>&1; then
            echo "$t: a regression input still fails (see $logdir/regress.log)"
            status=1
        fi
    fi
    seeds_dir="$ROOT/fuzz/corpus/$t"
    mkdir -p "$seeds_dir"
    # Longest input per target, from coverage measured at each value (docs/hostile-inputs.md):
    # a TLS stream script learns as much in 1 KiB as in 2 (and costs more per input); a host
    # script needs ~2.9 KiB of ClientHellos to fill an 8-slot half-open table, and 4 KiB found
    # 18-33 more edges than 1 KiB in 60 s for 6 % fewer executions.
    case "$t" in
    fuzz_tls_server) max_len=1024 ;;
    *) max_len=4096 ;;
    esac
    found_before=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
        -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    args=("$work" "$seeds_dir" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048
        -max_len=$max_len -print_final_stats=1 -artifact_prefix="$art/")
    # The long run stops a target once it has run the goal's executions (run_workers), so a
    # fast target does not hold the machine for nothing.
    if [ $long = 1 ] && [ "$GOAL" -gt 0 ]; then
        args+=(-runs="$GOAL")
    fi
    # Extra libFuzzer flags for the run (e.g. FUZZ_FLAGS="-entropic=0 -use_value_profile=1").
    # shellcheck disable=SC2206
    [ -n "${FUZZ_FLAGS:-}" ] && args+=(${FUZZ_FLAGS})
    set +e
    TIMEFORMAT='%R %U %S'
    if [ "$WORKERS" -gt 1 ]; then
        echo "$WORKERS workers: $logdir/fuzz-<n>.log" >"$log"
        { time run_workers "$bin" "$logdir" "${args[@]}"; } 2>"$logdir/cpu"
        rc=$?
        stats=("$logdir"/fuzz-*.log)
    else
        { time "$bin" "${args[@]}" >"$log" 2>&1; } 2>"$logdir/cpu"
        rc=$?
        stats=("$log")
    fi
    unset TIMEFORMAT
    set -e
    execs=$(cat "${stats[@]}" 2>/dev/null | sed -n 's/^stat::number_of_executed_units: *//p' |
        awk '{s += $1} END {print s + 0}')
    cov=$( (cat "${stats[@]}" 2>/dev/null | grep -o 'cov: [0-9]*' || true) | cut -d' ' -f2 |
        sort -n | tail -1)
    wall=$(awk 'END {print $1}' "$logdir/cpu" 2>/dev/null || echo 0)
    cpu=$(awk 'END {printf "%.1f", $2 + $3}' "$logdir/cpu" 2>/dev/null || echo 0)
    rate=$(awk -v e="$execs" -v s="$wall" 'BEGIN {if (s > 0) printf "%d", e / s; else print "?"}')
    per_cpu=$(awk -v e="$execs" -v c="$cpu" 'BEGIN {if (c > 0) printf "%d", e / c; else print "?"}')
    # The long run's corpus under ASan+UBSan+LSan: a memory error on any input it kept fails.
    replay=""
    if [ $long = 1 ] && [ "$SANITIZE" = ubsan ] && [ $rc -eq 0 ]; then
        if ! "$asan_bin" -runs=0 -timeout=10 -rss_limit_mb=2048 -max_len=$max_len \
            -artifact_prefix="$art/" "$work" >"$logdir/replay.log" 2>&1 ||
            grep -qE "$FAIL_RE" "$logdir/replay.log"; then
            replay="ASan replay of the corpus FAILED (log $logdir/replay.log)"
        fi
    fi
    found=$(($(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
        -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l) - found_before))
    goal=""
    if [ $long = 1 ] && [ "$GOAL" -gt 0 ]; then
        goal="goal $GOAL: short"
        [ "$execs" -ge "$GOAL" ] && goal="goal $GOAL: reached"
    fi
    line=$(printf '%-17s %5ss wall  execs %-10s exec/s %-6s CPU %6ss  exec/CPU-s %-6s cov %-5s findings %s %s' \
        "$t" "$wall" "$execs" "$rate" "$cpu" "$per_cpu" "${cov:-?}" "$found" "$goal")
    if [ $rc -ne 0 ] || [ "$found" -gt 0 ] || [ -n "$replay" ] ||
        cat "$log" "${stats[@]}" | grep -qE "$FAIL_RE"; then
        line="$line FAILED (rc $rc): $(cat "$log" "${stats[@]}" | grep -m1 -E "$FAIL_RE" || true)"
        line="$line $replay"
        line="$line; artifacts in $art, logs in $logdir"
        status=1
    else
        line="$line ok"
    fi
    echo "$line"
    summary="$summary$line"$'\n'
done
printf '%s' "$summary" >"$ROOT/$BUILD/summary.txt"
exit $status
