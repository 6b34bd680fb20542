#!/bin/sh
# Prints the path of a cargo that can build symroute, installing the build prerequisites
# (a C linker) and, when no cargo is found, a Rust toolchain via rustup.
set -eu

need_apt() {
    missing=""
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "installing$missing" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        # shellcheck disable=SC2086 # one argument per package
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
    fi
}

find_cargo() {
    for c in "$(command -v cargo 2>/dev/null || true)" "${HOME:-/root}/.cargo/bin/cargo" \
             /root/.cargo/bin/cargo /usr/local/cargo/bin/cargo; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

command -v cc >/dev/null 2>&1 || need_apt gcc libc6-dev

if ! find_cargo >/dev/null; then
    need_apt curl ca-certificates
    echo "installing a Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --profile minimal --component clippy,rustfmt >&2
fi
find_cargo
