//! Finds which binaries have a `src/cli.rs` that xtask can compile in (with `#[path]`) to
//! generate their man pages, and how it exposes its command line:
//!
//! - `pub fn command() -> clap::Command`  → cfg `NAME_cli = "command"`
//! - `pub struct Args` with `#[derive(Parser)]` → cfg `NAME_cli = "args"`
//!
//! A binary without `cli.rs` (yet) simply gets no man page; nothing fails.

use std::path::Path;

/// (crate directory under crates/, cfg name)
const OPTIONAL: [(&str, &str); 2] = [("symrouted", "symrouted_cli"), ("symroute", "symroute_cli")];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let crates = Path::new(&manifest).join("..");
    for (dir, cfg) in OPTIONAL {
        println!("cargo::rustc-check-cfg=cfg({cfg}, values(\"args\", \"command\"))");
        let src = crates.join(dir).join("src");
        // A directory is watched as a whole: a cli.rs appearing later reruns this script.
        if src.is_dir() {
            println!("cargo::rerun-if-changed={}", src.display());
        } else {
            println!("cargo::rerun-if-changed={}", crates.display());
        }
        let Ok(text) = std::fs::read_to_string(src.join("cli.rs")) else {
            continue;
        };
        if text.contains("pub fn command()") {
            println!("cargo::rustc-cfg={cfg}=\"command\"");
        } else if text.contains("pub struct Args") {
            println!("cargo::rustc-cfg={cfg}=\"args\"");
        } else {
            println!(
                "cargo::warning=crates/{dir}/src/cli.rs has neither `pub fn command() -> clap::Command` \
                 nor `pub struct Args`: no man page for {dir}"
            );
        }
    }
}
