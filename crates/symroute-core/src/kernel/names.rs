//! The names iproute2 gives routing tables and route protocols, so that `--json` prints
//! `table` and `protocol` exactly as `ip -j rule` / `ip -j route` do on the same host:
//! `main`, `symroute-eth1` (rt_tables.d, `table_names = true`), `symroute` (rt_protos.d), and
//! the number as a string where no file names it.
//!
//! [`Names::parse`] is pure; [`Names::load`] reads the files iproute2 reads: `rt_tables` and
//! `rt_protos` and every `*.conf` in their `.d` folders, under `/etc/iproute2` and
//! `/usr/share/iproute2` (newer iproute2 keeps its defaults there). Unreadable or malformed
//! lines are skipped, as iproute2 skips them.

use std::collections::BTreeMap;
use std::path::Path;

/// Table and protocol names, number to name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    tables: BTreeMap<u32, String>,
    protocols: BTreeMap<u32, String>,
}

/// iproute2's built-in names (lib/rt_names.c), used before any file is read.
const TABLES: [(u32, &str); 4] = [
    (0, "unspec"),
    (253, "default"),
    (254, "main"),
    (255, "local"),
];
const PROTOCOLS: [(u32, &str); 22] = [
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

/// Which of the two maps a file feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tables,
    Protocols,
}

impl Default for Names {
    fn default() -> Names {
        Names {
            tables: TABLES.iter().map(|(n, s)| (*n, s.to_string())).collect(),
            protocols: PROTOCOLS.iter().map(|(n, s)| (*n, s.to_string())).collect(),
        }
    }
}

impl Names {
    /// Adds the `NUMBER NAME` lines of one file (`#` comments; decimal or `0x` hex numbers);
    /// a later name for a number wins, as in iproute2.
    pub fn parse(&mut self, kind: Kind, text: &str) {
        let max = match kind {
            Kind::Tables => u64::from(u32::MAX),
            Kind::Protocols => 255,
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let (Some(number), Some(name), None) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let parsed = match number.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => number.parse::<u64>(),
            };
            let Ok(n) = parsed else { continue };
            if n > max || !name.chars().all(|c| c.is_ascii_graphic()) {
                continue;
            }
            let map = match kind {
                Kind::Tables => &mut self.tables,
                Kind::Protocols => &mut self.protocols,
            };
            // n <= max <= u32::MAX.
            map.insert(n as u32, name.to_string());
        }
    }

    /// The names on the host whose root is `root` (`/` but in tests).
    pub fn load(root: &Path) -> Names {
        let mut names = Names::default();
        for (kind, base) in [(Kind::Tables, "rt_tables"), (Kind::Protocols, "rt_protos")] {
            for dir in ["usr/share/iproute2", "etc/iproute2"] {
                let dir = root.join(dir);
                if let Ok(text) = std::fs::read_to_string(dir.join(base)) {
                    names.parse(kind, &text);
                }
                let Ok(entries) = std::fs::read_dir(dir.join(format!("{base}.d"))) else {
                    continue;
                };
                let mut files: Vec<_> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                    .collect();
                files.sort();
                for file in files {
                    if let Ok(text) = std::fs::read_to_string(&file) {
                        names.parse(kind, &text);
                    }
                }
            }
        }
        names
    }

    /// `main`, a name from rt_tables(.d), or the number.
    pub fn table(&self, table: u32) -> String {
        self.tables
            .get(&table)
            .cloned()
            .unwrap_or_else(|| table.to_string())
    }

    /// `kernel`, a name from rt_protos(.d) such as `symroute`, or the number.
    pub fn protocol(&self, protocol: u8) -> String {
        self.protocols
            .get(&u32::from(protocol))
            .cloned()
            .unwrap_or_else(|| protocol.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_names_and_numbers_otherwise() {
        let names = Names::default();
        assert_eq!(names.table(254), "main");
        assert_eq!(names.table(1003), "1003");
        assert_eq!(names.protocol(2), "kernel");
        assert_eq!(names.protocol(83), "83");
    }

    #[test]
    fn files_add_and_override_names_and_bad_lines_are_skipped() {
        let mut names = Names::default();
        names.parse(
            Kind::Protocols,
            "# comment\n83 symroute\n0x54 hexproto # trailing\n300 toolarge\nx bad\n85\n86 a b\n",
        );
        names.parse(
            Kind::Tables,
            "1003\tsymroute-eth1\n4294967295 top\n254 primary\n",
        );
        assert_eq!(names.protocol(83), "symroute");
        assert_eq!(names.protocol(84), "hexproto");
        assert_eq!(names.protocol(85), "85");
        assert_eq!(names.protocol(86), "86");
        assert_eq!(names.table(1003), "symroute-eth1");
        assert_eq!(names.table(u32::MAX), "top");
        assert_eq!(names.table(254), "primary");
    }

    #[test]
    fn load_reads_the_d_folders_of_a_root() {
        let dir = std::env::temp_dir().join(format!("symroute-names-{}", std::process::id()));
        let etc = dir.join("etc/iproute2");
        std::fs::create_dir_all(etc.join("rt_protos.d")).unwrap();
        std::fs::create_dir_all(etc.join("rt_tables.d")).unwrap();
        std::fs::write(etc.join("rt_protos.d/symroute.conf"), "83 symroute\n").unwrap();
        std::fs::write(etc.join("rt_protos.d/ignored.txt"), "84 nope\n").unwrap();
        std::fs::write(
            etc.join("rt_tables.d/symroute.conf"),
            "1003 symroute-eth1\n",
        )
        .unwrap();
        let names = Names::load(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(names.protocol(83), "symroute");
        assert_eq!(names.protocol(84), "84");
        assert_eq!(names.table(1003), "symroute-eth1");
        assert_eq!(names.table(255), "local");
    }
}
