# netstack_lib.sh — sourced by the *_over_netstack.sh and lossy_*.sh integration tests: a
# temporary directory cleaned up on exit, a socat pty pair, a free UDP port, background servers
# with a watchdog, bounded waits, the lossy relay, SHA-256 comparison and timed steps. Every
# process started here is remembered by pid and ended by pid.

dir=$(mktemp -d "${TMPDIR:-/tmp}/sprig-ns-test.XXXXXX")
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
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }
    done
    exit 1
}

# wait_for FILE PATTERN SECONDS
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# pty_pair A B: socat links two raw ptys at A and B (returns 1 when socat is missing)
pty_pair() {
    command -v socat >/dev/null 2>&1 || return 1
    timeout 600 socat -d -d "pty,raw,echo=0,link=$1" "pty,raw,echo=0,link=$2" \
        2>"$dir/socat.log" &
    pids+=($!)
    wait_ptys "$1" "$2"
}

# wait_ptys A B: up to 10 s for both links to appear
wait_ptys() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ -e "$1" ] && [ -e "$2" ] && return 0
        sleep 0.1
    done
    fail "no pty pair at $1, $2"
}

# udp_port: a UDP port free on 127.0.0.1 right now
udp_port() {
    local py=${SPRIG_PYTHON:-python3}
    "$py" -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server LOG CMD...: in the background, its pid in $spid; a watchdog bounds its life
start_server() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    spid=$!
    pids+=($spid)
    (timeout 300 tail --pid="$spid" -f /dev/null || kill -9 "$spid" 2>/dev/null) &
    pids+=($!)
}

# stop_server PID: SIGTERM, up to 10 s for a clean exit, then SIGKILL (a sanitizer's exit-time
# leak check can hang on a loaded machine: never leave a server behind)
stop_server() {
    kill "$1" 2>/dev/null
    timeout 10 tail --pid="$1" -f /dev/null 2>/dev/null
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# retry NAME CMD...: up to 3 tries (a loaded machine may delay a handshake), output in the log
retry() {
    local name=$1 try
    shift
    for try in 1 2 3; do
        "$@" >"$dir/$name.log" 2>&1 && return 0
        echo "$name: try $try failed: $(tail -n 3 "$dir/$name.log")" >&2
        sleep 1
    done
    fail "$name: $*"
}

# expect_error NAME WANT CMD...: CMD must fail and say WANT on stderr
expect_error() {
    local name=$1 want=$2 out
    shift 2
    if out=$(timeout 20 "$@" 2>&1); then
        fail "$name: succeeded: $*"
    fi
    grep -q -- "$want" <<<"$out" || fail "$name: expected '$want' in: $out"
    echo "$name: $(head -n 1 <<<"$out")"
}

# skip_without_python: exit 0 with SKIP when there is no Python 3 to run the relay
skip_without_python() {
    command -v "${SPRIG_PYTHON:-python3}" >/dev/null 2>&1 ||
        { echo "SKIP: the relay needs Python 3 (${SPRIG_PYTHON:-python3})"; exit 0; }
}

# start_relay NAME ARGS...: tools/lossy_relay.py ARGS in the background (its pid in $rpid, its
# ready line in $dir/NAME.out, its counters in $dir/NAME.log once stopped); waits for the ready
# line. Returns 1 when there is no Python 3 to run it.
start_relay() {
    local name=$1 py=${SPRIG_PYTHON:-python3}
    shift
    command -v "$py" >/dev/null 2>&1 || return 1
    "$py" "$(dirname "${BASH_SOURCE[0]}")/../../tools/lossy_relay.py" "$@" \
        >"$dir/$name.out" 2>"$dir/$name.log" &
    rpid=$!
    pids+=($rpid)
    (timeout 600 tail --pid="$rpid" -f /dev/null || kill -9 "$rpid" 2>/dev/null) &
    pids+=($!)
    wait_for "$dir/$name.out" "^lossy_relay: " 20 || fail "$name: the relay did not start"
}

# relay_count NAME DIRECTION COUNTER: a counter the stopped relay printed (0 when absent)
relay_count() {
    local v
    v=$(grep -- "$2:" "$dir/$1.log" | grep -o -- " $3=[0-9]*" | head -n 1 | cut -d= -f2)
    echo "${v:-0}"
}

# expect_faults NAME DIRECTION COUNTER...: each COUNTER of the stopped relay is > 0, so that a
# test over a "lossy" line cannot pass because the relay injected nothing
expect_faults() {
    local name=$1 direction=$2 c
    shift 2
    for c in "$@"; do
        [ "$(relay_count "$name" "$direction" "$c")" -gt 0 ] ||
            fail "$name: no $c in direction $direction: $(cat "$dir/$name.log")"
    done
}

sum() { sha256sum <"$1" | cut -d' ' -f1; }

# same WHAT A B: A and B have the same SHA-256
same() {
    [ -f "$2" ] && [ -f "$3" ] && [ "$(sum "$2")" = "$(sum "$3")" ] || fail "$1: $2 and $3 differ"
    echo "$1: sha256 $(sum "$2") matches"
}

# timed NAME CMD...: CMD must succeed, once (a lossy line is no excuse for a tool error); its
# output in $dir/NAME.log, its duration on stdout
timed() {
    local name=$1 t0 t1
    shift
    t0=$(date +%s%N)
    "$@" >"$dir/$name.log" 2>&1 || fail "$name: exit $?: $*"
    t1=$(date +%s%N)
    echo "$name: $(((t1 - t0) / 1000000)) ms"
}
