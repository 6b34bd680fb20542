//! The one nftables table symroute owns, `table inet symroute`, which `iif_rules` needs: it
//! marks every connection with the interface it came in through (a conntrack mark) and puts
//! that mark on the connection's answers, which symroute's `fwmark` rules then route by that
//! interface's table — wherever the answer comes from (a LAN, a container, the host itself).
//!
//! - [`table`] is the table's whole text, a pure function of the marked interfaces
//!   ([`marked_links`]) and the settings. Its `comment` carries a hash of the rest, so that
//!   what is installed is recognised without reading or comparing rules.
//! - [`change`] compares it with what the kernel holds (read by `kernel::nftables`, which
//!   also applies the change, and only when [`change`] says it differs).

use std::collections::BTreeMap;

use crate::model::nft::TABLE;
use crate::model::{Link, NftChange, NftInstalled as Installed, NftTable, Snapshot};
use crate::settings::Settings;

/// An interface whose connections are marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub ifindex: u32,
    pub name: String,
    pub mark: u32,
}

/// The interfaces whose connections are marked once a run is done. `planned` holds the
/// interfaces this run decides about, each with its plan's mark (`None`: no rules, removed,
/// or an index `fwmark_mask` cannot hold); every other interface is taken as the kernel has
/// it: one with rules of ours into its table keeps its mark. Loopback and interfaces left out
/// by `include`/`exclude` are never marked.
pub fn marked_links(
    snapshot: &Snapshot,
    settings: &Settings,
    planned: &BTreeMap<u32, Option<u32>>,
) -> Vec<Marked> {
    if !settings.iif_rules {
        return Vec::new();
    }
    let has_rules = |link: &Link| {
        let table = settings.table_for(link.index);
        snapshot
            .rules_into(settings.protocol, table)
            .next()
            .is_some()
    };
    let mut marked: Vec<Marked> = snapshot
        .links
        .iter()
        .filter(|l| !l.loopback && settings.manages(&l.name))
        .filter_map(|l| {
            let mark = match planned.get(&l.index) {
                Some(mark) => *mark,
                None if has_rules(l) => settings.mark_for(l.index),
                None => None,
            }?;
            Some(Marked {
                ifindex: l.index,
                name: l.name.clone(),
                mark,
            })
        })
        .collect();
    marked.sort_by_key(|m| m.ifindex);
    marked
}

/// The whole `table inet symroute` for `marked`; `None` when nothing is marked (then the
/// table should not exist).
///
/// ```text
/// table inet symroute {
///     comment "symroute iif_rules HASH-OF-THE-REST"
///     chain prerouting {
///         type filter hook prerouting priority mangle; policy accept;
///         ct state new iif 2 ct mark set ct mark & 0x00ffffff | 0x02000000
///         meta mark 0 ct direction reply ct mark & 0xff000000 != 0 meta mark set ct mark & 0xff000000
///     }
///     chain output {
///         type route hook output priority mangle; policy accept;
///         meta mark 0 ct direction reply ct mark & 0xff000000 == 0x02000000 oif != 2 meta mark set 0x02000000
///     }
/// }
/// ```
///
/// - A connection's first packet entering interface N sets N's mark in the connection's
///   `fwmark_mask` bits (the other bits are someone else's and kept). Interfaces are matched
///   by index, like symroute's tables: no name is ever quoted into the script.
/// - Every answer entering the host (from a LAN, a container, a DNAT target) gets the mark
///   before routing, so the `fwmark` rule routes it by N's table.
/// - An answer the host sends itself (a DNAT'ed connection to a local address, a TCP reset)
///   is marked and routed again (`type route`) only when it would leave through another
///   interface than N: the rest costs no second route lookup.
/// - Packets that already carry a mark (a socket's `SO_MARK`: WireGuard, Tailscale, VPN
///   clients; another firewall's mark) are left alone.
pub fn table(marked: &[Marked], settings: &Settings) -> Option<NftTable> {
    if !settings.iif_rules || marked.is_empty() {
        return None;
    }
    let mask = settings.fwmark_mask;
    let keep = !mask;
    let mut body = String::from(
        "\tchain prerouting {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n",
    );
    for m in marked {
        body.push_str(&format!(
            "\t\tct state new iif {} ct mark set ct mark & {keep:#010x} | {:#010x}\n",
            m.ifindex, m.mark
        ));
    }
    body.push_str(&format!(
        "\t\tmeta mark 0 ct direction reply ct mark & {mask:#010x} != 0 meta mark set ct mark & \
         {mask:#010x}\n\t}}\n"
    ));
    body.push_str("\tchain output {\n\t\ttype route hook output priority mangle; policy accept;\n");
    for m in marked {
        body.push_str(&format!(
            "\t\tmeta mark 0 ct direction reply ct mark & {mask:#010x} == {mark:#010x} oif != {} \
             meta mark set {mark:#010x}\n",
            m.ifindex,
            mark = m.mark
        ));
    }
    body.push_str("\t}\n");
    let comment = format!("symroute iif_rules {:016x}", fnv1a(body.as_bytes()));
    let text = format!("table {TABLE} {{\n\tcomment \"{comment}\"\n{body}}}\n");
    Some(NftTable {
        comment,
        text,
        interfaces: marked.iter().map(|m| m.name.clone()).collect(),
    })
}

/// What turns `installed` into `wanted`; `None` when they already agree.
pub fn change(wanted: Option<&NftTable>, installed: &Installed) -> Option<NftChange> {
    match (wanted, installed) {
        (Some(w), Installed::Present { comment }) if comment.as_deref() == Some(&w.comment) => None,
        (Some(w), _) => Some(NftChange::Replace(w.clone())),
        (None, Installed::Present { .. }) => Some(NftChange::Delete),
        (None, Installed::Absent) => None,
    }
}

/// 64-bit FNV-1a: stable across builds and Rust versions (unlike `DefaultHasher`), which the
/// comment of an installed table must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, link};
    use crate::model::Rule;

    fn settings() -> Settings {
        Settings {
            iif_rules: true,
            ..Settings::default()
        }
    }

    fn marked(ifindex: u32, name: &str) -> Marked {
        Marked {
            ifindex,
            name: name.into(),
            mark: ifindex << 24,
        }
    }

    fn rule(table: u32, protocol: u8) -> Rule {
        fixtures::rule(32000, Some(("10.2.0.2", 32)), table, protocol)
    }

    #[test]
    fn table_text_marks_each_interface_and_restores_on_answers() {
        let t = table(&[marked(2, "eth0"), marked(3, "eth1")], &settings()).unwrap();
        let body = "\tchain prerouting {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tct state new iif 2 ct mark set ct mark & 0x00ffffff | 0x02000000
\t\tct state new iif 3 ct mark set ct mark & 0x00ffffff | 0x03000000
\t\tmeta mark 0 ct direction reply ct mark & 0xff000000 != 0 meta mark set ct mark & 0xff000000
\t}
\tchain output {
\t\ttype route hook output priority mangle; policy accept;
\t\tmeta mark 0 ct direction reply ct mark & 0xff000000 == 0x02000000 oif != 2 meta mark set 0x02000000
\t\tmeta mark 0 ct direction reply ct mark & 0xff000000 == 0x03000000 oif != 3 meta mark set 0x03000000
\t}
";
        let comment = format!("symroute iif_rules {:016x}", fnv1a(body.as_bytes()));
        assert_eq!(t.comment, comment);
        // Pinned (docs/configuration.md shows it): a table installed by one version is
        // recognised by the next unless its content really changed.
        assert_eq!(comment, "symroute iif_rules 4d177ba6d722a33d");
        assert_eq!(
            t.text,
            format!("table inet symroute {{\n\tcomment \"{comment}\"\n{body}}}\n")
        );
        assert_eq!(t.interfaces, ["eth0", "eth1"]);
        assert_eq!(
            NftChange::Replace(t.clone()).line(),
            "nft: replace table inet symroute (2 interfaces)"
        );
        assert_eq!(
            NftChange::Replace(t.clone()).script(),
            format!(
                "table inet symroute\ndelete table inet symroute\n{}",
                t.text
            )
        );
    }

    #[test]
    fn another_mask_keeps_the_other_bits() {
        let s = Settings {
            fwmark_mask: 0x0000_3000,
            ..settings()
        };
        let t = table(
            &[Marked {
                ifindex: 2,
                name: "eth0".into(),
                mark: s.mark_for(2).unwrap(),
            }],
            &s,
        )
        .unwrap();
        assert!(t
            .text
            .contains("ct state new iif 2 ct mark set ct mark & 0xffffcfff | 0x00002000\n"));
        assert!(t
            .text
            .contains("ct mark & 0x00003000 != 0 meta mark set ct mark & 0x00003000\n"));
        assert_eq!(
            NftChange::Replace(t).line(),
            "nft: replace table inet symroute (1 interface)"
        );
    }

    #[test]
    fn nothing_marked_means_no_table() {
        assert_eq!(table(&[], &settings()), None);
        assert_eq!(table(&[marked(2, "eth0")], &Settings::default()), None);
    }

    #[test]
    fn the_comment_follows_the_content() {
        let one = table(&[marked(2, "eth0")], &settings()).unwrap();
        let two = table(&[marked(2, "eth0"), marked(3, "eth1")], &settings()).unwrap();
        assert_ne!(one.comment, two.comment);
        assert_eq!(one, table(&[marked(2, "eth0")], &settings()).unwrap());
        // FNV-1a's published test vector: the hash never changes between builds.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn change_only_when_the_installed_table_differs() {
        let t = table(&[marked(2, "eth0")], &settings()).unwrap();
        let same = Installed::Present {
            comment: Some(t.comment.clone()),
        };
        assert_eq!(change(Some(&t), &same), None);
        for other in [
            Installed::Absent,
            Installed::Present { comment: None },
            Installed::Present {
                comment: Some("symroute iif_rules 0000000000000000".into()),
            },
        ] {
            assert_eq!(
                change(Some(&t), &other),
                Some(NftChange::Replace(t.clone()))
            );
        }
        assert_eq!(change(None, &same), Some(NftChange::Delete));
        assert_eq!(change(None, &Installed::Absent), None);
        assert_eq!(NftChange::Delete.line(), "nft: delete table inet symroute");
        assert_eq!(
            NftChange::Delete.script(),
            "table inet symroute\ndelete table inet symroute\n"
        );
    }

    #[test]
    fn marked_links_take_this_runs_plans_and_the_kernels_rules_for_the_rest() {
        let s = settings();
        let snapshot = Snapshot {
            links: vec![
                link(1, "lo"),
                link(2, "eth0"),
                link(3, "eth1"),
                link(4, "docker0"),
                link(5, "lan0"),
                link(300, "ppp0"),
            ],
            rules: vec![
                rule(1002, 83),
                rule(1004, 83),
                rule(1005, 4),
                rule(1300, 83),
                rule(1001, 83),
            ],
            ..Snapshot::default()
        };
        let names = |m: Vec<Marked>| m.into_iter().map(|m| m.name).collect::<Vec<_>>();
        // eth0 and docker0 have rules of ours; lan0 only someone else's; ppp0's index does not
        // fit in the mask; lo never counts.
        assert_eq!(
            names(marked_links(&snapshot, &s, &BTreeMap::new())),
            ["eth0", "docker0"]
        );
        // This run plans eth1 (marked) and removes eth0.
        let planned = BTreeMap::from([(3, Some(0x0300_0000)), (2, None)]);
        let m = marked_links(&snapshot, &s, &planned);
        assert_eq!(
            m,
            [
                Marked {
                    ifindex: 3,
                    name: "eth1".into(),
                    mark: 0x0300_0000
                },
                Marked {
                    ifindex: 4,
                    name: "docker0".into(),
                    mark: 0x0400_0000
                }
            ]
        );
        let excluded = Settings {
            exclude: vec!["docker*".into()],
            ..s.clone()
        };
        assert_eq!(
            names(marked_links(&snapshot, &excluded, &BTreeMap::new())),
            ["eth0"]
        );
        assert!(marked_links(&snapshot, &Settings::default(), &BTreeMap::new()).is_empty());
    }
}
