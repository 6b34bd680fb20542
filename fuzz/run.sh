#!/bin/sh
# Runs the fuzz targets (all, or those named) one after the other, each for FUZZ_SECONDS
# seconds (default 60), with cargo-fuzz (libFuzzer, AddressSanitizer). `make fuzz` runs it.
#
# Usage: fuzz/run.sh [TARGET...]
# Environment:
#   FUZZ_SECONDS   how long each target runs (default 60)
#   FUZZ_ARGS      more libFuzzer flags, e.g. "-max_len=8192"
#
# The seeds in fuzz/corpus/TARGET are read, never written: what a run adds goes to
# fuzz/target/corpus/TARGET, kept between runs. A crash fails the run; its input is in
# fuzz/artifacts/TARGET/, and `cargo fuzz run TARGET FILE` replays it. The last line per
# target says how many inputs ran (docs/fuzzing.md lists what runs found).
#
# cargo-fuzz needs a nightly compiler: the `nightly` rustup toolchain when installed, else
# the stable one with RUSTC_BOOTSTRAP=1 (which lets it take -Z flags). cargo-fuzz itself is
# installed with `cargo install cargo-fuzz` when missing.
set -eu

FUZZ=$(cd "$(dirname "$0")" && pwd)
cd "$FUZZ"
SECONDS_EACH=${FUZZ_SECONDS:-60}
case "$SECONDS_EACH" in
    "" | *[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a number of seconds, got '$SECONDS_EACH'" >&2; exit 2 ;;
esac

CARGO=${CARGO:-cargo}
if ! "$CARGO" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    "$CARGO" install cargo-fuzz --locked >&2
fi
toolchain=""
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=+nightly
else
    echo "fuzz: no nightly toolchain: the stable one with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
fi
fuzz() {
    if [ -n "$toolchain" ]; then "$CARGO" "$toolchain" fuzz "$@"; else "$CARGO" fuzz "$@"; fi
}
targets=${*:-$(fuzz list)}

failed=""
for t in $targets; do
    [ -d "corpus/$t" ] || { echo "fuzz: no seed corpus fuzz/corpus/$t" >&2; exit 2; }
    mkdir -p "target/corpus/$t" target/logs
    log=target/logs/$t.log
    echo "fuzz: $t for ${SECONDS_EACH} s (log: fuzz/$log)" >&2
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    if fuzz run "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        failed="$failed $t"
        grep -E 'panicked|ERROR: |SUMMARY|Test unit written|artifact' "$log" | head -20 | sed 's/^/    /' >&2
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
    echo "fuzz: $t: $result, ${runs:-?} runs in ${SECONDS_EACH} s, ${cov:-cov: ?}, corpus $(find "target/corpus/$t" -type f | wc -l) files"
done
if [ -n "$failed" ]; then
    echo "fuzz: crashed:$failed (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
