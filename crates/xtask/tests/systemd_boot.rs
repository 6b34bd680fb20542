//! The boot test (tests/systemd/run.sh), run by `cargo test`: builds the .deb, then boots
//! Debian roots (cached, built with mmdebstrap from the machine's mirror) under a real
//! systemd with systemd-nspawn, each in a network namespace of its own, and checks the unit
//! there: start, READY, reload, the watchdog, a bad config, `systemd-analyze verify` and
//! `security`, no ordering cycle with cloud-init + ifupdown, networkd or NetworkManager, and
//! the daemon following NetworkManager started after it. Needs root: skipped otherwise (a
//! failure with CI=true). `SYMROUTE_SKIP_BOOT_TEST=1` skips it on purpose (e.g. when a
//! Makefile target runs the script itself).

use std::path::Path;
use std::process::Command;

#[test]
fn the_unit_boots_under_systemd_without_ordering_cycles() {
    if std::env::var("SYMROUTE_SKIP_BOOT_TEST").as_deref() == Ok("1") {
        eprintln!("SKIPPED systemd boot test: SYMROUTE_SKIP_BOOT_TEST=1");
        return;
    }
    if !symroute_testlab::require_root("systemd boot test") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/systemd/run.sh");
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
        "tests/systemd/run.sh failed ({}): {}",
        output.status,
        stdout
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
