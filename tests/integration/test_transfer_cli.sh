#!/usr/bin/env bash
# sprig-transfer end to end (registered by transfer/os/tools/CMakeLists.txt as the ctest
# integration_transfer_cli): a server on a unix socket, on tcp://127.0.0.1:0 and on
# udp://127.0.0.1:0 (DGRAM: the engine recovers losses itself); put and get files
# of 0 B, 1 B, 100 KiB and 3 MiB of random bytes both ways over all three, byte-exact (cmp, sha256);
# get --resume and put --resume from partial files; refusals with their exit codes (NOT_FOUND 15,
# INVALID_ARGUMENT 13, PERMISSION_DENIED 17); put and get over udp through a relay that corrupts
# and drops datagrams. Nothing here depends on timing: the only waits are for the server and the
# relay to print their addresses, bounded by a generous limit.
#
#   test_transfer_cli.sh PATH/TO/sprig-transfer
set -euo pipefail

BIN=${1:?usage: test_transfer_cli.sh PATH/TO/sprig-transfer}
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh" sprig-xfer-cli

# start_server NAME ARGS...: runs `sprig-transfer serve ARGS` in the background, waits for its
# "listening on" lines (as many as --listen arguments) and sets URLS to the bound addresses.
start_server() {
    local name=$1
    shift
    local want=0 a
    for a in "$@"; do [[ $a == --listen ]] && want=$((want + 1)); done
    "$BIN" serve "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    local pid=$! i
    for ((i = 0; i < 600; i++)); do # up to 60 s for the server to start
        if (($(grep -c 'listening on' "$WORK/$name.log" || true) >= want)); then
            break
        fi
        kill -0 "$pid" 2>/dev/null || fail "server $name exited early"
        sleep 0.1
    done
    mapfile -t URLS < <(sed -n 's/^sprig-transfer: listening on //p' "$WORK/$name.log")
    ((${#URLS[@]} == want)) || fail "server $name did not print its addresses"
}

mkdir -p "$WORK/root" "$WORK/ro" "$WORK/local"
start_server main --listen "unix:$WORK/s.sock" --listen tcp://127.0.0.1:0 --listen udp://127.0.0.1:0 \
    --root "$WORK/root"
SERVER_URLS=("${URLS[@]}")
echo "server: ${SERVER_URLS[*]}"

head -c 0 /dev/urandom >"$WORK/local/zero.bin"
head -c 1 /dev/urandom >"$WORK/local/one.bin"
head -c 102400 /dev/urandom >"$WORK/local/hundred-k.bin"
head -c 3145728 /dev/urandom >"$WORK/local/three-m.bin"

n=0
for url in "${SERVER_URLS[@]}"; do
    for f in zero.bin one.bin hundred-k.bin three-m.bin; do
        n=$((n + 1))
        name="$n-$f"
        expect_exit 0 "$BIN" put "$url" "$WORK/local/$f" "$name"
        grep -q 'done' "$WORK/out.txt" || fail "put printed no final progress line"
        cmp "$WORK/local/$f" "$WORK/root/$name" || fail "put $f over $url: content differs"
        expect_exit 0 "$BIN" get "$url" "$name" "$WORK/local/back-$name"
        cmp "$WORK/local/$f" "$WORK/local/back-$name" || fail "get $name over $url: differs"
        a=$(sha256sum <"$WORK/local/$f")
        b=$(sha256sum <"$WORK/local/back-$name")
        [[ $a == "$b" ]] || fail "sha256 differs for $name"
        echo "ok: $f over $url"
    done
done
# no temporary files left behind on either side
if ls -A "$WORK/root" "$WORK/local" | grep -q '^\.'; then
    fail "temporary files left: $(ls -A "$WORK/root" "$WORK/local")"
fi

unix_url=${SERVER_URLS[0]}
tcp_url=${SERVER_URLS[1]}
udp_url=${SERVER_URLS[2]}

# overwrite an existing file: the new content replaces the old one
expect_exit 0 "$BIN" put --quiet "$tcp_url" "$WORK/local/one.bin" 4-three-m.bin
cmp "$WORK/local/one.bin" "$WORK/root/4-three-m.bin" || fail "overwrite"

# get --resume: a partial download (first 1 MiB) is continued, not fetched again
head -c 1048576 "$WORK/local/three-m.bin" >"$WORK/local/.resumed.bin.sprig-part"
expect_exit 0 "$BIN" get --resume "$unix_url" 8-three-m.bin "$WORK/local/resumed.bin"
grep -q 'resuming at byte 1048576' "$WORK/out.txt" || fail "get --resume did not resume"
cmp "$WORK/local/three-m.bin" "$WORK/local/resumed.bin" || fail "resumed file differs"
[[ ! -e "$WORK/local/.resumed.bin.sprig-part" ]] || fail "partial file left after resume"
echo "ok: get --resume"

# put --resume: the server kept the first 1 MiB of an earlier upload; it is continued, not sent
# again, when it matches LOCAL's first bytes (CRC-32), and replaced when it does not
head -c 1048576 "$WORK/local/three-m.bin" >"$WORK/root/.resumed-put.bin.sprig-part"
expect_exit 0 "$BIN" put --resume "$tcp_url" "$WORK/local/three-m.bin" resumed-put.bin
grep -q 'resuming at byte 1048576' "$WORK/out.txt" || fail "put --resume did not resume"
cmp "$WORK/local/three-m.bin" "$WORK/root/resumed-put.bin" || fail "resumed upload differs"
head -c 1048576 /dev/urandom >"$WORK/root/.other-put.bin.sprig-part"
expect_exit 0 "$BIN" put --resume "$unix_url" "$WORK/local/three-m.bin" other-put.bin
grep -q 'from the start' "$WORK/out.txt" || fail "put --resume continued a foreign part"
cmp "$WORK/local/three-m.bin" "$WORK/root/other-put.bin" || fail "restarted upload differs"
if ls -A "$WORK/root" | grep -q '^\.'; then
    fail "partial files left after put --resume: $(ls -A "$WORK/root")"
fi
echo "ok: put --resume"

# refusals and their exit codes (10 + status)
expect_exit 15 "$BIN" get "$unix_url" no-such-file "$WORK/local/x"
grep -q 'NOT_FOUND' "$WORK/err.txt" || fail "missing file: no NOT_FOUND message"
[[ ! -e "$WORK/local/x" ]] || fail "a failed get created its local file"
ls -A "$WORK/local" | grep -q '^\.' && fail "a failed get left a partial file"
expect_exit 15 "$BIN" put "$tcp_url" "$WORK/local/no-such-local" remote
expect_exit 13 "$BIN" put "$unix_url" "$WORK/local/one.bin" ../escape
grep -q 'INVALID_ARGUMENT' "$WORK/err.txt" || fail "'..' name: no INVALID_ARGUMENT message"
expect_exit 13 "$BIN" get "$unix_url" .. "$WORK/local/y"
expect_exit 13 "$BIN" get "$unix_url" a/b "$WORK/local/y"
[[ ! -e "$WORK/escape" ]] || fail "'..' escaped the root"
expect_exit 2 "$BIN" put "$unix_url"
expect_exit 2 "$BIN" frobnicate
# over udp the bound server answers a refusal to the sender's address
expect_exit 15 "$BIN" get "$udp_url" no-such-file "$WORK/local/x"
grep -q 'NOT_FOUND' "$WORK/err.txt" || fail "udp missing file: no NOT_FOUND message"
# nobody serves udp port 9 here: the client gives up after its retries (DEADLINE_EXCEEDED, 14;
# 9 x 500 ms with the engine's DGRAM defaults)
expect_exit 14 "$BIN" get udp://127.0.0.1:9 one.bin "$WORK/local/z"
grep -q 'DEADLINE_EXCEEDED' "$WORK/err.txt" || fail "udp without a server: no DEADLINE_EXCEEDED"
[[ ! -e "$WORK/local/z" ]] || fail "a failed udp get created its local file"
# --timeout / --retries: 2 x 2600 ms must take at least 5.2 s, longer than the 9 x 500 ms of
# the defaults (a lower bound: a slow machine cannot make it fail); bad values are usage errors
t0=$(date +%s%N)
expect_exit 14 "$BIN" get --timeout 2600 --retries 1 udp://127.0.0.1:9 one.bin "$WORK/local/z"
ms=$((($(date +%s%N) - t0) / 1000000))
((ms >= 5200)) || fail "--timeout 2600 --retries 1 gave up after $ms ms: options not applied"
expect_exit 2 "$BIN" get --timeout 0 udp://127.0.0.1:9 one.bin "$WORK/local/z"
grep -q -- '--timeout needs a number' "$WORK/err.txt" || fail "--timeout 0: no reason given"
expect_exit 2 "$BIN" put --retries 256 udp://127.0.0.1:9 "$WORK/local/one.bin" one.bin
expect_exit 2 "$BIN" serve --listen "unix:$WORK/never.sock" --root "$WORK/root" --timeout x
echo "ok: refusals"

# (udp through a relay that drops, duplicates, reorders and corrupts datagrams: lossy_udp.sh,
# ctest integration_lossy_udp)

# a read-only server refuses uploads
start_server ro --listen "unix:$WORK/ro.sock" --root "$WORK/ro" --read-only
expect_exit 17 "$BIN" put "${URLS[0]}" "$WORK/local/one.bin" one.bin
grep -q 'PERMISSION_DENIED' "$WORK/err.txt" || fail "read-only: no PERMISSION_DENIED message"
[[ -z $(ls -A "$WORK/ro") ]] || fail "read-only root was written"
echo "ok: read-only"

# stop the servers: SIGTERM ends them cleanly (exit 0)
for pid in "${PIDS[@]}"; do
    stop_bg "$pid" server
done
echo "PASS"
