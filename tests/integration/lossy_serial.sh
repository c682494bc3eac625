#!/usr/bin/env bash
# lossy_serial.sh TRANSFER ECHO_SERVER ECHO_CLIENT — sprig's tools over a serial line that drops,
# corrupts and inserts bytes: tools/lossy_relay.py in serial mode makes two ptys A and B and
# relays between them with faults (docs/netstack.md §12); the server opens serial:A, clients
# serial:B. The netstack's COBS + CRC-32 framing must throw away every damaged frame and its
# STREAM must resend them:
#   (a) sprig-transfer put and get of a random file, compared by SHA-256 both ways;
#   (b) sprig-echo-client echo and count (a unary call and a server stream).
# The relay's counters must show drops, corruptions and inserts in both directions, so the test
# cannot pass over a clean line. The echo client checks every reply itself (count: each value in
# sequence, all N of them), so its exit status is the verdict. Each client runs once (a tool
# error fails the test) with a generous bound: a slow machine makes it slow, not fail.
#
# Rates: a fault costs the whole frame it hits, so the frame loss is about 1 - (1 - p)^frame;
# with p = 2e-4 per byte and mtu=256 that is ~5% of the frames (at 1% per byte no 256-byte frame
# would get through). Measured figures are in docs/netstack.md §12.
set -u
TRANSFER=${1:?usage: lossy_serial.sh TRANSFER ECHO_SERVER ECHO_CLIENT}
ECHO_SERVER=${2:?usage: lossy_serial.sh TRANSFER ECHO_SERVER ECHO_CLIENT}
ECHO_CLIENT=${3:?usage: lossy_serial.sh TRANSFER ECHO_SERVER ECHO_CLIENT}
. "$(dirname "${BASH_SOURCE[0]}")/netstack_lib.sh"

skip_without_python

size=262144
mtu=256
faults=(--drop 0.0001 --corrupt 0.00005 --garbage 0.00005 --burst 3)


A=$dir/a
B=$dir/b
start_relay relay serial --link-a "$A" --link-b "$B" --seed 11 "${faults[@]}"
echo "$(cat "$dir/relay.out") ${faults[*]}"

# ---- (a) sprig-transfer ---------------------------------------------------------------------------
head -c "$size" /dev/urandom >"$dir/file.bin"
mkdir -p "$dir/root"
start_server "$dir/server.log" "$TRANSFER" serve --listen "serial:$A?mtu=$mtu" --root "$dir/root"
wait_for "$dir/server.log" "listening on sprig://2:69 via" 20 || fail "transfer server did not start"
timed put timeout 300 "$TRANSFER" put --quiet "serial:$B?mtu=$mtu" "$dir/file.bin" file
same "serial put" "$dir/file.bin" "$dir/root/file"
timed get timeout 300 "$TRANSFER" get --quiet "serial:$B?mtu=$mtu" file "$dir/file.back"
same "serial get" "$dir/file.bin" "$dir/file.back"
stop_server "$spid"

# ---- (b) sprig-echo-client ------------------------------------------------------------------------
start_server "$dir/echo-server.log" "$ECHO_SERVER" --listen "serial:$A?mtu=$mtu"
wait_for "$dir/echo-server.log" "listening on sprig://2:1" 20 || fail "echo server did not start"
timed echo timeout 120 "$ECHO_CLIENT" --connect "serial:$B?mtu=$mtu" --timeout 60000 \
    echo "hello over a lossy line"
grep -q -- '"hello over a lossy line" -> "hello over a lossy line"' "$dir/echo.log" ||
    fail "echo: unexpected output: $(cat "$dir/echo.log")"
timed count timeout 120 "$ECHO_CLIENT" --connect "serial:$B?mtu=$mtu" --timeout 60000 count 1000
grep -q -- '^count: *1 2 3 .* (OK)$' "$dir/count.log" ||
    fail "count: unexpected output: $(cat "$dir/count.log")"
stop_server "$spid"

stop_server "$rpid"
cat "$dir/relay.log"
expect_faults relay a-\>b dropped corrupted inserted
expect_faults relay b-\>a dropped corrupted inserted
echo "PASS: sprig-transfer and sprig-echo over a lossy serial line (${faults[*]}, mtu=$mtu)"
