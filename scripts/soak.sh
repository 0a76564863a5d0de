#!/usr/bin/env bash
# The soak (bench/soak.c): thousands of DTLS clients connecting, exchanging, idling, vanishing
# and reconnecting against a host server on loopback, with the server's RSS, descriptors and
# CPU per packet sampled every 10 s. Fails when RSS or descriptors grow after the warm-up.
#
#   scripts/soak.sh [BUILD_DIR]     (default build; SOAK_SECONDS=600, SOAK_CLIENTS=2000)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
bin="$BUILD/bench/soak"
[ -x "$bin" ] || { echo "soak.sh: $bin not built (make all builds it)" >&2; exit 2; }
exec "$bin" --seconds "${SOAK_SECONDS:-600}" --clients "${SOAK_CLIENTS:-2000}"
