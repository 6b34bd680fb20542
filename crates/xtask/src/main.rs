//! `cargo run -p xtask -- man OUT_DIR`: writes the man pages of symroute's binaries, generated
//! with clap_mangen from the very command-line definitions the binaries parse with (their
//! `src/cli.rs`, compiled in here with `#[path]`), plus the hand-written pages of
//! `packaging/man/`. scripts/build-packages.sh runs it for the .deb and .rpm.
//!
//! A binary's `cli.rs` is picked up when it defines `pub struct Args` (`#[derive(Parser)]`) or
//! `pub fn command() -> clap::Command`, and uses only clap, std and symroute-core (see
//! build.rs). Binaries without one yet get no page.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[path = "../../symroute-hook/src/cli.rs"]
#[allow(dead_code)]
mod hook_cli;

#[cfg(any(symrouted_cli = "args", symrouted_cli = "command"))]
#[path = "../../symrouted/src/cli.rs"]
#[allow(dead_code)]
mod symrouted_cli;

#[cfg(any(symroute_cli = "args", symroute_cli = "command"))]
#[path = "../../symroute/src/cli.rs"]
#[allow(dead_code)]
mod symroute_cli;

/// Section of every generated page: the binaries live in /usr/sbin.
const SECTION: &str = "8";

#[derive(Parser, Debug)]
#[command(name = "xtask", about = "symroute build helpers")]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Write the man pages (NAME.8 per binary, NAME-SUBCOMMAND.8 per subcommand, and the
    /// hand-written pages of packaging/man/) into OUT_DIR, one file per page, uncompressed
    Man {
        /// Where the pages go (created if missing)
        #[arg(value_name = "OUT_DIR")]
        out: PathBuf,
        /// Date printed in the page footer, YYYY-MM-DD [default: from SOURCE_DATE_EPOCH,
        /// else none]
        #[arg(long)]
        date: Option<String>,
        /// Version printed in the page footer [default: the workspace version]
        #[arg(long)]
        version: Option<String>,
    },
    /// Print the names of the binaries that get a generated man page, one per line
    ManBinaries,
}

/// The command lines xtask knows, in packaging order.
fn commands() -> Vec<clap::Command> {
    #[allow(unused_mut)]
    let mut commands = vec![hook_cli::Args::command()];
    #[cfg(symrouted_cli = "args")]
    commands.push(symrouted_cli::Args::command());
    #[cfg(symrouted_cli = "command")]
    commands.push(symrouted_cli::command());
    #[cfg(symroute_cli = "args")]
    commands.push(symroute_cli::Args::command());
    #[cfg(symroute_cli = "command")]
    commands.push(symroute_cli::command());
    commands
}

/// One rendered page: file name and roff text.
#[derive(Debug)]
struct Page {
    file: String,
    text: Vec<u8>,
}

/// Renders `cmd` and every visible subcommand (recursively, as `parent-sub.8`).
fn pages_of(cmd: clap::Command, date: &str, source: &str) -> std::io::Result<Vec<Page>> {
    fn walk(
        cmd: clap::Command,
        date: &str,
        source: &str,
        out: &mut Vec<Page>,
    ) -> std::io::Result<()> {
        // The after-help text becomes real sections (EXIT STATUS, FILES...) instead of
        // clap_mangen's one preformatted "EXTRA" block.
        let after = cmd
            .get_after_long_help()
            .or_else(|| cmd.get_after_help())
            .map(|s| s.to_string());
        let bare = cmd
            .clone()
            .after_help(None::<&'static str>)
            .after_long_help(None::<&'static str>);
        let man = clap_mangen::Man::new(bare)
            .section(SECTION)
            .date(date)
            .source(source)
            .manual("System Administration");
        let mut text = Vec::new();
        man.render(&mut text)?;
        let mut text = String::from_utf8(text).map_err(std::io::Error::other)?;
        // The VERSION section only repeats the footer.
        if let Some(at) = text.find("\n.SH VERSION\n") {
            text.truncate(at + 1);
        }
        let (sections, refs) = after_help_sections(after.as_deref().unwrap_or(""));
        text.push_str(&sections);
        text.push_str(&see_also(cmd.get_name(), &refs));
        out.push(Page {
            file: man.get_filename(),
            text: text.into_bytes(),
        });
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub.clone(), date, source, out)?;
        }
        Ok(())
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    // Building names the subcommands `parent-sub` (their display name), which is both the
    // page's title and its file name.
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, date, source, &mut out)?;
    Ok(out)
}

/// Escapes text for roff: backslashes, ASCII hyphens (so options stay copy-pasteable) and
/// leading control characters.
fn roff_escape(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Turns an after-help text made of `HEADING:` lines followed by indented lines into one
/// `.SH HEADING` per heading, its lines kept as written (`.nf`), so aligned tables stay so.
/// A `SEE ALSO:` section is not rendered but returned as its references, for `see_also`.
fn after_help_sections(after: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut refs = Vec::new();
    // None before the first heading; Some(true) inside SEE ALSO.
    let mut in_see_also: Option<bool> = None;
    let close = |out: &mut String, state: Option<bool>| {
        if state == Some(false) {
            out.push_str(".fi\n");
        }
    };
    for line in after.lines() {
        let heading = line
            .strip_suffix(':')
            .filter(|h| !h.is_empty() && !h.starts_with(' '));
        if let Some(heading) = heading {
            close(&mut out, in_see_also);
            if heading.eq_ignore_ascii_case("see also") {
                in_see_also = Some(true);
            } else {
                out.push_str(&format!(".SH \"{}\"\n.nf\n", heading.to_uppercase()));
                in_see_also = Some(false);
            }
            continue;
        }
        match in_see_also {
            Some(true) => refs.extend(
                line.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(String::from),
            ),
            state => {
                if state.is_none() {
                    out.push_str(".SH NOTES\n.nf\n");
                    in_see_also = Some(false);
                }
                let line = line.strip_prefix("  ").unwrap_or(line);
                out.push_str(&roff_escape(line));
                out.push('\n');
            }
        }
    }
    close(&mut out, in_see_also);
    (out, refs)
}

/// SEE ALSO: the references the command names itself, then the other binaries' pages,
/// symroute.toml(5), and the iproute2 and dispatcher pages, each once.
fn see_also(name: &str, own: &[String]) -> String {
    let mut refs: Vec<String> = own.to_vec();
    refs.extend(
        commands()
            .iter()
            .map(|c| c.get_name().to_string())
            .filter(|n| n != name)
            .map(|n| format!("{n}(8)")),
    );
    refs.extend(
        [
            "symroute.toml(5)",
            "ip-rule(8)",
            "ip-route(8)",
            "NetworkManager-dispatcher(8)",
        ]
        .map(String::from),
    );
    let mut seen = std::collections::BTreeSet::new();
    refs.retain(|r| !r.starts_with(&format!("{name}(")) && seen.insert(r.clone()));
    let refs: Vec<String> = refs.iter().map(|r| roff_escape(r)).collect();
    format!(".SH \"SEE ALSO\"\n{}\n", refs.join(",\n"))
}

/// `YYYY-MM-DD` of a Unix time (UTC), for SOURCE_DATE_EPOCH.
fn civil_date(epoch: i64) -> String {
    symroute_core::civil::date(epoch)
}

fn hand_written_pages() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/man")
}

fn write_pages(out: &Path, date: &str, version: &str) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let source = format!("symroute {version}");
    let mut written = Vec::new();
    for cmd in commands() {
        let cmd = cmd.version(&*Box::leak(version.to_string().into_boxed_str()));
        for page in pages_of(cmd, date, &source).map_err(|e| e.to_string())? {
            let path = out.join(&page.file);
            std::fs::write(&path, &page.text).map_err(|e| format!("{}: {e}", path.display()))?;
            written.push(path);
        }
    }
    let dir = hand_written_pages();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for src in entries {
            let Some(name) = src.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            // Pages are NAME.SECTION; anything else (README...) is not a page.
            if !name
                .rsplit_once('.')
                .is_some_and(|(_, s)| s.len() == 1 && s.chars().all(|c| c.is_ascii_digit()))
            {
                continue;
            }
            let text = std::fs::read_to_string(&src)
                .map_err(|e| format!("{}: {e}", src.display()))?
                .replace("@VERSION@", version)
                .replace("@DATE@", date);
            let path = out.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

fn main() -> ExitCode {
    match Xtask::parse().task {
        Task::Man { out, date, version } => {
            let date = date
                .or_else(|| {
                    std::env::var("SOURCE_DATE_EPOCH")
                        .ok()
                        .and_then(|s| s.trim().parse::<i64>().ok())
                        .map(civil_date)
                })
                .unwrap_or_default();
            let version = version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
            match write_pages(&out, &date, &version) {
                Ok(written) => {
                    for path in written {
                        println!("{}", path.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("xtask man: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Task::ManBinaries => {
            for cmd in commands() {
                println!("{}", cmd.get_name());
            }
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_help_becomes_sections_and_see_also_is_merged() {
        let (text, refs) = after_help_sections(
            "EXIT STATUS:\n  0  done\n  1  failure\n\nSEE ALSO:\n  symroute(8), systemd.service(5)\n",
        );
        assert_eq!(
            text,
            ".SH \"EXIT STATUS\"\n.nf\n0  done\n1  failure\n\n.fi\n"
        );
        assert_eq!(refs, ["symroute(8)", "systemd.service(5)"]);
        let see = see_also("symrouted", &refs);
        assert_eq!(see.matches("symroute(8)").count(), 1, "{see}");
        assert!(
            see.contains("systemd.service(5)") && !see.contains("symrouted(8)"),
            "{see}"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_735_689_599), "2024-12-31");
        assert_eq!(civil_date(1_735_689_600), "2025-01-01");
    }

    #[test]
    fn hook_page_has_every_option_and_the_exit_status() {
        let pages = pages_of(hook_cli::Args::command(), "2025-01-01", "symroute 0.1.0").unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].file, "symroute-hook.8");
        let text = String::from_utf8(pages[0].text.clone()).unwrap();
        assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{text}");
        assert!(
            text.contains(".TH symroute-hook 8 2025-01-01 \"symroute 0.1.0\""),
            "{text}"
        );
        assert!(text.contains(".SH \"EXIT STATUS\"\n.nf\n0  done"), "{text}");
        assert!(
            !text.contains(".SH EXTRA") && !text.contains(".SH VERSION"),
            "{text}"
        );
        for option in [
            "\\-\\-all",
            "\\-\\-flush",
            "\\-\\-dry\\-run",
            "\\-\\-config",
        ] {
            assert!(text.contains(option), "{option} missing from\n{text}");
        }
        assert!(text.contains("EXIT STATUS"), "{text}");
    }

    #[test]
    fn every_command_renders_with_subcommand_pages() {
        for cmd in commands() {
            let name = cmd.get_name().to_string();
            let subs: Vec<String> = cmd
                .get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name() != "help")
                .map(|s| format!("{name}-{}.8", s.get_name()))
                .collect();
            let pages = pages_of(cmd, "", "symroute").unwrap();
            let files: Vec<&str> = pages.iter().map(|p| p.file.as_str()).collect();
            assert_eq!(files[0], format!("{name}.8"));
            for sub in &subs {
                assert!(files.contains(&sub.as_str()), "{sub} not in {files:?}");
            }
        }
    }

    #[test]
    fn hand_written_pages_exist() {
        assert!(hand_written_pages().join("symroute.toml.5").is_file());
    }
}
