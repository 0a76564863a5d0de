#!/usr/bin/env bash
# Many machines behind an L4 load balancer, built from Linux network namespaces
# (docs/scaling.md): a client namespace, a balancer namespace running nginx's stream module
# (UDP, `hash $remote_addr$remote_port consistent`), and two backend namespaces each running
# `sealnet dtls-server --workers 2` with the same cookie secret and ticket keys.
#
#   client 10.77.0.1 --- 10.77.0.2 [nginx] 10.77.1.1 --- 10.77.1.2 backend 1
#                                          10.77.2.1 --- 10.77.2.2 backend 2
#
# Shows: the clients spread over both backends; every handshake completes; a client stays on
# its backend; when backend 1 is killed its clients come back through the balancer on backend 2
# with resumed handshakes; every client finishes. Everything lives in namespaces this script
# creates and removes (trap), with private addresses; nothing touches the host's network.
# Skips (exit 77, one line) only where namespaces cannot be created.
#
# usage: test_scaling_lb.sh SEALNET_BINARY
set -euo pipefail

SEALNET=${1:?usage: $0 SEALNET_BINARY}
SEALNET=$(readlink -f "$SEALNET")
CLIENTS=${SN_LB_CLIENTS:-16}
ROUNDS=${SN_LB_ROUNDS:-14} # connections per client after the first
id=$(( $$ % 100000 ))
ns_c=snlb$id-c ns_lb=snlb$id-lb ns_b1=snlb$id-b1 ns_b2=snlb$id-b2
tmp=$(mktemp -d /tmp/sealnet-lb-XXXXXX)
pids=()

cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do { wait "$p"; } 2>/dev/null || true; done
    [ -f "$tmp/nginx/nginx.pid" ] && kill -9 "$(cat "$tmp/nginx/nginx.pid")" 2>/dev/null || true
    for n in "$ns_c" "$ns_lb" "$ns_b1" "$ns_b2"; do
        # Anything still inside (a child we lost track of) goes with its namespace.
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$n" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        echo "--- logs (failure) ---"
        for f in "$tmp"/b1.log "$tmp"/b2.log "$tmp"/nginx/error.log "$tmp"/client-1.log; do
            [ -f "$f" ] && { echo "== $f"; tail -n 30 "$f"; }
        done
    fi
    if [ -n "${SN_LB_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*"; exit 1; }

if [ "$(id -u)" -ne 0 ] || ! ip netns add "$ns_c" 2>/dev/null; then
    echo "SKIP: cannot create network namespaces here (needs root / CAP_SYS_ADMIN)"
    exit 77
fi
command -v nginx >/dev/null || fail "nginx is missing (scripts/deps.sh test installs nginx)"
stream_mod=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$stream_mod" ] || fail "$stream_mod is missing (scripts/deps.sh test installs libnginx-mod-stream)"

# ---- the network ---------------------------------------------------------------------------
for n in "$ns_lb" "$ns_b1" "$ns_b2"; do ip netns add "$n"; done
for n in "$ns_c" "$ns_lb" "$ns_b1" "$ns_b2"; do ip -n "$n" link set lo up; done
link() { # link NS_A IF_A ADDR_A NS_B IF_B ADDR_B
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3/24" dev "$2" && ip -n "$1" link set "$2" up
    ip -n "$4" addr add "$6/24" dev "$5" && ip -n "$4" link set "$5" up
}
link "$ns_c" "sl${id}c" 10.77.0.1 "$ns_lb" "sl${id}l0" 10.77.0.2
link "$ns_lb" "sl${id}l1" 10.77.1.1 "$ns_b1" "sl${id}b1" 10.77.1.2
link "$ns_lb" "sl${id}l2" 10.77.2.1 "$ns_b2" "sl${id}b2" 10.77.2.2

# ---- shared credentials and secrets --------------------------------------------------------
"$SEALNET" keygen --key "$tmp/key.pem" --cert "$tmp/cert.pem" >/dev/null
# The first backend creates the secret files (fresh random keys, mode 0600); the second loads
# the same ones, as a fleet would from its configuration management.

start_backend() { # start_backend NS LOG: sets port and pid
    ip netns exec "$1" "$SEALNET" dtls-server --port 0 --bind '*' --workers 2 --echo --idle 30 \
        --key "$tmp/key.pem" --cert "$tmp/cert.pem" \
        --ticket-key-file "$tmp/tickets.key" --cookie-secret-file "$tmp/cookie.secret" \
        >"$2" 2>&1 &
    pid=$!
    pids+=("$pid")
    local end=$((SECONDS + 20))
    until grep -q "^mode:" "$2"; do
        [ $SECONDS -lt $end ] || fail "backend in $1 did not start: $(cat "$2")"
        sleep 0.1
    done
    port=$(grep -o 'listening on udp port [0-9]*' "$2" | grep -o '[0-9]*$')
}
start_backend "$ns_b1" "$tmp/b1.log"
p1=$port pid_b1=$pid
start_backend "$ns_b2" "$tmp/b2.log"
p2=$port
[ "$(stat -c %a "$tmp/tickets.key")" = 600 ] || fail "tickets.key is not mode 0600"

# ---- the balancer --------------------------------------------------------------------------
# The balancer's port is fixed: it is alone in its own namespace, so nothing can collide.
LB_PORT=4433
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<CONF
load_module $stream_mod;
daemon off;
worker_processes 2;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log info;
events { worker_connections 4096; }
stream {
    log_format lb '\$remote_addr:\$remote_port \$upstream_addr \$status';
    access_log $tmp/nginx/access.log lb;
    upstream dtls_backends {
        zone dtls_backends 64k;
        # One client (address and port) keeps to one backend; consistent: losing a backend
        # moves only its own clients.
        hash \$remote_addr\$remote_port consistent;
        server 10.77.1.2:$p1 max_fails=1 fail_timeout=60s;
        server 10.77.2.2:$p2 max_fails=1 fail_timeout=60s;
    }
    server {
        listen 10.77.0.2:$LB_PORT udp reuseport;
        proxy_pass dtls_backends;
        # DTLS: a UDP "session" here is one client address and port. Keep it longer than the
        # game's quietest gap (keepalives), or a quiet client is re-hashed (to the same
        # backend, but through a new upstream socket the backend sees as a new peer).
        proxy_timeout 30s;
        proxy_responses 0;
    }
}
CONF
# proxy_responses 0 would end a session at once; unlimited is what DTLS wants: drop it.
sed -i '/proxy_responses 0;/d' "$tmp/nginx/nginx.conf"
ip netns exec "$ns_lb" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
pids+=($!)
end=$((SECONDS + 10))
until ip netns exec "$ns_lb" ss -uln 2>/dev/null | grep -q "10.77.0.2:$LB_PORT"; do
    [ $SECONDS -lt $end ] || fail "nginx did not start: $(cat "$tmp/nginx/error.log" 2>/dev/null)"
    sleep 0.1
done

# ---- the clients ---------------------------------------------------------------------------
cpids=()
for k in $(seq 1 "$CLIENTS"); do
    printf 'client-%d\n' "$k" | timeout 120 ip netns exec "$ns_c" "$SEALNET" dtls-client \
        10.77.0.2 "$LB_PORT" --ca "$tmp/cert.pem" --name localhost --timeout 6 \
        --reconnect "$ROUNDS" --interval 300 >"$tmp/client-$k.log" 2>&1 &
    cpids+=($!)
done
# Let every client complete a few connections, then kill backend 1 outright (no goodbye).
end=$((SECONDS + 60))
until [ "$(cat "$tmp"/client-*.log | grep -c '^connection 3: ')" -ge "$CLIENTS" ]; do
    [ $SECONDS -lt $end ] || fail "clients did not get to their third connection"
    sleep 0.1
done
cp "$tmp/b1.log" "$tmp/b1.before"
cp "$tmp/b2.log" "$tmp/b2.before"
kill -9 "$pid_b1"
{ wait "$pid_b1"; } 2>/dev/null || true
echo "backend 1 killed"

rc_all=0
for i in "${!cpids[@]}"; do
    if ! wait "${cpids[$i]}"; then
        echo "client $((i + 1)) failed or hung:"
        cat "$tmp/client-$((i + 1)).log"
        rc_all=1
    fi
done
[ $rc_all -eq 0 ] || fail "a client did not finish with a working connection"

# ---- what happened -------------------------------------------------------------------------
on_b1=0 on_b2=0 moved=0
for k in $(seq 1 "$CLIENTS"); do
    log="$tmp/client-$k.log"
    who="says: client-$k\$"
    n1=$(grep -c "$who" "$tmp/b1.before" || true)
    n2_before=$(grep -c "$who" "$tmp/b2.before" || true)
    n2_after=$(grep -c "$who" "$tmp/b2.log" || true)
    # Before the kill each client was on exactly one backend: its session stayed there.
    if [ "$n1" -gt 0 ] && [ "$n2_before" -gt 0 ]; then
        fail "client-$k was on both backends before the kill ($n1 on 1, $n2_before on 2)"
    fi
    [ $((n1 + n2_before)) -gt 0 ] || fail "client-$k reached no backend before the kill"
    if [ "$n1" -gt 0 ]; then
        on_b1=$((on_b1 + 1))
        # Its later connections went to backend 2 ...
        [ "$n2_after" -gt 0 ] || fail "client-$k (backend 1) never reached backend 2"
        moved=$((moved + 1))
    else
        on_b2=$((on_b2 + 1))
        # Nothing happened to its backend: every one of its handshakes completed.
        ! grep -q '^connection [0-9]* failed' "$log" || fail "client-$k (backend 2) lost a connection: $(cat "$log")"
    fi
    # ... and every connection after the first resumed: on backend 2 with backend 1's ticket.
    [ "$(grep -c ': full ' "$log")" -eq 1 ] || fail "client-$k: not exactly one full handshake: $(cat "$log")"
    grep -q '^connection 1: full' "$log" || fail "client-$k: first connection not full"
    # A client of the dead backend may lose a connection or two while the balancer finds out
    # (by ICMP errors: nginx has no UDP health checks); never more, and its last one works.
    bad=$(grep -c '^connection [0-9]* failed' "$log" || true)
    [ "$bad" -le 3 ] || fail "client-$k: $bad connections failed: $(cat "$log")"
    grep -q "^connection $((ROUNDS + 1)): resumed" "$log" || fail "client-$k: last connection: $(cat "$log")"
done
[ $on_b1 -gt 0 ] && [ $on_b2 -gt 0 ] || fail "clients not spread: $on_b1 on backend 1, $on_b2 on backend 2"
resumed_b2=$(grep -c 'resumed) \[worker' "$tmp/b2.log" || true)
failed=$(cat "$tmp"/client-*.log | grep -c '^connection [0-9]* failed' || true)
echo "clients: $on_b1 on backend 1, $on_b2 on backend 2; $moved moved to backend 2 after the kill"
echo "backend 2: $resumed_b2 resumed handshakes; client connections that failed over the kill: $failed"
echo "scaling lb test passed"
