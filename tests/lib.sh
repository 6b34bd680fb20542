#!/bin/sh
# What the root shell tests (tests/systemd/run.sh, tests/packaging/run.sh) share: sourced by
# them after they set SRC (the repository) and T (their folder under target/).
# shellcheck disable=SC2034

# read_args ARGS...: sets NO_CARGO from the one option, --no-cargo; usage and exit 2 otherwise.
read_args() {
    NO_CARGO=""
    for arg in "$@"; do
        case "$arg" in
            --no-cargo) NO_CARGO=--no-cargo ;;
            *) echo "usage: $0 [--no-cargo]" >&2; exit 2 ;;
        esac
    done
}

# need_root NAME: returns as root; otherwise skips the test NAME with a message, or fails it
# when CI=true.
need_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    if [ "${CI:-}" = true ]; then
        echo "$1: needs root and CI=true" >&2
        exit 1
    fi
    echo "SKIPPED $1: needs root (run as root or via make)"
    exit 0
}

# start_log: an empty $T/results.log, which ok, bad and note append to, and the clock elapsed
# reads.
start_log() {
    start=$(date +%s)
    mkdir -p "$T"
    LOG=$T/results.log
    : >"$LOG"
}
ok() { echo "ok - $*" | tee -a "$LOG"; }
bad() { echo "FAIL - $*" | tee -a "$LOG"; }
note() { echo "NOTE - $*" | tee -a "$LOG"; }
# check DESC CMD...: ok DESC when CMD succeeds, bad DESC otherwise.
check() {
    desc=$1
    shift
    if "$@"; then ok "$desc"; else bad "$desc"; fi
}
elapsed() { echo "($(($(date +%s) - start)) s)"; }

# install_missing NAME TOOL:PACKAGE...: installs (apt) the package of each tool not on PATH.
install_missing() {
    name=$1
    shift
    missing=""
    for tool in "$@"; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool#*:}"
    done
    [ -n "$missing" ] || return 0
    echo "$name: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }
}

# build_packages SUMMARY ARGS...: scripts/build-packages.sh ARGS, its output in
# $T/build.out; when it fails, the end of its log, a failure and the SUMMARY line, and exit 1.
build_packages() {
    summary=$1
    shift
    if ! "$SRC/scripts/build-packages.sh" "$@" >"$T/build.out" 2>"$T/build.log"; then
        tail -30 "$T/build.log" | sed 's/^/    /'
        bad "scripts/build-packages.sh $* (log: $T/build.log)"
        echo "$summary: 0 passed, 1 failed"
        exit 1
    fi
}

# finish SUMMARY: prints the counts of the log as "SUMMARY: N passed, M failed"; succeeds
# when something passed and nothing failed.
finish() {
    passed=$(grep -c '^ok - ' "$LOG" || true)
    failed=$(grep -c '^FAIL - ' "$LOG" || true)
    echo "# done $(elapsed)"
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}
