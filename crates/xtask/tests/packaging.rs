//! The packaging test (tests/packaging/run.sh), run by `cargo test`: builds the .deb and the
//! .rpm with scripts/build-packages.sh (a release build), checks their contents and metadata,
//! runs lintian, then installs, upgrades, removes and purges the .deb in an isolated root
//! inside a network namespace of its own. Needs root: skipped otherwise (a failure with
//! CI=true). `SYMROUTE_SKIP_PACKAGING_TEST=1` skips it on purpose (e.g. when a Makefile
//! target runs the script itself), visibly, and is refused under CI=true like any skip.

use std::path::Path;
use std::process::Command;

#[test]
fn packages_build_install_upgrade_and_purge_cleanly() {
    let asked_to_skip = std::env::var("SYMROUTE_SKIP_PACKAGING_TEST").as_deref() == Ok("1");
    if !symroute_testlab::require(
        !asked_to_skip,
        "packaging test",
        "SYMROUTE_SKIP_PACKAGING_TEST=1 asks to skip it",
    ) {
        return;
    }
    if !symroute_testlab::require_root("packaging test") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/packaging/run.sh");
    let output = Command::new("sh")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    // A check the script skipped shows even when the test passes (its output is captured).
    for line in stdout.lines().filter(|l| l.starts_with("SKIPPED")) {
        symroute_testlab::say(&format!("packaging test: {line}"));
    }
    assert!(
        output.status.success(),
        "tests/packaging/run.sh failed ({}): {}",
        output.status,
        stdout
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
