#!/usr/bin/env bash
# Size, allocation and stack report for the portable libraries of a cross build.
#
#   bash tools/size_report.sh BUILD_DIR      (e.g. build/arm, made with cmake/arm-none-eabi.cmake)
#
# For every libsprig_*.a under BUILD_DIR: text/data/bss per object file and in total
# (arm-none-eabi-size -t), then a summary per library. Fails (exit 1) if any object in those
# libraries references a heap allocator (malloc, calloc, realloc, free, or their newlib
# reentrant forms and friends; arm-none-eabi-nm -u): portable code never allocates. Then the
# issues' size targets (netstack, transfer engine, RPC server and client) with met / NOT met.
# Finally the largest stack frames from the -fstack-usage files (*.su) of the build.
# Env: SPRIG_CROSS_PREFIX (default arm-none-eabi-), SPRIG_STACK_TOP (default 10).
set -euo pipefail

die() {
    printf 'size_report: error: %s\n' "$*" >&2
    exit 2
}

build=${1:-}
[[ -n $build && -d $build ]] || die "usage: $0 BUILD_DIR"
prefix=${SPRIG_CROSS_PREFIX:-arm-none-eabi-}
size_tool=${prefix}size
nm_tool=${prefix}nm
top=${SPRIG_STACK_TOP:-10}
command -v "$size_tool" >/dev/null || die "$size_tool not found (run tools/bootstrap.sh)"
command -v "$nm_tool" >/dev/null || die "$nm_tool not found (run tools/bootstrap.sh)"

mapfile -t libs < <(find "$build" -type f -name 'libsprig_*.a' | LC_ALL=C sort)
((${#libs[@]} > 0)) || die "no libsprig_*.a under $build"

# Symbols whose use means heap allocation.
alloc_re='^(malloc|calloc|realloc|free|_malloc_r|_calloc_r|_realloc_r|_free_r|reallocarray'
alloc_re+='|aligned_alloc|memalign|posix_memalign|valloc|pvalloc|strdup|strndup|_strdup_r'
alloc_re+='|_strndup_r|asprintf|vasprintf|open_memstream)$'

summary_rows=()
for lib in "${libs[@]}"; do
    name=$(basename "$lib")
    printf '\n== %s (%s)\n' "$name" "$lib"
    sizes=$("$size_tool" -B -t "$lib")
    # Berkeley format: a header, one line per member, a (TOTALS) line; strip " (ex lib.a)".
    awk '
        NR == 1 { printf "%8s %8s %8s %8s  %s\n", "text", "data", "bss", "total", "object"; next }
        {
            obj = $6
            for (i = 7; i <= NF; i++) obj = obj " " $i
            sub(/ \(ex .*\)$/, "", obj)
            if (obj == "(TOTALS)") {
                printf "%8s %8s %8s %8s\n", "--------", "--------", "--------", "--------"
                obj = "TOTAL"
            }
            printf "%8d %8d %8d %8d  %s\n", $1, $2, $3, $4, obj
        }' <<<"$sizes"
    summary_rows+=("$name $(awk '/\(TOTALS\)/ { print $1, $2, $3 }' <<<"$sizes")")
done

printf '\n== summary (bytes; flash = text + data, RAM = data + bss)\n'
printf '%-28s %8s %8s %8s %8s %8s\n' library text data bss flash ram
total_text=0 total_data=0 total_bss=0
for row in "${summary_rows[@]}"; do
    read -r lname text data bss <<<"$row"
    printf '%-28s %8d %8d %8d %8d %8d\n' "$lname" "$text" "$data" "$bss" \
        $((text + data)) $((data + bss))
    total_text=$((total_text + text)) total_data=$((total_data + data))
    total_bss=$((total_bss + bss))
done
printf '%-28s %8d %8d %8d %8d %8d\n' "all" "$total_text" "$total_data" "$total_bss" \
    $((total_text + total_data)) $((total_data + total_bss))

# The issues' size targets (Cortex-M0+ text of named parts; static RAM = data + bss). Reported,
# never failing: the numbers are what matters.
printf '\n== size targets (text bytes; "KB" read as 1000 bytes)\n'
printf '%-52s %8s %8s %8s  %s\n' part text ram target result
# part name | library | objects | target text
targets=(
    "netstack: network layer + DGRAM + STREAM + serial|libsprig_netstack.a|wire.c.obj node.c.obj dgram.c.obj stream.c.obj serial.c.obj|12000"
    "transfer engine|libsprig_transfer.a|engine.c.obj|4000"
    "rpc server|libsprig_rpc.a|server.c.obj|4000"
    "rpc client|libsprig_rpc.a|client.c.obj|4000"
)
for row in "${targets[@]}"; do
    IFS='|' read -r part libname objs limit <<<"$row"
    lib=""
    for l in "${libs[@]}"; do
        [[ $(basename "$l") == "$libname" ]] && lib=$l
    done
    if [[ -z $lib ]]; then
        printf '%-52s %8s %8s %8s  %s\n' "$part" - - "$limit" "not built"
        continue
    fi
    read -r text ram < <("$size_tool" -B "$lib" | awk -v want=" $objs " '
        NR > 1 {
            obj = $6; sub(/ \(ex .*\)$/, "", obj)
            if (index(want, " " obj " ") > 0) { t += $1; r += $2 + $3; n++ }
        }
        END { printf "%d %d\n", t, r }')
    result=$([[ $text -lt $limit ]] && echo met || echo "NOT met")
    printf '%-52s %8d %8d %8s  %s\n' "$part" "$text" "$ram" "< $limit" "$result"
done

# Heap allocation check.
printf '\n== heap allocation check (%s -u)\n' "$nm_tool"
offenders=()
for lib in "${libs[@]}"; do
    # -A prefixes every line with "archive:member:".
    while IFS= read -r line; do
        sym=${line##* }
        if [[ $sym =~ $alloc_re ]]; then
            offenders+=("${line%%:*}: ${line#*:}")
        fi
    done < <("$nm_tool" -A -u "$lib" 2>/dev/null | sed -E 's/[[:space:]]+U[[:space:]]+/ /')
done
if ((${#offenders[@]} > 0)); then
    printf 'FAIL: portable objects reference heap allocation:\n'
    for o in "${offenders[@]}"; do
        printf '  %s\n' "$(basename "${o%%:*}"):${o#*:}"
    done
    alloc_failed=1
else
    printf 'OK: no object in %d librar%s references malloc/calloc/realloc/free\n' \
        "${#libs[@]}" "$([[ ${#libs[@]} -eq 1 ]] && echo y || echo ies)"
    alloc_failed=0
fi

# Stack usage.
printf '\n== stack usage: %s largest frames (-fstack-usage)\n' "$top"
mapfile -t su_files < <(find "$build" -type f -name '*.su' | LC_ALL=C sort)
if ((${#su_files[@]} == 0)); then
    printf '(no .su files under %s: build with -fstack-usage, as cmake/arm-none-eabi.cmake does)\n' \
        "$build"
else
    # Lines are "file:line:col:function<TAB>bytes<TAB>static|dynamic[,bounded]".
    # awk reads all of sort's output (with `head` here, sort could die of SIGPIPE: pipefail).
    cat "${su_files[@]}" | LC_ALL=C sort -t $'\t' -k2,2nr | awk -F '\t' -v top="$top" '
        BEGIN { printf "%8s  %-16s %s\n", "bytes", "kind", "function (file:line)" }
        NR > top { next }
        {
            n = split($1, p, ":")
            fn = p[n]; file = p[1]; sub(/.*\//, "", file)
            printf "%8d  %-16s %s (%s:%s)\n", $2, $3, fn, file, p[2]
        }'
    dynamic=$(cat "${su_files[@]}" | awk -F '\t' '$3 ~ /dynamic/' | wc -l)
    printf '%d function(s) in %d file(s); %d with dynamic (unbounded-at-compile-time) frames\n' \
        "$(cat "${su_files[@]}" | wc -l)" "${#su_files[@]}" "$dynamic"
fi

exit "$alloc_failed"
