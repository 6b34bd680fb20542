#!/bin/sh
# Builds the symroute-hook that gets installed and benchmarked: cargo profile `hook`
# (release with whole-program LTO, see Cargo.toml), statically linked where the host's C
# library allows it (glibc: static-pie, so the binary keeps its address randomization).
# A dispatcher starts the hook once per interface event, so its start-up is most of its
# cost: dynamically linked, the loader binding every symbol of libc and libgcc_s (full
# RELRO) was 70 % of the instructions of a 10-route no-op run, and mapping the libraries
# adds system calls and page faults.
#
# `-C target-feature=+crt-static` cannot be set for the whole workspace: with it, proc-macro
# crates fail to build. With an explicit --target, cargo applies RUSTFLAGS to the target's
# artifacts only (build scripts and proc macros stay dynamic), so the hook gets its own
# build in target/<host triple>/hook. RUSTFLAGS of the caller are kept.
#
# Usage: scripts/build-hook.sh [--path]
#   --path   build nothing; print where the hook from the last build is
# Environment:
#   CARGO             cargo to use (default: scripts/ensure-toolchain.sh finds or installs one)
#   CARGO_TARGET_DIR  cargo's target directory (default: target)
#
# The result is copied to TARGET/dist/symroute-hook, whose path is printed last on stdout.
# Where static linking is not possible (no static C library, e.g. Fedora without
# glibc-static; a host that is not glibc), it warns and that file is the ordinary dynamically
# linked one (profile hook, target/hook/symroute-hook): slower to start, same behaviour.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"
TARGET=${CARGO_TARGET_DIR:-$SRC/target}
OUT=$TARGET/dist/symroute-hook

say() { echo "build-hook: $*" >&2; }

case "${1:-}" in
    --path)
        [ -x "$OUT" ] || { say "$OUT is missing (run scripts/build-hook.sh)"; exit 1; }
        echo "$OUT"
        exit 0
        ;;
    "") ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown argument '$1' (see --help)"; exit 2 ;;
esac

CARGO=${CARGO:-$(scripts/ensure-toolchain.sh)}
# The host's triple; from rustc when CARGO is a stand-in (`make install CARGO=true`
# installs what an earlier build left).
host=$("$CARGO" -vV 2>/dev/null | sed -n 's/^host: //p')
if [ -z "$host" ] && command -v rustc >/dev/null 2>&1; then
    host=$(rustc -vV | sed -n 's/^host: //p')
fi

built=""
if [ -z "$host" ] && [ -x "$OUT" ]; then
    # A stand-in CARGO with no rustc on PATH (sudo's secure_path): nothing can be built,
    # and the last build's hook is the one to install.
    say "warning: no Rust toolchain found; keeping the hook of the last build ($OUT)"
    echo "$OUT"
    exit 0
fi
case "$host" in
    *-linux-gnu*)
        if RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
            "$CARGO" build --profile hook --locked -p symroute-hook --target "$host" >&2 &&
            [ -x "$TARGET/$host/hook/symroute-hook" ]; then
            built=$TARGET/$host/hook/symroute-hook
        else
            say "warning: the statically linked hook does not build (is the static C library," \
                "libc6-dev or glibc-static, installed?); installing the dynamically linked one"
        fi
        ;;
    *-linux-musl*) ;; # statically linked by default
    *) say "warning: host '${host:-unknown}': the hook is built dynamically linked" ;;
esac
if [ -z "$built" ]; then
    "$CARGO" build --profile hook --locked -p symroute-hook >&2
    built=$TARGET/hook/symroute-hook
fi
[ -x "$built" ] || { say "$built is missing"; exit 1; }
mkdir -p "$TARGET/dist"
# A copy, not a link: cargo hard-links its outputs, and a later build must not change this one.
cp "$built" "$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
echo "$OUT"
