#!/usr/bin/env bash
# Side-by-side benchmark of the two TLS backends: the same bench/dtls.c program built on OpenSSL
# and on mbed TLS (Release, build-bench-openssl / build-bench-mbedtls), each run RUNS times
# (default 3) alternately, one markdown table with min / median / max per backend.
#
#   bench/backends.sh [RUNS] [SECONDS per measurement] [PEERS for the memory figure]
#
# Figures: full DTLS 1.2 handshakes/s (ECDHE-ECDSA, cookie exchange, MTU 1200, 1 in flight),
# 64-byte round trips/s, one-way 64-byte records/s received, and RSS and malloc'd bytes per idle
# connected server-side peer. Each figure is sealnet's own column of bench/dtls's table.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3} secs=${2:-3} peers=${3:-200}
jobs=${JOBS:-2}
for b in openssl mbedtls; do
    cmake -S . -B "build-bench-$b" -DCMAKE_BUILD_TYPE=Release -DSEALNET_TLS_BACKEND=$b \
        -DSEALNET_BUILD_TESTS=OFF -DSEALNET_BUILD_EXAMPLES=OFF -DSEALNET_BUILD_TOOLS=OFF >/dev/null
    cmake --build "build-bench-$b" -j "$jobs" --target bench_dtls >/dev/null
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq 1 "$runs"); do
    for b in openssl mbedtls; do
        "build-bench-$b/bench/dtls" --only handshake,pingpong,oneway,memory --repeat 1 \
            --seconds "$secs" --concurrency 1 --peers "$peers" >"$out/$b.$i" 2>&1 ||
            { echo "bench/dtls on $b failed:"; cat "$out/$b.$i"; exit 1; }
    done
done
python3 - "$out" "$runs" "$secs" "$peers" <<'PY'
import re, statistics, sys, os, glob
out, runs, secs, peers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = [("Full handshakes/s, 1 in flight", "handshakes/s"),
        ("Ping-pong round trips/s, 64 B", "round trips/s (64 B)"),
        ("One-way records/s received, 64 B payload", "records/s received (64 B, one way)"),
        ("RSS per connected idle peer", "RSS per idle peer (KiB)"),
        ("malloc'd bytes per connected idle peer", "malloc'd per idle peer (KiB)")]
def value(cell):
    m = re.match(r"\s*([0-9.]+)\s*(k?)", cell)
    if not m: return None
    v = float(m.group(1))
    return v * 1000 if m.group(2) == "k" else v
data, version = {}, {}
for b in ("openssl", "mbedtls"):
    for f in sorted(glob.glob(os.path.join(out, b + ".*"))):
        text = open(f).read()
        m = re.search(r"^sealnet \S+ \(([^)]*)\)", text, re.M)
        if m: version[b] = m.group(1)
        for line in text.splitlines():
            if not line.startswith("| "): continue
            cells = line.split("|")
            for key, label in rows:
                if cells[1].strip().startswith(key):
                    v = value(cells[2])
                    if v is not None: data.setdefault((b, label), []).append(v)
def fmt(vals):
    if not vals: return "–"
    f = lambda x: f"{x:,.0f}" if x >= 100 else f"{x:.1f}"
    return f"{f(min(vals))} / **{f(statistics.median(vals))}** / {f(max(vals))}"
print(f"{runs} runs per backend, {secs} s per measurement, memory with {peers} peers; "
      "min / **median** / max. Release builds, same machine, same run.\n")
print(f"| Measurement | OpenSSL ({version.get('openssl','?')}) | mbed TLS ({version.get('mbedtls','?')}) | median ratio mbed/OpenSSL |")
print("|---|---:|---:|---:|")
for _, label in rows:
    a, b = data.get(("openssl", label), []), data.get(("mbedtls", label), [])
    ratio = f"{statistics.median(b)/statistics.median(a):.2f}×" if a and b and statistics.median(a) else "–"
    print(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio} |")
PY
