//! Reading the host's NAT rules for the doctor's `nat` check
//! ([`crate::views::doctor`]): `nft list ruleset` (which shows iptables-nft's rules too) and
//! the list of legacy iptables tables.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::kernel::nftables::NFT;
use crate::model::host::Nat;

/// The tables of an `nft list ruleset` listing that DNAT: native statements (`dnat to`,
/// `dnat ip to`, `redirect`) and iptables' compat targets (`xt target "DNAT"`).
pub fn parse_ruleset(text: &str) -> Vec<String> {
    let mut tables = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("table ") {
            current = Some(rest.trim_end_matches('{').trim().to_string());
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let dnat = words.windows(2).any(|w| {
            w[0] == "dnat" && (w[1] == "to" || w[1] == "ip" || w[1] == "ip6")
                || w[0] == "target" && (w[1] == "\"DNAT\"" || w[1] == "\"REDIRECT\"")
        }) || words.contains(&"redirect");
        if dnat {
            if let Some(table) = &current {
                if !tables.contains(table) {
                    tables.push(table.clone());
                }
            }
        }
    }
    tables
}

/// Reads the NAT configuration: `nft list ruleset` (CAP_NET_ADMIN) when nf_tables is loaded,
/// the legacy table list (root) when x_tables is. `None` when something that may hold NAT
/// rules could not be read.
pub fn read(root: &Path) -> Option<Nat> {
    let legacy_nat = match std::fs::read_to_string(root.join("proc/net/ip_tables_names")) {
        Ok(text) => text.lines().any(|l| l.trim() == "nat"),
        // ip_tables not loaded: no legacy rules at all.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => return None,
    };
    // Not loaded: no nftables rules, and asking would load it.
    let dnat_tables = if nf_tables_present(root) {
        let out = Command::new(NFT)
            .args(["list", "ruleset"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        parse_ruleset(&String::from_utf8_lossy(&out.stdout))
    } else {
        Vec::new()
    };
    Some(Nat {
        dnat_tables,
        legacy_nat,
    })
}

/// Whether nf_tables is in the kernel now: loaded as a module, or built in (no module
/// support at all, or listed in `modules.builtin`; a built-in has no `/sys/module` entry
/// when it has no parameters).
pub fn nf_tables_present(root: &Path) -> bool {
    if root.join("sys/module/nf_tables").exists() || !root.join("proc/modules").exists() {
        return true;
    }
    let release =
        std::fs::read_to_string(root.join("proc/sys/kernel/osrelease")).unwrap_or_default();
    std::fs::read_to_string(
        root.join("lib/modules")
            .join(release.trim())
            .join("modules.builtin"),
    )
    .is_ok_and(|t| t.lines().any(|l| l.ends_with("/nf_tables.ko")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnat_tables_are_found_in_native_and_compat_syntax() {
        let ruleset = "table ip nat {
	chain DOCKER {
		iifname != \"docker0\" tcp dport 8080 counter packets 0 bytes 0 dnat to 172.17.0.2:80
	}
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		oifname != \"docker0\" ip saddr 172.17.0.0/16 counter packets 0 bytes 0 masquerade
	}
}
table inet symroute {
	chain prerouting {
		ct state new iif \"eth0\" ct mark set ct mark & 0x02ffffff | 0x02000000
	}
}
table ip filter {
	chain FORWARD {
		xt target \"DNAT\"
	}
}
table ip6 masq {
	chain post {
		masquerade
	}
}
";
        assert_eq!(parse_ruleset(ruleset), ["ip nat", "ip filter"]);
        assert!(
            parse_ruleset("table inet x {\n chain c {\n  tcp dport 1 redirect to :2\n }\n}\n")
                .contains(&"inet x".to_string())
        );
        assert!(parse_ruleset("table ip t {\n chain c { masquerade }\n}\n").is_empty());
    }
}
