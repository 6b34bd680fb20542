//! Property tests for what comes from outside: the configuration file's text, the event
//! names and interface names dispatchers pass. Whatever the input, parsing never panics, an
//! error is one line naming the file, and what is accepted keeps the invariants a run relies
//! on. Case counts stay modest so the suite stays fast.

use std::path::Path;

use proptest::prelude::*;
use symroute_core::config::{self, ConfigError};
use symroute_core::{action_for, validate_interface_name, Action, Settings};

const PATH: &str = "/etc/symroute/symroute.toml";

const KEYS: &[&str] = &[
    "table_base",
    "rule_priority",
    "ipv4",
    "ipv6",
    "include",
    "exclude",
    "prefix_rules",
    "iif_rules",
    "fwmark_mask",
    "exempt",
    "strict",
    "table_names",
    "tabel_base",
    "",
];

/// A value of some TOML type, often a wrong one.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| format!("{n:#x}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "\"[^\"\\\\\n]{0,20}\"".prop_map(|s| s),
        prop::collection::vec("\"[a-z0-9*?./: ]{0,18}\"", 0..4)
            .prop_map(|v| format!("[{}]", v.join(", "))),
        "[^\n]{0,20}",
    ]
}

/// Lines that look like a configuration, in any order, with duplicates and garbage.
fn config_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}")),
            1 => "[^\n]{0,40}",
            1 => Just("[section]".to_string()),
        ],
        0..8,
    )
    .prop_map(|lines| lines.join("\n"))
}

fn check_result(text: &str, result: Result<Settings, ConfigError>) -> Result<(), TestCaseError> {
    match result {
        Ok(s) => {
            // What a run relies on: valid tables and priorities, something to do.
            prop_assert!((255..=4_000_000_000).contains(&s.table_base), "{text:?}");
            prop_assert!((2..=32765).contains(&s.rule_priority), "{text:?}");
            prop_assert!(!s.iif_rules || s.rule_priority >= 3, "{text:?}");
            prop_assert!(s.fwmark_mask.count_ones() >= 2, "{text:?}");
            prop_assert!(s.ipv4 || s.ipv6, "{text:?}");
            for p in s.include.iter().chain(&s.exclude) {
                prop_assert!(!p.is_empty() && p.len() <= 15 && !p.contains('/'), "{p:?}");
            }
        }
        Err(e) => {
            let line = e.to_string();
            prop_assert!(line.starts_with(PATH), "{line}");
            prop_assert!(!line.contains('\n'), "error is not one line: {line:?}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn config_text_never_panics_and_errors_are_one_line(text in config_text()) {
        check_result(&text, config::parse(&text, Path::new(PATH)))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_result(&text, config::parse(&text, Path::new(PATH)))?;
    }

    #[test]
    fn prefixes_parse_or_are_refused(text in "[0-9a-f:./]{0,45}") {
        if let Ok(prefix) = config::parse_prefix(&text) {
            // Canonical: host bits are zero, so the kernel takes it as it is.
            prop_assert_eq!(config::parse_prefix(&prefix.to_string()).ok(), Some(prefix));
        }
    }

    #[test]
    fn event_names_never_panic_and_unknown_ones_are_ignored(event in "\\PC{0,30}") {
        let known = [
            "up", "dhcp4-change", "dhcp6-change", "reapply", "vpn-up", "down", "pre-down",
            "vpn-down", "vpn-pre-down", "routable", "configured", "degraded", "off",
            "no-carrier", "sync", "remove",
        ];
        let action = action_for(&event);
        prop_assert_eq!(action == Action::Ignore, !known.contains(&event.as_str()));
    }

    #[test]
    fn accepted_interface_names_are_kernel_names(name in "\\PC{0,20}") {
        if validate_interface_name(&name).is_ok() {
            prop_assert!(!name.is_empty() && name.len() <= 15);
            prop_assert!(name != "." && name != "..");
            prop_assert!(!name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()));
        } else {
            let e = validate_interface_name(&name).unwrap_err().to_string();
            prop_assert!(!e.contains('\n'), "{e:?}");
        }
    }
}

mod monitor {
    use proptest::prelude::*;
    use symroute_core::monitor::{parse_datagram, Change, Received};

    fn received(bytes: &[u8]) -> Vec<Received> {
        let mut all = Vec::new();
        parse_datagram(bytes, &mut |r| all.push(r));
        all
    }

    fn datagram(kind: u16, flags: u16, sender: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16 + payload.len());
        bytes.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&sender.to_ne_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_bytes_decode_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            received(&bytes);
        }

        #[test]
        fn decoded_routes_are_well_formed(
            kind in 16u16..0x70,
            flags in any::<u16>(),
            payload in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            for r in received(&datagram(kind, flags, 0, &payload)) {
                let Received::Message { message, .. } = r else { continue };
                match message {
                    Change::Route { route, .. } => {
                        let max = route.family().host_prefix_len();
                        prop_assert!(route.dst_len <= max, "{route:?}");
                    }
                    Change::RuleAdded(rule) | Change::RuleRemoved(rule) => {
                        let max = rule.family.host_prefix_len();
                        for (_, len) in rule.src.iter().chain(rule.dst.iter()) {
                            prop_assert!(*len <= max, "{rule:?}");
                        }
                    }
                    _ => {}
                }
            }
        }

        #[test]
        fn other_message_types_yield_nothing(
            kind in prop_oneof![
                prop::sample::select(vec![0u16, 1, 2, 3, 5, 6, 15]),
                0x100u16..=u16::MAX
            ],
            payload in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            prop_assert!(received(&datagram(kind, 0, 0, &payload)).is_empty());
        }
    }
}
