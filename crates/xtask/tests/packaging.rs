//! The packaging test (tests/packaging/run.sh), run by `cargo test`: builds the .deb and the
//! .rpm with scripts/build-packages.sh (a release build), checks their contents and metadata,
//! runs lintian, then installs, upgrades, removes and purges the .deb in an isolated root
//! inside a network namespace of its own. Needs root: skipped otherwise (a failure with
//! CI=true). `SYMROUTE_SKIP_PACKAGING_TEST=1` skips it on purpose (e.g. when a Makefile
//! target runs the script itself), visibly, and is refused under CI=true like any skip.

mod common;

#[test]
fn packages_build_install_upgrade_and_purge_cleanly() {
    common::run_root_script(
        "packaging test",
        "tests/packaging/run.sh",
        "SYMROUTE_SKIP_PACKAGING_TEST",
    );
}
