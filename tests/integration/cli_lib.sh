# shellcheck shell=bash
# cli_lib.sh — sourced by the command-line integration tests (test_transfer_cli.sh,
# examples/flash/test_flash_device.sh): `source cli_lib.sh NAME` makes a temporary directory WORK
# (/tmp/NAME-XXXXXX) removed on exit, where every background process the test registers in PIDS
# is ended (by pid) first; fail prints the logs in WORK; expect_exit and stop_bg check exit codes.
# Needs bash with `set -euo pipefail` in the caller.

WORK=$(mktemp -d "/tmp/${1:?cli_lib.sh: NAME}-XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# fail MESSAGE...: print it and every $WORK/*.log to stderr, exit 1.
fail() {
    echo "FAIL: $*" >&2
    local log
    for log in "$WORK"/*.log; do
        [[ -f $log ]] && { echo "--- $log" >&2; cat "$log" >&2; }
    done
    exit 1
}

# expect_exit CODE CMD...: run CMD (stdout in $WORK/out.txt, stderr in $WORK/err.txt), require
# exit status CODE.
expect_exit() {
    local want=$1 got=0
    shift
    "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || got=$?
    if ((got != want)); then
        cat "$WORK/out.txt" "$WORK/err.txt" >&2
        fail "exit $got (want $want): $*"
    fi
}

# stop_bg PID WHAT: SIGTERM a background process of PIDS, require exit status 0, forget it.
stop_bg() {
    local pid=$1 rc=0 p keep=()
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    for p in "${PIDS[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
    ((rc == 0)) || fail "$2 exit status $rc after SIGTERM"
}
