#!/bin/sh
# Runs shellcheck on every shell script of the source tree: found, not listed, so a new
# script is checked from its first commit. A shell script is a file whose first line is a
# sh/bash/dash shebang, a *.sh file, or a file with a `# shellcheck shell=...` line (the
# hooks dhclient-script and dhcpcd-run-hooks source, which have no shebang). target/ and
# fuzz/target/ (build outputs) and .git are not looked into.
#
# Usage: scripts/lint-shell.sh [--list]
#   --list   print the scripts found, check nothing
# Without shellcheck installed: SKIPPED with a message, a failure when CI=true (scripts/
# install-test-deps.sh installs it). Part of `make lint`.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"

# The scripts, one per line, sorted.
scripts() {
    find . \( -path ./target -o -path ./fuzz/target -o -path ./.git \) -prune -o -type f -print |
        sed 's|^\./||' | LC_ALL=C sort | while IFS= read -r f; do
            case "$f" in
                *.sh) echo "$f"; continue ;;
                *.rs | *.md | *.toml | *.json | *.lock | *.py | *.service | *.conf) continue ;;
            esac
            if head -n 1 "$f" 2>/dev/null | grep -Eq '^#! *(/usr)?/bin/(env +)?(ba|da)?sh( |$)' ||
                grep -Eq '^# shellcheck shell=(sh|bash|dash)$' "$f" 2>/dev/null; then
                echo "$f"
            fi
        done
}

case "${1:-}" in
    --list) scripts; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--list]" >&2; exit 2 ;;
esac

if ! command -v shellcheck >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "lint-shell: shellcheck is not installed, and CI=true (scripts/install-test-deps.sh installs it)" >&2
        exit 1
    fi
    echo "SKIPPED lint-shell: shellcheck is not installed (scripts/install-test-deps.sh installs it)" >&2
    exit 0
fi

list=$(scripts)
[ -n "$list" ] || { echo "lint-shell: no shell script found in $SRC" >&2; exit 1; }
# shellcheck disable=SC2086 # one argument per script; none has a space in its name
if shellcheck --external-sources $list; then
    echo "lint-shell: shellcheck passed on $(echo "$list" | wc -l) scripts" >&2
else
    echo "lint-shell: shellcheck found problems (above)" >&2
    exit 1
fi
