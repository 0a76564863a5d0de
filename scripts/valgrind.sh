#!/usr/bin/env bash
# Runs the example programs under valgrind (memcheck) and fails on any leak or invalid
# read/write.
#
#   scripts/valgrind.sh [BUILD_DIR]      (default: build; `make valgrind` passes $(BUILD))
#
# What runs, each under valgrind --leak-check=full:
#   1. dtls_server (generates its key and certificate) and dtls_client verifying it: a full
#      handshake, one packet each way, close_notify, then the server is stopped with SIGTERM;
#   2. dtls_client with a name the certificate does not carry: the hostname-mismatch error path;
#   3. dtls_client against a port where nobody listens: the "connection refused" (ICMP) path;
#   4. keys_demo, when that example exists (key + certificate generation, save, load).
# valgrind's own findings exit with code 99 (--error-exitcode=99), so they cannot be mistaken
# for a program's expected exit status (case 2 and 3 exit 1 by design). Leaks of every kind
# except "still reachable" count as errors.
#
# The build dir must not be a sanitizer build (ASan and valgrind do not mix); when it does not
# exist it is configured here (Debug, examples only). Installs nothing: `make valgrind` runs
# `scripts/deps.sh valgrind` first.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
JOBS=${JOBS:-2}

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind.sh: valgrind not found (scripts/deps.sh valgrind installs it)" >&2
    exit 1
fi
if [ -f "$BUILD/CMakeCache.txt" ] && grep -q '^SEALNET_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt"; then
    echo "valgrind.sh: $BUILD is a sanitizer build; valgrind needs a plain one (e.g. build)" >&2
    exit 1
fi
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DSEALNET_BUILD_TESTS=OFF \
        -DSEALNET_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$BUILD" -j "$JOBS" --target dtls_server dtls_client >/dev/null
if grep -q '^keys_demo' <(ls examples/ 2>/dev/null); then
    cmake --build "$BUILD" -j "$JOBS" --target keys_demo >/dev/null
fi
EX="$BUILD/examples"

work=$(mktemp -d "${TMPDIR:-/tmp}/sealnet-valgrind-XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

VG=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes --error-exitcode=99)
status=0
report() { # name, expected exit, actual exit, valgrind log
    local name=$1 want=$2 got=$3 log=$4
    local errors
    errors=$(grep -c '^==[0-9]*== [A-Z]' "$log" || true)
    if [ "$got" = 99 ] || [ "$errors" != 0 ]; then
        echo "FAIL  $name: valgrind reported problems (exit $got):"
        sed 's/^/      /' "$log" | head -60
        status=1
    elif [ "$got" != "$want" ]; then
        echo "FAIL  $name: exit $got, expected $want"
        status=1
    else
        echo "ok    $name (exit $got, valgrind clean)"
    fi
}

# 1. Server + verifying client.
"${VG[@]}" --log-file="$work/server.vg" "$EX/dtls_server" --port 0 \
    --save-cert "$work/cert.pem" --seconds 120 >"$work/server.out" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 600); do
    port=$(sed -n 's/^Listening on port \([0-9]*\).*/\1/p' "$work/server.out")
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "FAIL  dtls_server did not start:"
    cat "$work/server.out" "$work/server.vg"
    exit 1
fi

set +e
"${VG[@]}" --log-file="$work/client.vg" "$EX/dtls_client" 127.0.0.1 "$port" \
    --ca "$work/cert.pem" --name localhost --timeout 60 >"$work/client.out" 2>&1
rc=$?
set -e
report "dtls_client -> dtls_server (verified handshake, echo)" 0 $rc "$work/client.vg"
grep -q 'Connected: Hello DTLS client' "$work/client.out" ||
    { echo "FAIL  client output:"; cat "$work/client.out"; status=1; }

# 2. Hostname mismatch.
set +e
"${VG[@]}" --log-file="$work/mismatch.vg" "$EX/dtls_client" 127.0.0.1 "$port" \
    --ca "$work/cert.pem" --name not-the-host.example --timeout 60 >"$work/mismatch.out" 2>&1
rc=$?
set -e
report "dtls_client with the wrong name (error path)" 1 $rc "$work/mismatch.vg"

# The server: stop it, it frees everything and exits 0.
kill -TERM "$server_pid"
set +e
wait "$server_pid"
rc=$?
set -e
server_pid=""
report "dtls_server (two connections, SIGTERM)" 0 $rc "$work/server.vg"
grep -q 'Peer connected!' "$work/server.out" ||
    { echo "FAIL  server output:"; cat "$work/server.out"; status=1; }

# 3. Nobody listening: ICMP port unreachable ends the handshake.
dead=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 9)
set +e
"${VG[@]}" --log-file="$work/dead.vg" "$EX/dtls_client" 127.0.0.1 "$dead" --insecure \
    --timeout 3 >"$work/dead.out" 2>&1
rc=$?
set -e
report "dtls_client against a closed port (refused path)" 1 $rc "$work/dead.vg"

# 4. Keys.
if [ -x "$EX/keys_demo" ]; then
    set +e
    "${VG[@]}" --log-file="$work/keys.vg" "$EX/keys_demo" valgrind.example >"$work/keys.out" 2>&1
    rc=$?
    set -e
    report "keys_demo" 0 $rc "$work/keys.vg"
fi

exit $status
