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

. "$(dirname "${BASH_SOURCE[0]}")/netstack_lib.sh"

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

# ---- (a) over a pty pair ----------------------------------------------------------------------
A=$dir/a
B=$dir/b
if ! pty_pair "$A" "$B"; then
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
    wait_ptys "$A" "$B"
fi

start_server "$dir/server-serial.log" "$SERVER" --listen "serial:$A"
wait_for "$dir/server-serial.log" "listening on sprig://2:1" 20 || fail "serial server did not start"
run_all "serial:$B" serial
stop_server "$spid"

# ---- (b) over UDP encapsulation ------------------------------------------------------------------
port=$(udp_port)
[ -n "$port" ] || fail "no free UDP port"
start_server "$dir/server-udp.log" "$SERVER" --listen "sprig+udp://127.0.0.1:$port?listen=1"
wait_for "$dir/server-udp.log" "listening on sprig://2:1" 20 || fail "udp server did not start"
run_all "sprig+udp://127.0.0.1:$port" udp
stop_server "$spid"

echo "PASS: echo over serial (pty pair) and sprig+udp"
