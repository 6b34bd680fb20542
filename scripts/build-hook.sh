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
# The result is copied to TARGET/dist/symroute-hook, whose path is printed last on stdout;
# builds running at the same time (make install beside make bench) each copy through their
# own temporary file, so the last one wins whole.
# Where static linking is not possible — the C compiler cannot link a trivial static-pie
# program (no static C library, e.g. Debian without libc6-dev, Fedora without glibc-static),
# or the host is not glibc — it says so and that file is the ordinary dynamically linked one
# (profile hook, target/hook/symroute-hook): slower to start, same behaviour. When the static
# C library is there and the static build fails anyway, that is an error, shown as it is.
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
# Temporary files of this run, removed however it ends.
probe="" tmp=""
trap 'rm -rf "$probe" "$tmp"' EXIT
trap 'exit 130' INT TERM

# Whether cc, the linker rustc runs for *-linux-gnu, can link a static-pie program: the
# static C library and its start files are installed. What cc said is in $probe/err.
static_libc() {
    probe=$(mktemp -d "${TMPDIR:-/tmp}/symroute-static.XXXXXX")
    printf 'int main(void) { return 0; }\n' >"$probe/probe.c"
    cc -static-pie -o "$probe/probe" "$probe/probe.c" >"$probe/err" 2>&1
}

case "$host" in
    *-linux-gnu*)
        if static_libc; then
            # The static C library is there: a failure now is a real one, shown as cargo
            # printed it, not a reason to install something else.
            RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
                "$CARGO" build --profile hook --locked -p symroute-hook --target "$host" >&2 ||
                { say "the statically linked hook failed to build (cargo's error above)"; exit 1; }
            built=$TARGET/$host/hook/symroute-hook
        else
            say "note: cc cannot link a static program (is the static C library, libc6-dev" \
                "or glibc-static, installed?): building the dynamically linked hook, slower" \
                "to start. cc said:"
            sed 's/^/    /' "$probe/err" >&2
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
# Through a temporary file of this run's own in the same directory, renamed over the hook at
# once: a concurrent build never sees a half-written hook nor loses its temporary file.
tmp=$(mktemp "$TARGET/dist/.symroute-hook.XXXXXX")
cp "$built" "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$OUT"
echo "$OUT"
