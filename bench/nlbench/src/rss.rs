//! `rss`: the peak memory of another program, measured from this small process.

use std::process::exit;

use crate::sys::children_peak_rss_kib;
use crate::{die, Args};

pub fn cmd_rss(args: &Args) {
    let argv = args
        .after_dashes()
        .unwrap_or_else(|| die("usage: nlbench rss -- PROGRAM ARGS..."));
    let Some(program) = argv.first() else {
        die("rss: no program")
    };
    let status = std::process::Command::new(program)
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| die(&format!("rss: cannot run {program}: {e}")));
    println!(
        "{{\"rss_kib\":{},\"status\":{}}}",
        children_peak_rss_kib(),
        status.code().unwrap_or(-1)
    );
    if !status.success() {
        exit(1);
    }
}
