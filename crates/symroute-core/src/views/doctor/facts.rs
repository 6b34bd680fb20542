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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networkd_keys_follow_file_order_and_defaults() {
        let files = |list: &[(&str, &str)]| -> Vec<(PathBuf, String)> {
            list.iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect()
        };
        let k = "ManageForeignRoutingPolicyRules";
        assert_eq!(
            networkd_key(&[], k),
            NetworkdKey {
                value: true,
                source: None
            }
        );
        let f = files(&[
            (
                "/etc/systemd/networkd.conf",
                "[Network]\n#ManageForeignRoutingPolicyRules=no\n",
            ),
            (
                "/etc/systemd/networkd.conf.d/symroute.conf",
                "[Network]\nManageForeignRoutingPolicyRules = no\n",
            ),
        ]);
        assert_eq!(
            networkd_key(&f, k),
            NetworkdKey {
                value: false,
                source: Some("/etc/systemd/networkd.conf.d/symroute.conf".into())
            }
        );
        // A later drop-in turns it back on; a key in another section does not count; an
        // unparsable value is ignored; an empty one resets to yes.
        let f = files(&[
            ("/a.conf", "[Network]\nManageForeignRoutingPolicyRules=off\n"),
            ("/b.conf", "[DHCPv4]\nManageForeignRoutingPolicyRules=yes\n[Network]\nManageForeignRoutingPolicyRules=maybe\n"),
        ]);
        assert!(!networkd_key(&f, k).value);
        let f = files(&[
            ("/a.conf", "[Network]\nManageForeignRoutingPolicyRules=no\n"),
            ("/z.conf", "[Network]\nManageForeignRoutingPolicyRules=\n"),
        ]);
        assert_eq!(
            networkd_key(&f, k),
            NetworkdKey {
                value: true,
                source: Some("/z.conf".into())
            }
        );
    }
}
