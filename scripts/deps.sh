#!/usr/bin/env bash
# Installs the Debian packages sealnet needs for a given job, and only those that are missing.
#   scripts/deps.sh build   compiler, CMake, OpenSSL and mbed TLS headers (both TLS backends), libmicrohttpd (sealnet --metrics)
#   scripts/deps.sh test    build + cmocka + the interop peers (openssl, gnutls-bin, nodejs, godot3-server, python3, nginx) + tshark
#   scripts/deps.sh fuzz    test + clang and its fuzzer runtime
# Runs `apt-get update` once, and only when something is missing.
set -euo pipefail
job=${1:-build}

pkgs=(build-essential cmake pkg-config libssl-dev openssl libmbedtls-dev libmicrohttpd-dev)
case "$job" in
build) ;;
test) pkgs+=(libcmocka-dev gnutls-bin nodejs procps clang libclang-rt-dev godot3-server python3 iproute2 nginx libnginx-mod-stream tshark) ;;
fuzz) pkgs+=(libcmocka-dev gnutls-bin nodejs procps clang libclang-rt-dev) ;;
valgrind) pkgs+=(valgrind) ;;
docs) pkgs+=(doxygen) ;;
*) echo "deps.sh: unknown job '$job' (build, test, fuzz, valgrind, docs)" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    # nodejs may come from outside Debian (nodesource) or be a bare binary: a working `node` counts.
    if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    SUDO=""
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; fi
    if [ -z "$SUDO" ]; then
        echo "sealnet needs these Debian packages: ${missing[*]}" >&2
        echo "run as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
else
    SUDO=""
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
