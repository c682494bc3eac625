#!/usr/bin/env bash
# sprig's whole test suite: the README's test command, and what CI runs (.ci/run).
#
#   bash tools/test.sh              every step (default; also whenever CI=true)
#   bash tools/test.sh --quick      only the gcc build + ctest (for developers)
#   bash tools/test.sh --only a,b   only the named steps (see --list)
#   bash tools/test.sh --list       list the steps
#
# Installs what it needs first (tools/bootstrap.sh; Debian 12, root or sudo). Fails fast: the
# first failing step stops the run with a non-zero exit status; a summary line per step is printed
# at the end either way.
# Env: SPRIG_JOBS (parallel jobs, default 2), SPRIG_FUZZ_SECONDS (per fuzz target, default 30),
#      SPRIG_BUILD_ROOT (build directories, default build; e.g. build-mine).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

JOBS=${SPRIG_JOBS:-2}
B=${SPRIG_BUILD_ROOT:-build}
FUZZ_SECONDS=${SPRIG_FUZZ_SECONDS:-30}
CTEST_TIMEOUT=300
LOG_DIR=$B/logs

ALL_STEPS=(gcc clang asan fuzz arm format install)
declare -A DESC=(
    [bootstrap]="install Debian packages (tools/bootstrap.sh)"
    [gcc]="gcc build + ctest ($B/gcc)"
    [clang]="clang build + ctest ($B/clang)"
    [asan]="clang ASan+UBSan build + ctest ($B/asan)"
    [fuzz]="libFuzzer targets, ${FUZZ_SECONDS}s each ($B/fuzz)"
    [arm]="Cortex-M0+ cross build, size/malloc/stack report ($B/arm)"
    [format]="clang-format check"
    [install]="install $B/gcc + build and run tests/consumer"
)
# Columns of the summary: result, seconds, one-line note.
declare -A RESULT=() SECS=() NOTE=()
STEPS=()
CURRENT=""
STEP_START=0
RUN_START=$SECONDS
BG_PIDS=()

usage() { sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() {
    printf 'test.sh: error: %s\n' "$*" >&2
    exit 2
}

# Print a command, then run it.
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    "$@"
}

fmt_secs() {
    local s=$1
    if ((s >= 60)); then
        printf '%dm%02ds' $((s / 60)) $((s % 60))
    else
        printf '%ds' "$s"
    fi
}

banner() {
    local line
    line=$(printf '=%.0s' {1..100})
    printf '\n%s\n== %s\n%s\n' "$line" "$*" "$line"
}

print_summary() {
    local s note
    banner "summary ($(fmt_secs $((SECONDS - RUN_START))))"
    for s in bootstrap "${STEPS[@]}"; do
        note=${NOTE[$s]:-}
        printf '%-5s %-10s %8s  %s%s\n' "${RESULT[$s]:----}" "$s" \
            "$([[ -n ${SECS[$s]:-} ]] && fmt_secs "${SECS[$s]}")" "${DESC[$s]}" \
            "${note:+ — $note}"
    done
}

on_exit() {
    local rc=$?
    local pid
    for pid in "${BG_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ -n $CURRENT ]]; then
        RESULT[$CURRENT]=FAIL
        SECS[$CURRENT]=$((SECONDS - STEP_START))
        ((rc != 0)) || rc=1
    fi
    print_summary
    if ((rc == 0)); then
        printf 'test.sh: PASS (%s)\n' "${STEPS[*]}"
    else
        printf 'test.sh: FAIL%s (exit %d)\n' "${CURRENT:+ in step $CURRENT}" "$rc"
    fi
    exit "$rc"
}

# run_step NAME: runs step_NAME with a banner and timing. Not called in a conditional context,
# so `set -e` stays in force inside the step and any failing command ends the run.
run_step() {
    local name=$1 idx=$2 total=$3
    banner "[$idx/$total] $name: ${DESC[$name]}  ($(date +%H:%M:%S))"
    CURRENT=$name
    STEP_START=$SECONDS
    "step_$name"
    SECS[$name]=$((SECONDS - STEP_START))
    RESULT[$name]=PASS
    CURRENT=""
    printf '== %s: PASS in %s\n' "$name" "$(fmt_secs "${SECS[$name]}")"
}

# ctest with its output kept in a log, so the summary can quote its verdict line.
run_ctest() {
    local dir=$1 name=$2
    shift 2
    mkdir -p "$LOG_DIR"
    local rc=0
    run "$@" ctest --test-dir "$dir" --output-on-failure -j"$JOBS" --timeout "$CTEST_TIMEOUT" \
        --no-tests=error 2>&1 | tee "$LOG_DIR/ctest-$name.log" || rc=$?
    NOTE[$name]=$(grep -E 'tests passed|No tests were found' "$LOG_DIR/ctest-$name.log" |
        tail -n 1 || true)
    return "$rc"
}

# build_and_test NAME DIR CMAKE_ARGS... [-- ENV_ASSIGNMENTS...]
build_and_test() {
    local name=$1 dir=$2
    shift 2
    local -a cmake_args=() env_args=(env)
    while (($#)); do
        if [[ $1 == -- ]]; then
            shift
            env_args+=("$@")
            break
        fi
        cmake_args+=("$1")
        shift
    done
    run cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPRIG_BUILD_TESTS=ON -DSPRIG_WITH_RPC=ON \
        -DSPRIG_BUILD_FUZZ=OFF "${cmake_args[@]}"
    run cmake --build "$dir" -j"$JOBS"
    run_ctest "$dir" "$name" "${env_args[@]}"
}

# ---- steps ---------------------------------------------------------------------------------

step_gcc() {
    build_and_test gcc "$B/gcc" -DCMAKE_C_COMPILER=gcc -DSPRIG_SANITIZE=OFF
}

step_clang() {
    build_and_test clang "$B/clang" -DCMAKE_C_COMPILER=clang -DSPRIG_SANITIZE=OFF
}

step_asan() {
    local symbolizer
    symbolizer=$(command -v llvm-symbolizer || true)
    # -O1 and no -DNDEBUG: assertions stay on where sanitizers look.
    build_and_test asan "$B/asan" -DCMAKE_C_COMPILER=clang -DSPRIG_SANITIZE=ON \
        "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" -- \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ${symbolizer:+ASAN_SYMBOLIZER_PATH=$symbolizer}
}

step_fuzz() {
    local dir=$B/fuzz
    # -O1 and no -DNDEBUG: a failed assertion is a finding.
    run cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DSPRIG_WITH_RPC=ON \
        "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" -DSPRIG_BUILD_FUZZ=ON -DSPRIG_WITH_RPC=ON -DSPRIG_BUILD_TESTS=ON -DSPRIG_SANITIZE=OFF \
        -DSPRIG_BUILD_EXAMPLES=OFF -DSPRIG_BUILD_BENCH=OFF
    run cmake --build "$dir" -j"$JOBS" --target sprig_fuzz

    local -a names=() bins=() corpora=()
    local name bin corpus
    while IFS=$'\t' read -r name bin corpus; do
        [[ -n $name ]] || continue
        names+=("$name") bins+=("$bin") corpora+=("$corpus")
    done <"$dir/fuzz_targets.txt"
    if ((${#names[@]} == 0)); then
        echo "no fuzz targets yet (tests/fuzz/fuzz_*.c)"
        NOTE[fuzz]="no targets"
        return 0
    fi

    local i
    for i in "${!names[@]}"; do
        if ! compgen -G "${corpora[$i]}/*" >/dev/null; then
            die "fuzz target ${names[$i]} has no seed corpus: commit inputs to ${corpora[$i]#"$ROOT"/}/"
        fi
    done
    local scratch
    scratch=$(mktemp -d /tmp/sprig-fuzz-XXXXXX)
    echo "scratch directory (corpora copies, logs, crash artifacts): $scratch"

    # Run the targets, up to $JOBS at a time, each for FUZZ_SECONDS.
    local -A pid_target=()
    local -a failed=()
    local running=0 pid rc t
    finish_one() {
        rc=0
        wait -n -p pid "${!pid_target[@]}" || rc=$?
        t=${pid_target[$pid]}
        unset "pid_target[$pid]"
        running=$((running - 1))
        local log=$scratch/$t/log
        local stats
        stats=$(grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|#[0-9]+.*DONE)' "$log" |
            tail -n 1 || true)
        if ((rc == 0)); then
            printf '%-32s PASS  %s\n' "$t" "$stats"
        else
            printf '%-32s FAIL  (exit %d) — from %s:\n' "$t" "$rc" "$log"
            # The report's start (error and stack), then its end (input and artifact).
            awk '/==ERROR|runtime error:|ERROR: libFuzzer|deadly signal|Killed/ { p = 1 } p' "$log" |
                head -n 40 | sed 's/^/    /'
            printf '    ...\n'
            tail -n 12 "$log" | sed 's/^/    /'
            find "$scratch/$t/artifacts" -type f -printf '    artifact: %p\n' 2>/dev/null || true
            failed+=("$t")
        fi
    }
    for i in "${!names[@]}"; do
        name=${names[$i]}
        mkdir -p "$scratch/$name/corpus" "$scratch/$name/artifacts"
        cp -R "${corpora[$i]}/." "$scratch/$name/corpus/"
        echo "start $name ($(find "$scratch/$name/corpus" -type f | wc -l) seed inputs)"
        timeout --signal=KILL $((FUZZ_SECONDS + 120)) "${bins[$i]}" \
            -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$scratch/$name/artifacts/" "$scratch/$name/corpus" \
            >"$scratch/$name/log" 2>&1 &
        pid_target[$!]=$name
        BG_PIDS+=("$!")
        running=$((running + 1))
        if ((running >= JOBS)); then
            finish_one
        fi
    done
    while ((running > 0)); do
        finish_one
    done
    BG_PIDS=()
    if ((${#failed[@]} > 0)); then
        echo "fuzzing found problems in: ${failed[*]}"
        echo "reproduce: $dir/tests/fuzz/<target> <artifact>; once fixed, commit the artifact to"
        echo "tests/fuzz/corpus/<target>/ so every build replays it. Scratch kept: $scratch"
        NOTE[fuzz]="crash in ${failed[*]}"
        return 1
    fi
    rm -rf "$scratch"
    NOTE[fuzz]="${#names[@]} target(s) x ${FUZZ_SECONDS}s, no crash"
}

step_arm() {
    local dir=$B/arm
    run cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/arm-none-eabi.cmake" -DSPRIG_WITH_RPC=ON \
        -DCMAKE_BUILD_TYPE=MinSizeRel -DSPRIG_WITH_OS=OFF -DSPRIG_BUILD_TESTS=OFF \
        -DSPRIG_BUILD_EXAMPLES=OFF -DSPRIG_BUILD_BENCH=OFF -DSPRIG_BUILD_FUZZ=OFF \
        -DSPRIG_SANITIZE=OFF
    run cmake --build "$dir" -j"$JOBS"
    mkdir -p "$LOG_DIR"
    run bash tools/size_report.sh "$dir" | tee "$LOG_DIR/size-report.txt"
    NOTE[arm]=$(awk '$1 == "all" { printf "flash %d B, RAM %d B", $5, $6 }' \
        "$LOG_DIR/size-report.txt")
}

step_format() {
    mkdir -p "$LOG_DIR"
    run bash tools/format.sh --check 2>&1 | tee "$LOG_DIR/format.log"
    NOTE[format]=$(grep -Eo '[0-9]+ files clean|no C files' "$LOG_DIR/format.log" || true)
}

step_install() {
    local dir=$B/gcc
    # Incremental when step gcc has just run; builds it otherwise.
    run cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc -DSPRIG_WITH_RPC=ON \
        -DSPRIG_BUILD_TESTS=ON -DSPRIG_BUILD_FUZZ=OFF -DSPRIG_SANITIZE=OFF
    run cmake --build "$dir" -j"$JOBS"
    local tmp out
    tmp=$(mktemp -d /tmp/sprig-install-XXXXXX)
    run cmake --install "$dir" --prefix "$tmp/prefix"
    run cmake -S tests/consumer -B "$tmp/consumer-build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
        -DCMAKE_C_COMPILER=gcc
    run cmake --build "$tmp/consumer-build"
    out=$(run "$tmp/consumer-build/sprig-consumer")
    printf '%s\n' "$out"
    grep -q 'UNAVAILABLE' <<<"$out" || die "consumer did not print UNAVAILABLE"
    # A second consumer generates typed RPC stubs with sprig_add_proto_library from the install.
    run cmake -S tests/consumer_rpc -B "$tmp/consumer-rpc-build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
        -DCMAKE_C_COMPILER=gcc
    run cmake --build "$tmp/consumer-rpc-build"
    out=$(run "$tmp/consumer-rpc-build/sprig-consumer-rpc")
    printf '%s\n' "$out"
    grep -q 'greeter: OK' <<<"$out" || die "consumer_rpc did not print 'greeter: OK'"
    rm -rf "$tmp"
    NOTE[install]="find_package(sprig): sprig::sockets_os and sprig_add_proto_library OK"
}

step_bootstrap() {
    run bash tools/bootstrap.sh
}

# ---- main ------------------------------------------------------------------------------------

main() {
    local only="" quick=0
    while (($#)); do
        case $1 in
        --quick) quick=1 ;;
        --only)
            (($# >= 2)) || die "--only needs a list of steps"
            only=$2
            shift
            ;;
        --only=*) only=${1#--only=} ;;
        --list)
            local s
            for s in "${ALL_STEPS[@]}"; do
                printf '%-8s %s\n' "$s" "${DESC[$s]}"
            done
            exit 0
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (try --help)" ;;
        esac
        shift
    done

    if [[ ${CI:-} == true ]]; then
        STEPS=("${ALL_STEPS[@]}")
        [[ $quick == 0 && -z $only ]] || echo "CI=true: running every step"
    elif [[ -n $only ]]; then
        local s
        IFS=, read -r -a STEPS <<<"$only"
        for s in "${STEPS[@]}"; do
            [[ -n ${DESC[$s]:-} && $s != bootstrap ]] || die "unknown step '$s' (try --list)"
        done
    elif ((quick)); then
        STEPS=(gcc)
    else
        STEPS=("${ALL_STEPS[@]}")
    fi

    trap on_exit EXIT
    trap 'exit 130' INT TERM
    local total=$((${#STEPS[@]} + 1)) idx=1 s
    run_step bootstrap 0 $((total - 1))
    for s in "${STEPS[@]}"; do
        run_step "$s" "$idx" $((total - 1))
        idx=$((idx + 1))
    done
}

main "$@"
