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
# checks the answers and stops the server; then a file-transfer demo: sprig-transfer serves a
# temporary directory on unix, TCP and UDP, a random file goes up over each and comes back over
# another, and every copy is compared (sha256) with the original. The socket-level demo is
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
run cmake --build "$DIR" -j"$JOBS" --target "$TARGET" sprig-echo-server sprig-transfer
if [[ ! -x $BIN ]]; then
    echo "demo.sh: error: $TARGET built, but $BIN is missing (the demo must be built there)" >&2
    exit 1
fi
echo
run "$BIN" --demo "$@"

# ---- file transfer -------------------------------------------------------------------------
XFER=$DIR/transfer/os/tools/sprig-transfer
WORK=$(mktemp -d /tmp/sprig-demo-XXXXXX)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/root"
head -c 4000000 /dev/urandom >"$WORK/original.bin"
echo
echo "== file transfer: sprig-transfer serve on unix, tcp and udp (root $WORK/root)"
"$XFER" serve --root "$WORK/root" --listen "unix:$WORK/xfer.sock" --listen tcp://127.0.0.1:0 \
    --listen udp://127.0.0.1:0 >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    (($(grep -c 'listening on' "$WORK/serve.log") >= 3)) && break
    sleep 0.05
done
tcp_url=$(sed -n 's/.*listening on \(tcp:[^ ]*\).*/\1/p' "$WORK/serve.log")
udp_url=$(sed -n 's/.*listening on \(udp:[^ ]*\).*/\1/p' "$WORK/serve.log")
if [[ -z $tcp_url || -z $udp_url ]]; then
    echo "demo.sh: error: sprig-transfer serve did not start:" >&2
    cat "$WORK/serve.log" >&2
    exit 1
fi
want=$(sha256sum <"$WORK/original.bin" | cut -d' ' -f1)
# put over one transport, get over the next: every file makes a round trip.
urls=("unix:$WORK/xfer.sock" "$tcp_url" "$udp_url")
for i in 0 1 2; do
    up=${urls[$i]}
    down=${urls[$(((i + 1) % 3))]}
    run "$XFER" put "$up" "$WORK/original.bin" "file$i.bin"
    run "$XFER" get "$down" "file$i.bin" "$WORK/back$i.bin"
    got=$(sha256sum <"$WORK/back$i.bin" | cut -d' ' -f1)
    if [[ $got != "$want" ]]; then
        echo "demo.sh: error: file$i.bin came back different (sha256 $got, want $want)" >&2
        exit 1
    fi
    echo "ok: 4000000 bytes up over ${up%%:*}, back over ${down%%:*}, sha256 equal"
done
echo "file-transfer demo: OK"
