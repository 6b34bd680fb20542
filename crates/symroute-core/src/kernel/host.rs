//! Reading [`HostFacts`] from files below a root directory (`/` in production, a temporary
//! tree in tests): /proc/sys, /etc, systemd's folders. Needs no privileges.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::model::host::{Conf, HealthFacts, HostFacts, Installed, Networkd};
use crate::model::nft::NFT;
use crate::model::Link;

pub const NM_DISPATCHER_DIRS: [&str; 2] = [
    "etc/NetworkManager/dispatcher.d",
    "usr/lib/NetworkManager/dispatcher.d",
];
pub const NETWORKD_DISPATCHER_DIRS: [&str; 2] =
    ["etc/networkd-dispatcher", "usr/lib/networkd-dispatcher"];
pub const NETWORKD_DISPATCHER_STATES: [&str; 5] =
    ["routable", "configured", "degraded", "off", "no-carrier"];
pub const UNIT_DIRS: [&str; 5] = [
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];
/// Where networkd.conf and networkd.conf.d live, most important first.
pub const NETWORKD_CONF_DIRS: [&str; 4] = [
    "etc/systemd",
    "run/systemd",
    "usr/local/lib/systemd",
    "usr/lib/systemd",
];
const NETWORKD_BINARIES: [&str; 2] = [
    "lib/systemd/systemd-networkd",
    "usr/lib/systemd/systemd-networkd",
];
/// Our own names file (`table_names = true`), not someone else's use of a table.
const OUR_TABLE_NAMES: &str = "symroute.conf";

impl HostFacts {
    /// Reads the facts below `root` for the interfaces in `links`. Anything unreadable is
    /// simply absent: doctor then skips or reports what it could not see.
    pub fn read(root: &Path, links: &[Link]) -> HostFacts {
        let mut conf = BTreeMap::new();
        let names = ["all", "default"]
            .into_iter()
            .map(str::to_string)
            .chain(links.iter().map(|l| l.name.clone()));
        for name in names {
            let dir = root.join("proc/sys/net/ipv4/conf").join(&name);
            let get = |key: &str| read_number(&dir.join(key));
            conf.insert(
                name.clone(),
                Conf {
                    rp_filter: get("rp_filter"),
                    arp_announce: get("arp_announce"),
                    arp_ignore: get("arp_ignore"),
                    arp_filter: get("arp_filter"),
                    forwarding: get("forwarding"),
                    ipv6_forwarding: read_number(
                        &root
                            .join("proc/sys/net/ipv6/conf")
                            .join(&name)
                            .join("forwarding"),
                    ),
                },
            );
        }

        let nm_dispatcher = NM_DISPATCHER_DIRS
            .iter()
            .filter_map(|d| installed(&root.join(d).join("50-symroute"), root))
            .collect();
        let networkd_dispatcher = NETWORKD_DISPATCHER_DIRS
            .iter()
            .flat_map(|d| {
                NETWORKD_DISPATCHER_STATES
                    .iter()
                    .map(move |s| format!("{d}/{s}.d/50-symroute"))
            })
            .filter_map(|p| installed(&root.join(p), root))
            .collect();
        let daemon_unit = UNIT_DIRS
            .iter()
            .map(|d| root.join(d).join("symrouted.service"))
            .filter(|p| p.exists())
            .collect();

        HostFacts {
            conf,
            networkd: read_networkd(root),
            nm_dispatcher,
            networkd_dispatcher,
            daemon_unit,
            table_names: read_table_names(root),
            nft_binary: root.join(NFT.trim_start_matches('/')).is_file(),
            nft_table: None,
            nat: None,
            replies: None,
            health: read_health_facts(root),
        }
    }
}

fn read_health_facts(root: &Path) -> HealthFacts {
    let range = std::fs::read_to_string(root.join("proc/sys/net/ipv4/ping_group_range"))
        .ok()
        .and_then(|t| {
            let mut w = t.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some((w.next()??, w.next()??))
        });
    // A symrouted of another network namespace (a container's, a test lab's) probes nothing
    // here. One whose namespace cannot be read is given the benefit of the doubt when we are
    // not root (root may read every process's but those of other user namespaces).
    let own_net = std::fs::read_link(root.join("proc/self/ns/net")).ok();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root_user = unsafe { libc::geteuid() } == 0;
    let ours = |pid: &Path| match (&own_net, std::fs::read_link(pid.join("ns/net"))) {
        (Some(own), Ok(theirs)) => *own == theirs,
        (None, Ok(_)) => true,
        (_, Err(e)) => !root_user && e.kind() == std::io::ErrorKind::PermissionDenied,
    };
    let daemon_running = std::fs::read_dir(root.join("proc"))
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    && std::fs::read_to_string(e.path().join("comm"))
                        .is_ok_and(|c| c.trim_end() == "symrouted")
                    && ours(&e.path())
            })
        })
        .unwrap_or(false);
    HealthFacts {
        daemon_running,
        ping_group_range: range,
        multipath_hash_policy: (
            read_number(&root.join("proc/sys/net/ipv4/fib_multipath_hash_policy")),
            read_number(&root.join("proc/sys/net/ipv6/fib_multipath_hash_policy")),
        ),
    }
}

fn read_number(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

fn installed(path: &Path, root: &Path) -> Option<Installed> {
    let meta = std::fs::metadata(path).ok()?;
    let calls = std::fs::read_to_string(path).ok().and_then(|text| {
        let hook = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("HOOK="))?
            .trim()
            .trim_matches(['"', '\''])
            .to_string();
        if !hook.starts_with('/') {
            return None;
        }
        let on_root = root.join(hook.trim_start_matches('/'));
        let executable = std::fs::metadata(&on_root)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        Some((PathBuf::from(hook), executable))
    });
    Some(Installed {
        path: path.to_path_buf(),
        mode: meta.permissions().mode() & 0o7777,
        uid: meta.uid(),
        calls,
    })
}

fn read_networkd(root: &Path) -> Networkd {
    let binary = NETWORKD_BINARIES
        .iter()
        .map(|b| root.join(b))
        .find(|p| p.is_file());
    let mut files = Vec::new();
    if let Some(main) = NETWORKD_CONF_DIRS
        .iter()
        .map(|d| root.join(d).join("networkd.conf"))
        .find(|p| p.exists())
    {
        files.push(main);
    }
    // Drop-ins: a name in a more important directory masks the same name in later ones;
    // all of them apply in the order of their names.
    let mut dropins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in NETWORKD_CONF_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("networkd.conf.d")) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                dropins.entry(name).or_insert_with(|| entry.path());
            }
        }
    }
    files.extend(dropins.into_values());
    let files = files
        .into_iter()
        .map(|p| {
            // A drop-in linked to /dev/null masks; reading it gives "" which sets nothing.
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, text)
        })
        .collect();

    let running = std::fs::read_dir(root.join("proc")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
                && std::fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "systemd-network")
        })
    });
    let enabled = std::fs::read_dir(root.join("etc/systemd/system")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".wants")
                && e.path().join("systemd-networkd.service").exists()
        })
    });
    Networkd {
        binary,
        active: running || enabled,
        files,
    }
}

fn read_table_names(root: &Path) -> Vec<(u32, String, PathBuf)> {
    let mut files = Vec::new();
    for dir in ["etc/iproute2", "usr/share/iproute2", "usr/lib/iproute2"] {
        files.push(root.join(dir).join("rt_tables"));
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join("rt_tables.d")) {
            let mut more: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "conf")
                        && p.file_name().is_some_and(|n| n != OUR_TABLE_NAMES)
                })
                .collect();
            more.sort();
            files.extend(more);
        }
    }
    let mut names = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (table, name) in parse_table_names(&text) {
            names.push((table, name, file.clone()));
        }
    }
    names
}

/// `ID NAME` lines of an iproute2 `rt_tables` file (decimal or `0x` hex ids).
pub fn parse_table_names(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let id = words.next()?;
            let name = words.next()?;
            let id = match id.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => id.parse().ok()?,
            };
            Some((id, name.to_string()))
        })
        .collect()
}
