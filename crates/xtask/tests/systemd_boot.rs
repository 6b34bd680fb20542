//! The boot test (tests/systemd/run.sh), run by `cargo test`: builds the .deb, then boots
//! Debian roots (cached, built with mmdebstrap from the machine's mirror) under a real
//! systemd with systemd-nspawn, each in a network namespace of its own, and checks the unit
//! there: start, READY, reload, the watchdog, a bad config, `systemd-analyze verify` and
//! `security`, `[health]` probing through the sandbox with the documented drop-in (and its
//! refusal without it), no ordering cycle with cloud-init + ifupdown, networkd or
//! NetworkManager, and the daemon following NetworkManager started after it. Needs root: skipped otherwise (a
//! failure with CI=true). `SYMROUTE_SKIP_BOOT_TEST=1` skips it on purpose (e.g. when a
//! Makefile target runs the script itself).

mod common;

#[test]
fn the_unit_boots_under_systemd_without_ordering_cycles() {
    common::run_root_script(
        "systemd boot test",
        "tests/systemd/run.sh",
        "SYMROUTE_SKIP_BOOT_TEST",
    );
}
