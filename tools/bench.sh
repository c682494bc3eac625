#!/usr/bin/env bash
# Build sprig in Release and run every benchmark in bench/.
#
#   bash tools/bench.sh [ARGS...]     e.g. bash tools/bench.sh --quick
#
# Configures and builds build/release (CMAKE_BUILD_TYPE=Release, no tests) and runs, for each
# bench/<name>/ that has a CMakeLists.txt, build/release/bench/<name>/sprig-bench-<name> with
# ARGS, then builds the portable libraries for Cortex-M0+ (build/arm) and prints their sizes
# against the issues' targets. Benchmarks never fail for being slow; the exit status is non-zero
# only if a build failed or a benchmark reported that something broke. Run tools/bootstrap.sh
# first on a fresh machine.
# Env: SPRIG_JOBS (default 2), SPRIG_BUILD_ROOT (default build).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${SPRIG_JOBS:-2}
B=${SPRIG_BUILD_ROOT:-build}
DIR=$B/release

case ${1:-} in
-h | --help)
    sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
esac

run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    "$@"
}

run cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=Release -DSPRIG_BUILD_BENCH=ON -DSPRIG_WITH_OS=ON -DSPRIG_WITH_RPC=ON \
    -DSPRIG_BUILD_TESTS=OFF -DSPRIG_BUILD_FUZZ=OFF -DSPRIG_SANITIZE=OFF
run cmake --build "$DIR" -j"$JOBS"

failed=()
count=0
for list in bench/*/CMakeLists.txt; do
    [[ -e $list ]] || continue
    name=$(basename "$(dirname "$list")")
    # a directory without a sprig-bench-NAME target is shared code (bench/common), not a bench
    grep -q "sprig-bench-$name" "$list" || continue
    bin=$DIR/bench/$name/sprig-bench-$name
    if [[ ! -x $bin ]]; then
        echo "bench.sh: error: $bin was not built (bench/$name/ must define target" \
            "sprig-bench-$name)" >&2
        failed+=("$name")
        continue
    fi
    echo
    count=$((count + 1))
    if ! run "$bin" "$@"; then
        failed+=("$name")
    fi
done

# Code size belongs to the figures too: the Cortex-M0+ build of the portable libraries (as the
# arm step of tools/test.sh) and the issues' size targets.
if command -v arm-none-eabi-gcc >/dev/null; then
    echo
    run cmake -S . -B "$B/arm" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/arm-none-eabi.cmake" \
        -DSPRIG_WITH_RPC=ON -DCMAKE_BUILD_TYPE=MinSizeRel -DSPRIG_WITH_OS=OFF \
        -DSPRIG_BUILD_TESTS=OFF -DSPRIG_BUILD_EXAMPLES=OFF -DSPRIG_BUILD_BENCH=OFF \
        -DSPRIG_BUILD_FUZZ=OFF -DSPRIG_SANITIZE=OFF >/dev/null
    run cmake --build "$B/arm" -j"$JOBS" >/dev/null
    bash tools/size_report.sh "$B/arm" | sed -n '/^== summary/,/^$/p;/^== size targets/,/^$/p'
else
    echo "bench.sh: arm-none-eabi-gcc not found: no Cortex-M0+ sizes (run tools/bootstrap.sh)"
fi
echo
if ((count == 0 && ${#failed[@]} == 0)); then
    echo "bench.sh: no benchmarks in bench/"
    exit 0
fi
if ((${#failed[@]} > 0)); then
    echo "bench.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "bench.sh: $count benchmark(s) ran"
