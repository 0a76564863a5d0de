#!/usr/bin/env bash
# Installs sealnet into a temporary prefix and builds a consumer with pkg-config and with
# find_package(sealnet), then runs both. Usage: install_test.sh SOURCE_DIR
set -euo pipefail
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$work/prefix" \
      -DSEALNET_BUILD_TESTS=OFF -DSEALNET_BUILD_BENCH=OFF -DSEALNET_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$work/build" -j 2 >/dev/null
cmake --install "$work/build" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
echo "pkg-config: $(pkg-config --cflags --libs sealnet)"
cc -std=c11 -o "$work/consumer_pc" "$src/tests/system/install/consumer.c" $(pkg-config --cflags --libs sealnet)
LD_LIBRARY_PATH="$libdir" "$work/consumer_pc"
cmake -S "$src/tests/system/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer/consumer"
echo "install test passed"
