#!/usr/bin/env bash
# Install the Debian 12 packages sprig needs to build, test, fuzz and cross-compile.
#
#   bash tools/bootstrap.sh            install what is missing (no-op when all are present)
#   bash tools/bootstrap.sh --sources  also enable deb-src and unpack the Debian sources of
#                                      lwip and nanopb into third_party/src/ (git-ignored)
#   bash tools/bootstrap.sh --list     print the package list and exit
#
# Idempotent. Needs root or sudo only when something has to be installed or changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PACKAGES=(
    build-essential cmake pkg-config git dpkg-dev
    clang clang-format libclang-rt-14-dev llvm
    libcmocka-dev
    nanopb libnanopb-dev protobuf-compiler python3-protobuf
    libmbedtls-dev liblwip-dev
    gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi
    socat
)
# Source packages unpacked by --sources.
SOURCE_PACKAGES=(lwip nanopb)
SOURCES_DIR="$ROOT/third_party/src"

log() { printf 'bootstrap: %s\n' "$*"; }
die() {
    printf 'bootstrap: error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when root, through sudo otherwise.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run '$*': run this script as root or install and configure sudo"
    fi
}

# Prints the packages of "$@" that are not installed.
missing_packages() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        if [[ $status != "install ok installed" ]]; then
            printf '%s\n' "$p"
        fi
    done
}

# Prints the packages of "$@" that apt has no installation candidate for.
without_candidate() {
    local p cand
    for p in "$@"; do
        cand=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
        if [[ -z $cand || $cand == "(none)" ]]; then
            printf '%s\n' "$p"
        fi
    done
}

# apt-get update that tolerates failing third-party sources (e.g. a cloud vendor's repository)
# as long as Debian's own lists were fetched: afterwards every package in "$@" must have a
# candidate.
apt_update() {
    log "apt-get update"
    if ! as_root apt-get update; then
        log "warning: apt-get update reported errors (a third-party source may be unreachable);" \
            "checking that Debian's package lists are usable"
    fi
    local -a nocand
    mapfile -t nocand < <(without_candidate cmake "$@")
    if ((${#nocand[@]} > 0)); then
        die "apt has no installation candidate for: ${nocand[*]} (is Debian's archive reachable" \
            "and listed in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list?)"
    fi
}

install_packages() {
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script needs Debian 12"
    local -a missing
    mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
    if ((${#missing[@]} == 0)); then
        log "all ${#PACKAGES[@]} packages are installed"
        return 0
    fi
    log "missing packages: ${missing[*]}"
    apt_update "${missing[@]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
    mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
    if ((${#missing[@]} > 0)); then
        die "still not installed after apt-get install: ${missing[*]}"
    fi
    log "installed; all ${#PACKAGES[@]} packages present"
}

# ---- --sources ---------------------------------------------------------------------------

# True when apt knows a source package for every name in "$@".
have_source_lists() {
    local p
    for p in "$@"; do
        [[ -n $(apt-cache showsrc "$p" 2>/dev/null | head -n 1) ]] || return 1
    done
}

# Enable deb-src for Debian's archive. Prints "changed" when it edited a file.
enable_deb_src() {
    local deb822=/etc/apt/sources.list.d/debian.sources
    if [[ -f $deb822 ]]; then
        # deb822: add deb-src to every "Types:" line that lacks it.
        if grep -Eq '^Types:' "$deb822" && grep -E '^Types:' "$deb822" | grep -vq 'deb-src'; then
            log "adding deb-src to Types in $deb822" >&2
            as_root sed -i -E '/^Types:/{/deb-src/!s/[[:space:]]*$/ deb-src/}' "$deb822"
            echo changed
        fi
        return 0
    fi
    local list=/etc/apt/sources.list extra=/etc/apt/sources.list.d/sprig-deb-src.list
    [[ -f $list ]] || die "found neither $deb822 nor $list; enable deb-src by hand"
    if grep -Eq '^[[:space:]]*deb-src[[:space:]]' "$list" || [[ -f $extra ]]; then
        return 0
    fi
    log "writing deb-src lines mirroring $list to $extra" >&2
    sed -n -E 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$list" | as_root tee "$extra" >/dev/null
    echo changed
}

fetch_sources() {
    command -v dpkg-source >/dev/null 2>&1 || die "dpkg-source not found: install dpkg-dev first"
    mkdir -p "$SOURCES_DIR"
    local -a todo=()
    local p
    for p in "${SOURCE_PACKAGES[@]}"; do
        if compgen -G "$SOURCES_DIR/$p-[0-9]*/debian" >/dev/null; then
            log "source of $p already in ${SOURCES_DIR#"$ROOT"/}/"
        else
            todo+=("$p")
        fi
    done
    ((${#todo[@]} > 0)) || return 0

    local changed
    changed=$(enable_deb_src)
    if [[ $changed == changed ]] || ! have_source_lists "${todo[@]}"; then
        log "apt-get update (source lists)"
        as_root apt-get update || log "warning: apt-get update reported errors; checking source lists"
        have_source_lists "${todo[@]}" ||
            die "apt knows no source package for: ${todo[*]} (deb-src not reachable?)"
    fi
    for p in "${todo[@]}"; do
        log "apt-get source $p -> ${SOURCES_DIR#"$ROOT"/}/"
        (cd "$SOURCES_DIR" && apt-get source "$p")
    done
}

usage() { sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

main() {
    local sources=0 arg
    for arg in "$@"; do
        case $arg in
        --sources) sources=1 ;;
        --list)
            printf '%s\n' "${PACKAGES[@]}"
            return 0
            ;;
        -h | --help)
            usage
            return 0
            ;;
        *) die "unknown argument '$arg' (try --help)" ;;
        esac
    done
    install_packages
    if ((sources)); then
        fetch_sources
    fi
}

main "$@"
