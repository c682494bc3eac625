#!/usr/bin/env bash
# Format sprig's C sources with the repository's .clang-format.
#
#   bash tools/format.sh              format in place every tracked or new (not git-ignored)
#                                     *.c/*.h under sockets/ netstack/ rpc/ transfer/ tests/
#                                     bench/ examples/ tools/
#   bash tools/format.sh --check      change nothing; fail if any of them is not formatted
#                                     (what tools/test.sh runs)
#   bash tools/format.sh FILE...      format just these .c/.h files in place (others refused)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIRS=(sockets netstack rpc transfer tests bench examples tools)

# The files, NUL-separated and sorted.
list_files() {
    local d
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        local -a specs=()
        for d in "${DIRS[@]}"; do
            specs+=("$d/*.c" "$d/*.h")
        done
        git ls-files -z --cached --others --exclude-standard -- "${specs[@]}" |
            while IFS= read -r -d '' f; do
                if [[ -f $f ]]; then printf '%s\0' "$f"; fi
            done
    else
        local -a existing=()
        for d in "${DIRS[@]}"; do
            if [[ -d $d ]]; then existing+=("$d"); fi
        done
        if ((${#existing[@]} > 0)); then
            find "${existing[@]}" -type f \( -name '*.c' -o -name '*.h' \) -print0
        fi
    fi | sort -z
}

command -v clang-format >/dev/null || {
    echo "format.sh: clang-format not found (run tools/bootstrap.sh)" >&2
    exit 2
}

mode=fix
if (($# > 0)); then
    case $1 in
    --check) mode=check ;;
    -h | --help)
        sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *)
        # Only C: clang-format would rewrap Markdown, shell or Python as if it were C.
        for f in "$@"; do
            case $f in
            *.c | *.h) ;;
            *)
                printf 'format.sh: error: %s is not a .c or .h file (not formatted)\n' "$f" >&2
                exit 2
                ;;
            esac
        done
        exec clang-format -i "$@"
        ;;
    esac
fi

cd "$ROOT"
files=()
mapfile -d '' -t files < <(list_files)
if ((${#files[@]} == 0)); then
    echo "format.sh: no C files"
    exit 0
fi
if [[ $mode == check ]]; then
    echo "clang-format --dry-run --Werror on ${#files[@]} files ($(clang-format --version))"
    if ! clang-format --dry-run --Werror "${files[@]}"; then
        echo "format.sh: formatting differs from .clang-format; run 'bash tools/format.sh'" >&2
        exit 1
    fi
    echo "format.sh: ${#files[@]} files clean"
else
    clang-format -i "${files[@]}"
    echo "format.sh: formatted ${#files[@]} files"
fi
