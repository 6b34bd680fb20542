//! Runs one of the repository's root shell test scripts (`tests/*/run.sh`) as a cargo test.

use std::path::Path;
use std::process::Command;

/// Runs `script` (relative to the repository) with `sh`, shows its output, and fails with
/// its `FAIL` lines unless it succeeds; its `SKIPPED` and `NOTE` lines show even when it
/// passes (libtest captures the rest). Skipped visibly when `skip_var` is `1` (e.g. when a
/// Makefile target runs the script itself), and unless root; either is a failure with
/// CI=true. `what` names the test in those messages.
pub fn run_root_script(what: &str, script: &str, skip_var: &str) {
    let asked_to_skip = std::env::var(skip_var).as_deref() == Ok("1");
    if !symroute_testlab::require(
        !asked_to_skip,
        what,
        &format!("{skip_var}=1 asks to skip it"),
    ) {
        return;
    }
    if !symroute_testlab::require_root(what) {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(script);
    let output = Command::new("sh")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("SKIPPED") || l.starts_with("NOTE"))
    {
        symroute_testlab::say(&format!("{what}: {line}"));
    }
    assert!(
        output.status.success(),
        "{script} failed ({}): {}",
        output.status,
        stdout
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
