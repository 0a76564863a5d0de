#!/usr/bin/env bash
# `make demo`: runs the main job on built-in defaults. Exit status 0 only if every step happened.
set -euo pipefail
build=${1:-build}
if [ -x "$build/examples/demo" ]; then
    exec "$build/examples/demo"
fi
echo "demo: $build/examples/demo was not built" >&2
exit 1
