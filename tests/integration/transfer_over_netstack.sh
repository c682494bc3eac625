#!/usr/bin/env bash
# transfer_over_netstack.sh TRANSFER — sprig-transfer over sprig's netstack (docs/netstack.md §11):
#   (a) a socat pty pair: `serve --listen serial:A --root D`, `put serial:B` and `get serial:B`
#       (skipped with a message when socat is not installed);
#   (b) UDP encapsulation: `serve --listen sprig+udp://127.0.0.1:P`, two clients with distinct
#       node ids putting, then getting, different files at the same time;
#   (c) refusals explained in words (no such tty, baud 1200).
# Every file is compared by SHA-256 with the original: what the server stored and what came back.
set -u
TRANSFER=${1:?usage: transfer_over_netstack.sh TRANSFER}
. "$(dirname "${BASH_SOURCE[0]}")/netstack_lib.sh"

head -c 300000 /dev/urandom >"$dir/one.bin"
head -c 200001 /dev/urandom >"$dir/two.bin"

# serve LOG ROOT URL
serve() {
    mkdir -p "$2"
    start_server "$dir/$1" "$TRANSFER" serve --listen "$3" --root "$2"
    wait_for "$dir/$1" "listening on sprig://2:69 via" 20 || fail "$1: server did not start"
}

# ---- (a) over a pty pair ----------------------------------------------------------------------
A=$dir/a
B=$dir/b
if pty_pair "$A" "$B"; then
    serve server-serial.log "$dir/root-serial" "serial:$A"
    retry serial-put timeout 120 "$TRANSFER" put --quiet "serial:$B" "$dir/one.bin" one
    same "serial put" "$dir/one.bin" "$dir/root-serial/one"
    retry serial-get timeout 120 "$TRANSFER" get --quiet "serial:$B" one "$dir/one.serial"
    same "serial get" "$dir/one.bin" "$dir/one.serial"
    stop_server "$spid"
else
    echo "SKIP: the pty-pair part needs socat (apt-get install socat; tools/bootstrap.sh does)"
fi

# ---- (b) over UDP encapsulation, two clients at once ---------------------------------------------
port=$(udp_port)
[ -n "$port" ] || fail "no free UDP port"
url="sprig+udp://127.0.0.1:$port"
serve server-udp.log "$dir/root-udp" "$url"
retry udp-put-3 timeout 120 "$TRANSFER" put --quiet "$url?node=3" "$dir/one.bin" one &
p3=$!
retry udp-put-4 timeout 120 "$TRANSFER" put --quiet "$url?node=4" "$dir/two.bin" two &
p4=$!
wait "$p3" || fail "udp put from node 3"
wait "$p4" || fail "udp put from node 4"
same "udp put (node 3)" "$dir/one.bin" "$dir/root-udp/one"
same "udp put (node 4)" "$dir/two.bin" "$dir/root-udp/two"
retry udp-get-3 timeout 120 "$TRANSFER" get --quiet "$url?node=3" two "$dir/two.udp" &
p3=$!
retry udp-get-4 timeout 120 "$TRANSFER" get --quiet "$url?node=4" one "$dir/one.udp" &
p4=$!
wait "$p3" || fail "udp get from node 3"
wait "$p4" || fail "udp get from node 4"
same "udp get (node 3)" "$dir/two.bin" "$dir/two.udp"
same "udp get (node 4)" "$dir/one.bin" "$dir/one.udp"
stop_server "$spid"

# ---- (c) refusals, explained -------------------------------------------------------------------------
expect_error "no tty" "serial device $dir/none not found" "$TRANSFER" put "serial:$dir/none" \
    "$dir/one.bin" x
expect_error "baud 1200" "baud=1200 is refused" "$TRANSFER" get "serial:$dir/none?baud=1200" x \
    "$dir/x"

echo "PASS: sprig-transfer over serial (pty pair) and sprig+udp (two clients at once)"
