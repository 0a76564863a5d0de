#!/usr/bin/env bash
# `make demo`: runs the main job on built-in defaults. Exit status 0 only if every step happened.
# Prefers the full demo program (examples/demo); otherwise runs the DTLS seed exchange: a server
# with a freshly generated certificate and three clients that verify it.
set -euo pipefail
build=${1:-build}
if [ -x "$build/examples/demo" ]; then
    exec "$build/examples/demo"
fi
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$build/examples/dtls_server" --port 0 --save-cert "$dir/server.pem" --seconds 20 >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q "Listening on port" "$dir/server.log" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^Listening on port \([0-9]*\)$/\1/p' "$dir/server.log")
[ -n "$port" ] || { echo "demo: the server did not start" >&2; cat "$dir/server.log" >&2; exit 1; }
echo "server: listening on udp port $port with a fresh self-signed certificate"
ok=0
for i in 1 2 3; do
    if out=$("$build/examples/dtls_client" 127.0.0.1 "$port" --ca "$dir/server.pem" --name localhost --timeout 10); then
        echo "client $i: $(echo "$out" | tr '\n' ' ')"
        ok=$((ok + 1))
    else
        echo "client $i: failed" >&2
    fi
done
sleep 0.3
sed 's/^/server: /' "$dir/server.log"
echo "summary: $ok of 3 clients completed the DTLS exchange"
[ "$ok" -eq 3 ]
