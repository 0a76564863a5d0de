#!/usr/bin/env bash
# A sealnet CLI built on one TLS backend against one built on the other, both directions, DTLS
# and TLS: the server's generated key and certificate (written by one backend) are verified by
# the other backend's client, name included, and a line goes each way. Then DTLS session
# resumption across backends: a client on one backend resumes with the ticket a server on the
# other issued (the ticket extension and the abbreviated handshake interoperate).
#
#   cross_backend.sh THIS_CLI OTHER_CLI
# Loopback only; ports are picked by the servers (port 0) and read from their output.
set -uo pipefail
this=$1 other=$2
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

# start_server NAME CLI KIND (dtls|tls) [SERVER ARGS...]: sets $port, server output in
# $tmp/NAME.out
start_server() {
    local name=$1 cli=$2 kind=$3
    shift 3
    "$cli" keygen --cn localhost --key "$tmp/$name.key" --cert "$tmp/$name.crt" --force \
        >/dev/null 2>&1 || fail "$name: keygen"
    "$cli" "$kind-server" --port 0 --bind 127.0.0.1 --key "$tmp/$name.key" \
        --cert "$tmp/$name.crt" --seconds 60 "$@" >"$tmp/$name.out" 2>&1 &
    pids+=($!)
    port=""
    for _ in $(seq 1 200); do
        port=$(sed -n 's/.*listening on \(udp\|tcp\) port \([0-9]*\).*/\2/p' "$tmp/$name.out" |
            head -1)
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    cat "$tmp/$name.out"
    fail "$name: the server did not start"
}

# case SERVER_CLI CLIENT_CLI KIND GREETING
run_case() {
    local server=$1 client=$2 kind=$3 greeting=$4 name
    name="$kind-$(basename "$(dirname "$(dirname "$server")")")"
    start_server "$name" "$server" "$kind"
    local out
    out=$(printf 'cross-backend line\n' | timeout 60 "$client" "$kind-client" 127.0.0.1 "$port" \
        --ca "$tmp/$name.crt" --name localhost --wait 700 2>&1)
    local rc=$?
    echo "$kind: $("$server" version) server, $("$client" version) client:"
    echo "$out" | sed 's/^/    /'
    [ $rc -eq 0 ] || fail "$kind client exited $rc"
    echo "$out" | grep -q "connected: " || fail "$kind: no connection"
    echo "$out" | grep -q "$greeting" || fail "$kind: no greeting from the server"
    for _ in $(seq 1 100); do
        grep -q "cross-backend line" "$tmp/$name.out" && return 0
        sleep 0.1
    done
    cat "$tmp/$name.out"
    fail "$kind: the server did not get the client's line"
}

# resume_case SERVER_CLI CLIENT_CLI: three DTLS connections from one client options object to a
# server with ticket keys: the first is full, the next two resume.
run_resume_case() {
    local server=$1 client=$2 name
    name="resume-$(basename "$(dirname "$(dirname "$server")")")"
    start_server "$name" "$server" dtls --echo --ticket-key-file "$tmp/$name.tickets"
    local out
    out=$(printf 'resume line\n' | timeout 120 "$client" dtls-client 127.0.0.1 "$port" \
        --ca "$tmp/$name.crt" --name localhost --reconnect 2 --interval 50 2>&1)
    local rc=$?
    echo "dtls resumption: $("$server" version) server, $("$client" version) client:"
    echo "$out" | grep -E "^connection |^done:" | sed 's/^/    /'
    [ $rc -eq 0 ] || { echo "$out"; fail "resumption: client exited $rc"; }
    echo "$out" | grep -q "^connection 1: full" || fail "resumption: first connection not full"
    echo "$out" | grep -q "^done: 2 resumed, 1 full, 0 failed" ||
        { echo "$out"; fail "resumption: want 2 resumed after 1 full"; }
}

"$this" version | grep -q sealnet || fail "$this does not run"
"$other" version | grep -q sealnet || fail "$other does not run"
[ "$("$this" version)" != "$("$other" version)" ] || fail "both CLIs use the same backend"
run_case "$this" "$other" dtls "Hello DTLS client"
run_case "$other" "$this" dtls "Hello DTLS client"
run_case "$this" "$other" tls "Hello"
run_case "$other" "$this" tls "Hello"
run_resume_case "$this" "$other"
run_resume_case "$other" "$this"
echo "cross-backend test passed"
