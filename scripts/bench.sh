#!/usr/bin/env bash
# `make bench`: runs every benchmark program in bench/ with its default settings.
set -euo pipefail
build=${1:-build}
status=0
for b in "$build"/bench/*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || status=1
done
exit $status
