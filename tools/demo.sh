#!/usr/bin/env bash
# sprig's demo: the README's main command.
#
#   bash tools/demo.sh [ARGS...]
#
# Installs what it needs (tools/bootstrap.sh; Debian 12, root or sudo), builds the RPC echo
# example in build/gcc (the same configuration tools/test.sh uses) and runs
#   build/gcc/examples/echo/sprig-echo-client --demo [ARGS...]
# which starts sprig-echo-server on a unix socket and on TCP, makes every kind of call (unary,
# server streaming, client streaming, bidirectional, and pw_rpc's stock EchoService) over both,
# checks the answers and stops the server. The socket-level demo is
# build/gcc/examples/sockecho/sprig-sockecho --demo.
# Env: SPRIG_JOBS (default 2), SPRIG_BUILD_ROOT (default build).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${SPRIG_JOBS:-2}
B=${SPRIG_BUILD_ROOT:-build}
DIR=$B/gcc
TARGET=sprig-echo-client
BIN=$DIR/examples/echo/$TARGET

run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    "$@"
}

run bash tools/bootstrap.sh
run cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc -DSPRIG_WITH_RPC=ON \
    -DSPRIG_BUILD_TESTS=ON -DSPRIG_BUILD_FUZZ=OFF -DSPRIG_SANITIZE=OFF
targets=$(cmake --build "$DIR" --target help)
if ! grep -qw -- "$TARGET" <<<"$targets"; then
    echo "demo.sh: error: the build has no $TARGET target: examples/echo/CMakeLists.txt" \
        "is missing or does not define it, so there is no demo to run yet" >&2
    exit 1
fi
run cmake --build "$DIR" -j"$JOBS" --target "$TARGET" sprig-echo-server
if [[ ! -x $BIN ]]; then
    echo "demo.sh: error: $TARGET built, but $BIN is missing (the demo must be built there)" >&2
    exit 1
fi
echo
run "$BIN" --demo "$@"
