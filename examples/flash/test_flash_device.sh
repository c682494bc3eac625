#!/usr/bin/env bash
# sprig-flash-device end to end with sprig-transfer (ctest integration_flash_device): put a random
# firmware image of an odd size, get it back (cmp, sha256), check the erase/program counts the
# device prints; exactly the partition size works; one byte more is refused with DATA_LOSS (exit
# 25) and leaves no image; read-only and unknown partitions are refused (17, 15); a device
# restarted on the same --flash file still serves the committed image and not the invalidated
# one; the same over TCP. Nothing here depends on
# timing: the only wait is for the device to print its address, bounded by a generous limit.
#
#   test_flash_device.sh PATH/TO/sprig-flash-device PATH/TO/sprig-transfer
set -euo pipefail

DEV=${1:?usage: test_flash_device.sh PATH/TO/sprig-flash-device PATH/TO/sprig-transfer}
XFER=${2:?usage: test_flash_device.sh PATH/TO/sprig-flash-device PATH/TO/sprig-transfer}
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/integration/cli_lib.sh" sprig-flash-dev
PID=

# start_device LOG ARGS...: run the device in the background until it prints "listening on".
start_device() {
    local log=$1 i
    shift
    "$DEV" "$@" >"$WORK/$log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for ((i = 0; i < 600; i++)); do # up to 60 s
        grep -q 'partitions:' "$WORK/$log" && return 0
        kill -0 "$PID" 2>/dev/null || fail "device exited early"
        sleep 0.1
    done
    fail "device did not start"
}

stop_device() {
    stop_bg "$PID" device
    PID=
}

# The device's last write report (printed when it commits or discards, before the client learns
# the result: no race with the client's exit).
last_report() {
    grep ': write ' "$WORK/$1" | tail -n 1
}

URL="unix:$WORK/dev.sock"
FLASH="$WORK/flash.img"
PART=$((448 * 1024))
start_device dev.log --listen "$URL" --flash "$FLASH"
grep -q 'firmware .* empty' "$WORK/dev.log" || fail "firmware partition not listed as empty"

# 1. an odd-sized image: 300001 bytes = 1172 pages of 256 (the last one padded) = 74 blocks of 4 KiB
head -c 300001 /dev/urandom >"$WORK/fw.bin"
expect_exit 0 "$XFER" put --quiet "$URL" "$WORK/fw.bin" firmware
report=$(last_report dev.log)
echo "device: $report"
[[ $report == *"firmware: write committed, OK: 74 block(s) erased"* ]] || fail "put: report '$report'"
[[ $report == *"300032 byte(s) programmed"* ]] || fail "put: programmed bytes in '$report'"
expect_exit 0 "$XFER" get --quiet "$URL" firmware "$WORK/back.bin"
cmp "$WORK/fw.bin" "$WORK/back.bin" || fail "firmware read back differs"
[[ $(sha256sum <"$WORK/fw.bin") == "$(sha256sum <"$WORK/back.bin")" ]] || fail "sha256 differs"
echo "ok: put/get 300001 bytes"

# 2. exactly the partition
head -c $PART /dev/urandom >"$WORK/full.bin"
expect_exit 0 "$XFER" put --quiet "$URL" "$WORK/full.bin" firmware
[[ $(last_report dev.log) == *"firmware: write committed, OK: 112 block(s) erased"* ]] ||
    fail "full put: $(last_report dev.log)"
expect_exit 0 "$XFER" get --quiet "$URL" firmware "$WORK/full-back.bin"
cmp "$WORK/full.bin" "$WORK/full-back.bin" || fail "full image read back differs"
echo "ok: exactly the partition size"

# 3. one byte too many: DATA_LOSS (exit 10 + 15), nothing claimed written
head -c $((PART + 1)) /dev/urandom >"$WORK/big.bin"
expect_exit 25 "$XFER" put --quiet "$URL" "$WORK/big.bin" firmware
grep -q 'DATA_LOSS' "$WORK/err.txt" || fail "too large: no DATA_LOSS message"
[[ $(last_report dev.log) == *"write discarded"* ]] || fail "too large: $(last_report dev.log)"
expect_exit 15 "$XFER" get --quiet "$URL" firmware "$WORK/none.bin"
[[ ! -e $WORK/none.bin ]] || fail "a refused get created its file"
echo "ok: too large refused, old image invalidated"

# 4. refusals
expect_exit 17 "$XFER" put --quiet "$URL" "$WORK/fw.bin" bootloader
expect_exit 15 "$XFER" put --quiet "$URL" "$WORK/fw.bin" no-such-partition
expect_exit 15 "$XFER" get --quiet "$URL" no-such-partition "$WORK/x.bin"
expect_exit 0 "$XFER" get --quiet "$URL" bootloader "$WORK/boot.bin"
(($(stat -c %s "$WORK/boot.bin") == 65536)) || fail "bootloader size"
echo "ok: refusals"

# 5. over TCP (port 0: the device prints the port it got), a device in RAM
stop_device
grep -q ' 0 rule violations' "$WORK/dev.log" || fail "flash rules violated"
start_device tcp.log --listen tcp://127.0.0.1:0
TCP_URL=$(sed -n 's/^sprig-flash-device: listening on //p' "$WORK/tcp.log")
[[ $TCP_URL == tcp://127.0.0.1:* && $TCP_URL != *:0 ]] || fail "tcp address '$TCP_URL'"
expect_exit 0 "$XFER" put --quiet "$TCP_URL" "$WORK/fw.bin" firmware
expect_exit 0 "$XFER" get --quiet "$TCP_URL" firmware "$WORK/tcp-back.bin"
cmp "$WORK/fw.bin" "$WORK/tcp-back.bin" || fail "firmware over tcp differs"
stop_device
grep -q ' 0 rule violations' "$WORK/tcp.log" || fail "flash rules violated (tcp)"
echo "ok: tcp"
# the first device's flash file again: the invalidated firmware stayed invalid
start_device dev1.log --listen "$URL" --flash "$FLASH"
grep -q 'firmware .* empty' "$WORK/dev1.log" || fail "restart: firmware not empty"

# 6. a small config with a 16-byte page, then a restart on the same flash file keeps it
head -c 1000 /dev/urandom >"$WORK/config.bin"
expect_exit 0 "$XFER" put --quiet "$URL" "$WORK/config.bin" config
[[ $(last_report dev1.log) == *"1 block(s) erased"*"1008 byte(s) programmed"* ]] ||
    fail "config put: $(last_report dev1.log)"
stop_device
grep -q ' 0 rule violations' "$WORK/dev1.log" || fail "flash rules violated"
start_device dev2.log --listen "$URL" --flash "$FLASH"
grep -q 'config .* 1000 bytes committed' "$WORK/dev2.log" || fail "restart lost the config"
expect_exit 0 "$XFER" get --quiet "$URL" config "$WORK/config-back.bin"
cmp "$WORK/config.bin" "$WORK/config-back.bin" || fail "config after restart differs"
stop_device
echo "ok: restart keeps the committed image"

# 7. as a device on a serial line (sprig's netstack over a socat pty pair), when the tools were
#    built with the netstack and socat is there
if ! command -v socat >/dev/null; then
    echo "skip: serial line (socat not installed)"
elif "$XFER" --help 2>&1 | grep -q 'serial:'; then
    socat pty,raw,echo=0,link="$WORK/ttyA" pty,raw,echo=0,link="$WORK/ttyB" 2>"$WORK/socat.log" &
    PIDS+=("$!")
    for ((i = 0; i < 100; i++)); do
        [[ -e $WORK/ttyA && -e $WORK/ttyB ]] && break
        sleep 0.05
    done
    start_device serial.log --listen "serial:$WORK/ttyA"
    expect_exit 0 "$XFER" put --quiet "serial:$WORK/ttyB" "$WORK/fw.bin" firmware
    expect_exit 0 "$XFER" get --quiet "serial:$WORK/ttyB" firmware "$WORK/serial-back.bin"
    cmp "$WORK/fw.bin" "$WORK/serial-back.bin" || fail "firmware over serial differs"
    stop_device
    grep -q ' 0 rule violations' "$WORK/serial.log" || fail "flash rules violated (serial)"
    echo "ok: serial line"
fi
echo "PASS"
