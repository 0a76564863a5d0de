#!/usr/bin/env bash
# Installs sealnet into a temporary prefix and builds a consumer with pkg-config and with
# find_package(sealnet), then runs both; also a static link from pkg-config --static, which
# needs the TLS backend's libraries in Libs.private / Requires.private.
# Usage: install_test.sh SOURCE_DIR [openssl|mbedtls]
set -euo pipefail
src=$1
backend=${2:-openssl}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$work/prefix" \
      -DSEALNET_BUILD_TESTS=OFF -DSEALNET_BUILD_BENCH=OFF -DSEALNET_BUILD_EXAMPLES=OFF \
      -DSEALNET_TLS_BACKEND="$backend" >/dev/null
cmake --build "$work/build" -j 2 >/dev/null
cmake --install "$work/build" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
echo "pkg-config: $(pkg-config --cflags --libs sealnet)"
cc -std=c11 -o "$work/consumer_pc" "$src/tests/system/install/consumer.c" $(pkg-config --cflags --libs sealnet)
LD_LIBRARY_PATH="$libdir" "$work/consumer_pc" | tee "$work/pc.out"
case "$backend" in
openssl) grep -q "(OpenSSL" "$work/pc.out" ;;
mbedtls) grep -q "(mbed TLS" "$work/pc.out" ;;
esac
# Static: only libsealnet.a is in the prefix's view, so the backend must come from the .pc file.
echo "pkg-config --static: $(pkg-config --static --libs sealnet)"
cc -std=c11 -o "$work/consumer_static" "$src/tests/system/install/consumer.c" \
    $(pkg-config --cflags sealnet) "$libdir/libsealnet.a" \
    $(pkg-config --static --libs sealnet | sed 's/-lsealnet//')
"$work/consumer_static"
cmake -S "$src/tests/system/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer/consumer"
echo "install test passed"
