//! The packaging test (tests/packaging/run.sh), run by `cargo test`: builds the .deb and the
//! .rpm with scripts/build-packages.sh (a release build), checks their contents and metadata,
//! runs lintian, then installs, upgrades, removes and purges the .deb in an isolated root
//! inside a network namespace of its own. Needs root: skipped otherwise (a failure with
//! CI=true). `SYMROUTE_SKIP_PACKAGING_TEST=1` skips it on purpose (e.g. when a Makefile
//! target runs the script itself).

use std::path::Path;
use std::process::Command;

#[test]
fn packages_build_install_upgrade_and_purge_cleanly() {
    if std::env::var("SYMROUTE_SKIP_PACKAGING_TEST").as_deref() == Ok("1") {
        eprintln!("SKIPPED packaging test: SYMROUTE_SKIP_PACKAGING_TEST=1");
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
