//! Interpreting the facts [`HostFacts`](crate::model::host::HostFacts) holds as the programs
//! that read them do.

use std::path::PathBuf;

/// A `Key=` of networkd.conf as it ends up after the main file and the drop-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkdKey {
    pub value: bool,
    /// The file that set it last; `None` means systemd's default.
    pub source: Option<PathBuf>,
}

/// systemd's `parse_boolean`.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// The value of `[Network] KEY=` after every file, as networkd computes it: later
/// assignments win, an empty assignment resets to the default (yes), an unparsable value is
/// ignored.
pub fn networkd_key(files: &[(PathBuf, String)], key: &str) -> NetworkdKey {
    let mut result = NetworkdKey {
        value: true,
        source: None,
    };
    for (path, text) in files {
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_string();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            if section != "Network" || k.trim() != key {
                continue;
            }
            let v = v.trim();
            if v.is_empty() {
                result = NetworkdKey {
                    value: true,
                    source: Some(path.clone()),
                };
            } else if let Some(value) = parse_bool(v) {
                result = NetworkdKey {
                    value,
                    source: Some(path.clone()),
                };
            }
        }
    }
    result
}
