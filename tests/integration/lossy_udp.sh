#!/usr/bin/env bash
# lossy_udp.sh TRANSFER MODE — sprig-transfer put and get of a random file through
# tools/lossy_relay.py in udp mode (docs/netstack.md §12), compared by SHA-256 both ways:
#   MODE udp        udp:// (the DGRAM carrier: the transfer engine retransmits itself) with
#                   datagrams dropped, duplicated, delayed (reordered) and corrupted (each
#                   chunk's CRC-32 trailer must catch every corrupted one);
#   MODE sprig+udp  sprig+udp:// (the netstack's STREAM over UDP encapsulation) with datagrams
#                   dropped, duplicated, reordered and corrupted: the netstack's checksums must
#                   catch every corrupted one.
# The relay's counters must show that it injected each kind of fault, so the test cannot pass
# over a clean line. Every step is bounded generously: a slow machine makes it slow, not fail.
set -u
TRANSFER=${1:?usage: lossy_udp.sh TRANSFER MODE}
MODE=${2:?usage: lossy_udp.sh TRANSFER MODE}
. "$(dirname "${BASH_SOURCE[0]}")/netstack_lib.sh"

skip_without_python

mkdir -p "$dir/root"
case $MODE in
udp)
    size=1000000
    start_server "$dir/server.log" "$TRANSFER" serve --listen udp://127.0.0.1:0 --root "$dir/root"
    wait_for "$dir/server.log" "listening on udp://" 20 || fail "server did not start"
    sport=$(grep -o 'listening on udp://127.0.0.1:[0-9]*' "$dir/server.log" | head -n 1 |
        sed 's/.*://')
    # Corrupted datagrams reach the engine (loopback UDP does not verify checksums, and the relay
    # recomputes them anyway): each fails its chunk's CRC-32 trailer (field 1003), is dropped
    # and recovered like a loss (docs/transfer.md, DGRAM carrier). LOSSY_UDP_CORRUPT changes
    # the rate.
    faults=(--drop 0.05 --dup 0.05 --reorder 0.05 --delay-ms 20
        --corrupt "${LOSSY_UDP_CORRUPT:-0.05}")
    kinds=(dropped duplicated delayed corrupted)
    scheme=udp
    ;;
sprig+udp)
    size=400000
    sport=$(udp_port)
    [ -n "$sport" ] || fail "no free UDP port"
    start_server "$dir/server.log" "$TRANSFER" serve --listen "sprig+udp://127.0.0.1:$sport" \
        --root "$dir/root"
    wait_for "$dir/server.log" "listening on sprig://2:69 via" 20 || fail "server did not start"
    # One bit flipped per corrupted datagram: the netstack's 16-bit Internet checksum detects
    # every single-bit error, but not two flips of the same bit position in two 16-bit words in
    # opposite directions (~1 in 32 two-bit errors). With --burst 3 about one run in three
    # passes such a datagram up; the transfer's CRC-32 then fails it with DATA_LOSS, never with
    # a wrong file (docs/netstack.md §12). Below real UDP the kernel's checksum stands first.
    faults=(--drop 0.03 --dup 0.01 --reorder 0.02 --delay-ms 10 --corrupt 0.03 --burst 1)
    kinds=(dropped duplicated delayed corrupted)
    scheme=sprig+udp
    ;;
*)
    echo "usage: lossy_udp.sh TRANSFER udp|sprig+udp" >&2
    exit 2
    ;;
esac

head -c "$size" /dev/urandom >"$dir/file.bin"
start_relay relay udp --listen 127.0.0.1:0 --server "127.0.0.1:$sport" --seed 7 "${faults[@]}"
rport=$(grep -o 'udp 127.0.0.1:[0-9]*' "$dir/relay.out" | sed 's/.*://')
url="$scheme://127.0.0.1:$rport"
echo "$MODE: $size bytes through $(cat "$dir/relay.out")"

timed put timeout 300 "$TRANSFER" put --quiet "$url" "$dir/file.bin" file
same "$MODE put" "$dir/file.bin" "$dir/root/file"
timed get timeout 300 "$TRANSFER" get --quiet "$url" file "$dir/file.back"
same "$MODE get" "$dir/file.bin" "$dir/file.back"

stop_server "$rpid"
cat "$dir/relay.log"
expect_faults relay client-\>server "${kinds[@]}"
expect_faults relay server-\>client "${kinds[@]}"
stop_server "$spid"
echo "PASS: sprig-transfer over $MODE through a lossy relay (${faults[*]})"
