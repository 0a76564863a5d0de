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
# README "Where the shared library is found at run time": without help the loader fails, naming
# the library; with an rpath from pkg-config's libdir it starts.
if "$work/consumer_pc" >"$work/norpath.log" 2>&1; then
    echo "a program linked to a private prefix started without rpath or LD_LIBRARY_PATH" >&2
    exit 1
fi
grep -q "libsealnet.so.0: cannot open shared object file" "$work/norpath.log"
cc -std=c11 -o "$work/consumer_rpath" "$src/tests/system/install/consumer.c" \
   $(pkg-config --cflags --libs sealnet) -Wl,-rpath,"$(pkg-config --variable=libdir sealnet)"
env -u LD_LIBRARY_PATH "$work/consumer_rpath"
cmake -S "$src/tests/system/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer/consumer"
# sealnet::sealnet_static: no libsealnet.so needed at run time.
if readelf -d "$work/consumer/consumer_static" | grep -q 'NEEDED.*libsealnet'; then
    echo "consumer_static needs libsealnet.so" >&2
    exit 1
fi
env -u LD_LIBRARY_PATH "$work/consumer/consumer_static"
echo "install test passed"
