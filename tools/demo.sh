#!/usr/bin/env bash
# sprig's demo: the README's main command.
#
#   bash tools/demo.sh [ARGS...]
#
# Installs what it needs (tools/bootstrap.sh; Debian 12, root or sudo), builds the echo example
# in build/gcc (the same configuration tools/test.sh uses) and runs
#   build/gcc/examples/sockecho/sprig-sockecho --demo [ARGS...]
# which starts an echo server and a client over unix and tcp sockets in one process and prints
# what happened. Env: SPRIG_JOBS (default 2), SPRIG_BUILD_ROOT (default build).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${SPRIG_JOBS:-2}
B=${SPRIG_BUILD_ROOT:-build}
DIR=$B/gcc
TARGET=sprig-sockecho
BIN=$DIR/examples/sockecho/$TARGET

run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    "$@"
}

run bash tools/bootstrap.sh
run cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc \
    -DSPRIG_BUILD_TESTS=ON -DSPRIG_BUILD_FUZZ=OFF -DSPRIG_SANITIZE=OFF
targets=$(cmake --build "$DIR" --target help)
if ! grep -qw -- "$TARGET" <<<"$targets"; then
    echo "demo.sh: error: the build has no $TARGET target: examples/sockecho/CMakeLists.txt" \
        "is missing or does not define it, so there is no demo to run yet" >&2
    exit 1
fi
run cmake --build "$DIR" -j"$JOBS" --target "$TARGET"
if [[ ! -x $BIN ]]; then
    echo "demo.sh: error: $TARGET built, but $BIN is missing (the demo must be built there)" >&2
    exit 1
fi
echo
run "$BIN" --demo "$@"
