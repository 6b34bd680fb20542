//! Runs one of the repository's root shell test scripts (`tests/*/run.sh`) as a cargo test.

use std::path::Path;
use std::process::Command;

/// Runs `script` (relative to the repository) with `sh`, shows its output, and fails with
/// its `FAIL` lines unless it succeeds. Skipped with a message when `skip_var` is `1` (e.g.
/// when a Makefile target runs the script itself), and unless root (a failure with
/// CI=true); `what` names the test in those messages.
pub fn run_root_script(what: &str, script: &str, skip_var: &str) {
    if std::env::var(skip_var).as_deref() == Ok("1") {
        eprintln!("SKIPPED {what}: {skip_var}=1");
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
