#!/usr/bin/env bash
# A machine without cmocka (a library user's, or a fresh one before `make test`): configuring
# succeeds with a one-line note and no tests, `make demo` builds only the demo and prints only
# its transcript, and asking for the tests explicitly fails with a message naming cmocka.
# cmocka is hidden from pkg-config (PKG_CONFIG_LIBDIR at an empty folder) and from CMake's own
# package search (CMAKE_DISABLE_FIND_PACKAGE_cmocka). Usage: fresh_machine_test.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/no-pkgconfig"
export PKG_CONFIG_LIBDIR="$work/no-pkgconfig" PKG_CONFIG_PATH=
hide="--no-warn-unused-cli -DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON"
fail() { echo "FAIL: $*" >&2; exit 1; }

# The hiding works: pkg-config no longer sees cmocka.
if pkg-config --exists cmocka 2>/dev/null; then fail "cmocka still visible to pkg-config"; fi

# A plain configure: succeeds, says why there are no tests, configures none.
cmake -S "$src" -B "$work/plain" $hide >"$work/plain.log" 2>&1 ||
    { cat "$work/plain.log"; fail "plain configure without cmocka failed"; }
grep -q "cmocka not found: tests not built" "$work/plain.log" ||
    { cat "$work/plain.log"; fail "no note about the tests"; }
[ "$(grep -c cmocka "$work/plain.log")" -eq 1 ] || { cat "$work/plain.log"; fail "more than one line about cmocka"; }
[ ! -e "$work/plain/tests" ] || fail "tests configured without cmocka"

# Tests asked for explicitly: configuring fails, naming cmocka and the fix.
if cmake -S "$src" -B "$work/with-tests" $hide -DSEALNET_BUILD_TESTS=ON >"$work/with-tests.log" 2>&1; then
    fail "-DSEALNET_BUILD_TESTS=ON configured without cmocka"
fi
grep -q "the tests need cmocka" "$work/with-tests.log" ||
    { cat "$work/with-tests.log"; fail "no clear message for SEALNET_BUILD_TESTS=ON"; }

# make demo: builds the demo program only and prints its transcript, not the build.
out=$(make -s --no-print-directory -C "$src" demo BUILD="$work/demo" JOBS=2 CMAKE_FLAGS="$hide" 2>&1) ||
    { echo "$out"; fail "make demo failed"; }
echo "$out" | grep -q "^sealnet demo: " || { echo "$out"; fail "no demo transcript"; }
if echo "$out" | grep -Eq "Building C object|Linking C|Configuring done|-- "; then
    echo "$out"; fail "make demo printed the build"
fi
[ -x "$work/demo/examples/demo" ] || fail "no demo program"
for other in tools/sealnet examples/dtls_server bench/dtls tests; do
    [ ! -e "$work/demo/$other" ] || fail "make demo built $other too"
done
echo "fresh machine test passed"
