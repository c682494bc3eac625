#!/usr/bin/env bash
# sockecho_over_netstack.sh SOCKECHO — sprig-sockecho over sprig's netstack (docs/netstack.md §11):
#   (a) a socat pty pair: `--listen serial:A` and `--connect serial:B` for SEQPACKET, STREAM
#       (100 kB messages) and DGRAM; skipped with a message when socat is not installed;
#   (b) UDP encapsulation: one `--listen sprig+udp://127.0.0.1:P` and two clients with distinct
#       node ids at the same time (SEQPACKET, then DGRAM), through the listener's peer table;
#   (c) refusals explained in words: no such tty, baud 1200, a missing node id, a bad URL.
# The client compares every echo with what it sent and exits 0 only if all matched.
set -u
SOCKECHO=${1:?usage: sockecho_over_netstack.sh SOCKECHO}
. "$(dirname "${BASH_SOURCE[0]}")/netstack_lib.sh"

# serve LOG TYPE URL: a server of TYPE, waited for
serve() {
    start_server "$dir/$1" "$SOCKECHO" --listen "$3" --type "$2" --quiet
    wait_for "$dir/$1" "echo server on sprig://2:7 via" 20 || fail "$1: server did not start"
}

# ---- (a) over a pty pair --------------------------------------------------------------------------
A=$dir/a
B=$dir/b
if pty_pair "$A" "$B"; then
    for spec in seqpacket:4000:20 stream:100000:5 dgram:1000:20; do
        IFS=: read -r type size count <<<"$spec"
        serve "server-serial-$type.log" "$type" "serial:$A"
        retry "serial-$type" timeout 60 "$SOCKECHO" --connect "serial:$B" --type "$type" \
            --size "$size" --count "$count"
        grep -q "$count echo(es) matched" "$dir/serial-$type.log" || fail "serial $type: no match"
        echo "serial $type: $(tail -n 1 "$dir/serial-$type.log")"
        stop_server "$spid"
    done
else
    echo "SKIP: the pty-pair part needs socat (apt-get install socat; tools/bootstrap.sh does)"
fi

# ---- (b) over UDP encapsulation, two clients at once ---------------------------------------------
port=$(udp_port)
[ -n "$port" ] || fail "no free UDP port"
for type in seqpacket dgram; do
    serve "server-udp-$type.log" "$type" "sprig+udp://127.0.0.1:$port"
    size=3000
    [ "$type" = dgram ] && size=900
    c1=()
    for node in 3 4; do
        retry "udp-$type-$node" timeout 60 "$SOCKECHO" \
            --connect "sprig+udp://127.0.0.1:$port?node=$node" --type "$type" --size "$size" \
            --count 1000 &
        c1+=($!)
    done
    for p in "${c1[@]}"; do
        wait "$p" || fail "udp $type: a client failed"
    done
    for node in 3 4; do
        grep -q "1000 echo(es) matched" "$dir/udp-$type-$node.log" || fail "udp $type node $node"
        echo "udp $type node $node: $(tail -n 1 "$dir/udp-$type-$node.log")"
    done
    stop_server "$spid"
done

# ---- (c) refusals, explained -------------------------------------------------------------------------
expect_error "no tty" "serial device $dir/none not found" "$SOCKECHO" --connect "serial:$dir/none"
expect_error "baud 1200" "baud=1200 is refused" "$SOCKECHO" --connect "serial:$dir/none?baud=1200"
expect_error "missing node id" "node= needs a value" "$SOCKECHO" \
    --connect "sprig+udp://127.0.0.1:$port?node="
expect_error "bad URL" "not a valid URL" "$SOCKECHO" --connect "tcp://[::1"

echo "PASS: sprig-sockecho over serial (pty pair) and sprig+udp (two clients at once)"
