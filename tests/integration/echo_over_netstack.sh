#!/usr/bin/env bash
# echo_over_netstack.sh SERVER CLIENT — sprig-echo-server and sprig-echo-client over sprig's
# netstack (docs/netstack.md §11):
#   (a) a pty pair: `serial:A` on the server, `serial:B` on the client (socat when installed,
#       else a small Python relay between two ptys);
#   (b) UDP encapsulation on 127.0.0.1: `sprig+udp://127.0.0.1:P?listen=1` and
#       `sprig+udp://127.0.0.1:P` (each client run from a new UDP port: the listener's peer
#       table follows node 1 to it).
# Each runs echo, count 5, sum 1 2 3 and chat a b and checks the output. Every step is bounded.
set -u
SERVER=${1:?usage: echo_over_netstack.sh SERVER CLIENT}
CLIENT=${2:?usage: echo_over_netstack.sh SERVER CLIENT}
PY=${SPRIG_PYTHON:-python3}

dir=$(mktemp -d "${TMPDIR:-/tmp}/sprig-echo-ns.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$dir"/*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
    done
    exit 1
}

# wait_for FILE PATTERN SECONDS
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# run_client URL NAME EXPECTED-PATTERN ARGS...: retried a few times (a loaded machine may delay
# the first handshake), each try bounded
run_client() {
    local url=$1 name=$2 want=$3
    shift 3
    local try out
    for try in 1 2 3; do
        out=$(timeout 30 "$CLIENT" --connect "$url" --timeout 10000 "$@" 2>&1) &&
            grep -q -- "$want" <<<"$out" && {
            echo "$name: $out"
            return 0
        }
        echo "$name: try $try failed: $out" >&2
        sleep 1
    done
    fail "$name over $url: expected '$want'"
}

run_all() {
    local url=$1 tag=$2
    run_client "$url" "$tag echo" '"hello" -> "hello"' echo hello
    run_client "$url" "$tag count" '1 2 3 4 5 (OK)' count 5
    run_client "$url" "$tag sum" '1 + 2 + 3 = 6' sum 1 2 3
    run_client "$url" "$tag chat" '2 replies (OK)' chat a b
}

# start_server LOG URL: the server itself in the background (its own pid in $spid, so that it
# can be killed for sure), with a watchdog bounding its life should this script be killed
start_server() {
    "$SERVER" --listen "$2" >"$1" 2>&1 &
    spid=$!
    pids+=($spid)
    (timeout 150 tail --pid="$spid" -f /dev/null || kill -9 "$spid" 2>/dev/null) &
    pids+=($!)
}

# SIGTERM, up to 10 s for a clean exit, then SIGKILL (a sanitizer's exit-time leak check can
# hang on a loaded machine: never leave a server behind)
stop_server() {
    kill "$1" 2>/dev/null
    timeout 10 tail --pid="$1" -f /dev/null 2>/dev/null
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# ---- (a) over a pty pair ----------------------------------------------------------------------
A=$dir/a
B=$dir/b
if command -v socat >/dev/null 2>&1; then
    timeout 120 socat -d -d "pty,raw,echo=0,link=$A" "pty,raw,echo=0,link=$B" \
        2>"$dir/socat.log" &
    pids+=($!)
else
    # Two ptys in raw mode, their slaves linked at A and B, masters relayed to each other.
    timeout 120 "$PY" - "$A" "$B" >"$dir/relay.log" 2>&1 <<'EOF' &
import os, select, sys, tty
fds = []
for link in sys.argv[1:3]:
    m, s = os.openpty()
    tty.setraw(s)
    os.symlink(os.ttyname(s), link)
    fds.append((m, s))
(ma, _sa), (mb, _sb) = fds
peer = {ma: mb, mb: ma}
while True:
    r, _, _ = select.select([ma, mb], [], [])
    for fd in r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if data:
            os.write(peer[fd], data)
EOF
    pids+=($!)
fi
for ((i = 0; i < 100; i++)); do
    [ -e "$A" ] && [ -e "$B" ] && break
    sleep 0.1
done
[ -e "$A" ] && [ -e "$B" ] || fail "no pty pair at $A, $B"

start_server "$dir/server-serial.log" "serial:$A"
wait_for "$dir/server-serial.log" "listening on sprig://2:1" 20 || fail "serial server did not start"
run_all "serial:$B" serial
stop_server "$spid"

# ---- (b) over UDP encapsulation ------------------------------------------------------------------
port=$("$PY" -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[ -n "$port" ] || fail "no free UDP port"
start_server "$dir/server-udp.log" "sprig+udp://127.0.0.1:$port?listen=1"
wait_for "$dir/server-udp.log" "listening on sprig://2:1" 20 || fail "udp server did not start"
run_all "sprig+udp://127.0.0.1:$port" udp
stop_server "$spid"

echo "PASS: echo over serial (pty pair) and sprig+udp"
