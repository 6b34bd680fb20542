//! The one nftables table symroute owns, `table inet symroute`, which `iif_rules` needs: it
//! marks every connection with the interface it came in through (a conntrack mark) and puts
//! that mark on the connection's answers, which symroute's `fwmark` rules then route by that
//! interface's table — wherever the answer comes from (a LAN, a container, the host itself).
//!
//! - [`table`] is the table's whole text, a pure function of the marked interfaces
//!   ([`marked_links`]) and the settings. Its `comment` carries a hash of the rest, so that
//!   what is installed is recognised without reading or comparing rules.
//! - [`read_installed`] asks the kernel for that comment directly over nfnetlink: no process
//!   is started, so a converged run stays as fast as one without `iif_rules`.
//! - [`apply`] replaces or deletes the table in one atomic transaction with
//!   `/usr/sbin/nft -f -`, and only when [`change`] says it differs.
//!
//! Nothing but `table inet symroute` is ever read or written.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use crate::model::Link;
use crate::plan::Snapshot;
use crate::settings::Settings;

/// The nftables family and name of symroute's table.
pub const TABLE: &str = "inet symroute";
/// The nft binary, by absolute path: dispatchers run hooks without `PATH`.
pub const NFT: &str = "/usr/sbin/nft";

/// An interface whose connections are marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub ifindex: u32,
    pub name: String,
    pub mark: u32,
}

/// The wanted `table inet symroute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftTable {
    /// `symroute iif_rules HASH`: identifies this exact content.
    pub comment: String,
    /// The table as `nft -f` reads it.
    pub text: String,
    /// The marked interfaces, by name.
    pub interfaces: Vec<String>,
}

/// What the kernel holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    Absent,
    /// The table exists, with this comment (`None`: none, so not written by symroute as it
    /// is wanted now).
    Present {
        comment: Option<String>,
    },
}

/// A change to make to the kernel's nftables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftChange {
    /// Create the table, or replace what is there, with this content.
    Replace(NftTable),
    Delete,
}

impl NftChange {
    /// `nft: replace table inet symroute (2 interfaces)`, `nft: delete table inet symroute`.
    pub fn line(&self) -> String {
        match self {
            NftChange::Replace(t) => {
                let n = t.interfaces.len();
                let s = if n == 1 { "" } else { "s" };
                format!("nft: replace table {TABLE} ({n} interface{s})")
            }
            NftChange::Delete => format!("nft: delete table {TABLE}"),
        }
    }

    /// The `nft -f` script. Declaring the table first makes the delete succeed whether or not
    /// it exists; the whole script is one transaction, so packets never see a half table.
    pub fn script(&self) -> String {
        let mut script = format!("table {TABLE}\ndelete table {TABLE}\n");
        if let NftChange::Replace(t) = self {
            script.push_str(&t.text);
        }
        script
    }
}

/// A failure to read or change `table inet symroute`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NftError {
    #[error(
        "{what} table {TABLE}: cannot run {NFT}: {reason} (iif_rules needs nftables: install it, \
         or turn iif_rules off)"
    )]
    Missing { what: &'static str, reason: String },
    #[error("{what} table {TABLE}: {NFT} -f - failed ({status}): {message}")]
    Failed {
        what: &'static str,
        status: String,
        message: String,
    },
    #[error("reading table {TABLE} from the kernel: {0}")]
    Read(String),
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
            .rules
            .iter()
            .any(|r| r.protocol == settings.protocol && r.table == table)
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

/// Runs `nft -f -` with `change`'s script.
pub fn apply(change: &NftChange) -> Result<(), NftError> {
    let what = match change {
        NftChange::Replace(_) => "replacing",
        NftChange::Delete => "deleting",
    };
    let mut child = Command::new(NFT)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NftError::Missing {
            what,
            reason: io_text(&e),
        })?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(change.script().as_bytes()));
    let out = child.wait_with_output().map_err(|e| NftError::Failed {
        what,
        status: "not waited for".into(),
        message: io_text(&e),
    })?;
    if out.status.success() {
        if let Some(Err(e)) = written {
            return Err(NftError::Failed {
                what,
                status: "script not written".into(),
                message: io_text(&e),
            });
        }
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // nft quotes the offending line and points at it over several lines: the first says why.
    let message = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error message")
        .to_string();
    Err(NftError::Failed {
        what,
        status: out.status.to_string(),
        message,
    })
}

fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

// nfnetlink: a `NFT_MSG_GETTABLE` request and its answer, by hand. The kernel answers a get
// synchronously, within the `sendto`.
const NETLINK_NETFILTER: isize = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFPROTO_INET: u8 = 1;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_USERDATA: u16 = 6;
/// libnftnl's `NFTNL_UDATA_TABLE_COMMENT`: the TLV that holds a table's comment.
const UDATA_TABLE_COMMENT: u8 = 0;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
const REQUEST_SEQ: u32 = 0x5359_4d52;

/// The `NFT_MSG_GETTABLE` request for `table inet symroute`.
fn get_table_request(seq: u32) -> Vec<u8> {
    let name = b"symroute\0";
    let attr_len = 4 + name.len();
    let padded = (attr_len + 3) & !3;
    let len = 16 + 4 + padded;
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version (NFNETLINK_V0), res_id (big endian).
    msg.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]);
    msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    msg.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    msg.extend_from_slice(name);
    msg.resize(len, 0);
    msg
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// The netlink attributes in `buf`, as `(type, payload)`.
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(kind)) = (u16_at(buf, 0), u16_at(buf, 2)) {
        let len = usize::from(len);
        let Some(payload) = buf.get(4..len) else {
            break;
        };
        out.push((kind & NLA_TYPE_MASK, payload));
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
    }
    out
}

/// The comment in a table's user data (libnftnl's TLVs: type, length, value).
fn comment_of(mut udata: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = udata {
        let value = rest.get(..usize::from(*len))?;
        if *kind == UDATA_TABLE_COMMENT {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        udata = &rest[usize::from(*len)..];
    }
    None
}

/// Reads one datagram of the answer to request `seq`: `Some(Ok)` for the table or its
/// absence, `Some(Err(errno))` for another error, `None` when the datagram does not answer.
fn parse_answer(mut buf: &[u8], seq: u32) -> Option<Result<Installed, i32>> {
    while let (Some(len), Some(kind), Some(msg_seq)) =
        (u32_at(buf, 0), u16_at(buf, 4), u32_at(buf, 8))
    {
        let len = usize::try_from(len).ok()?;
        let msg = buf.get(..len)?;
        if len < 16 {
            return None;
        }
        if msg_seq == seq {
            if kind == NLMSG_ERROR {
                // An acknowledgement (0) is not the answer; none is asked for anyway.
                return match (u32_at(msg, 16)? as i32).wrapping_neg() {
                    0 => None,
                    libc::ENOENT => Some(Ok(Installed::Absent)),
                    errno => Some(Err(errno)),
                };
            }
            if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE {
                let comment = attributes(msg.get(20..)?)
                    .into_iter()
                    .find(|(t, _)| *t == NFTA_TABLE_USERDATA)
                    .and_then(|(_, udata)| comment_of(udata));
                return Some(Ok(Installed::Present { comment }));
            }
        }
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

/// Asks the kernel whether `table inet symroute` exists and for its comment. Needs
/// CAP_NET_ADMIN, like every nfnetlink request.
pub fn read_installed() -> Result<Installed, NftError> {
    let read_error = |e: std::io::Error| NftError::Read(io_text(&e));
    let socket = netlink_sys::Socket::new(NETLINK_NETFILTER).map_err(read_error)?;
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: setsockopt reads `timeout` (a live local of the size given) and nothing else.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(read_error(std::io::Error::last_os_error()));
    }
    let kernel = netlink_sys::SocketAddr::new(0, 0);
    // The first request after nf_tables was loaded on demand is answered EAGAIN.
    for attempt in 0..3u32 {
        let seq = REQUEST_SEQ.wrapping_add(attempt);
        socket
            .send_to(&get_table_request(seq), &kernel, 0)
            .map_err(read_error)?;
        let answer = loop {
            let mut buf = Vec::with_capacity(16 << 10);
            socket.recv(&mut buf, 0).map_err(read_error)?;
            if let Some(answer) = parse_answer(&buf, seq) {
                break answer;
            }
        };
        match answer {
            Ok(installed) => return Ok(installed),
            Err(libc::EAGAIN) => continue,
            Err(errno) => {
                return Err(read_error(std::io::Error::from_raw_os_error(errno)));
            }
        }
    }
    Err(read_error(std::io::Error::from_raw_os_error(libc::EAGAIN)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, Rule};

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

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            loopback: index == 1,
        }
    }

    fn rule(table: u32, protocol: u8) -> Rule {
        Rule {
            family: Family::V4,
            priority: 32000,
            src: Some(("10.2.0.2".parse().unwrap(), 32)),
            dst: None,
            iif: None,
            fwmark: None,
            table,
            protocol,
            other_selectors: false,
        }
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

    #[test]
    fn get_table_request_bytes() {
        let msg = get_table_request(7);
        assert_eq!(msg.len(), 36);
        assert_eq!(u32_at(&msg, 0), Some(36));
        assert_eq!(u16_at(&msg, 4), Some(0x0a01));
        assert_eq!(u16_at(&msg, 6), Some(NLM_F_REQUEST));
        assert_eq!(u32_at(&msg, 8), Some(7));
        assert_eq!(&msg[16..20], &[1, 0, 0, 0]);
        assert_eq!(attributes(&msg[20..]), [(1, &b"symroute\0"[..])]);
    }

    /// A netlink message of `kind` with sequence number `seq` and `payload`.
    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = 16 + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize((m.len() + 3) & !3, 0);
        m
    }

    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize((a.len() + 3) & !3, 0);
        a
    }

    #[test]
    fn answers_are_parsed() {
        let error = |errno: i32| {
            let mut p = (-errno).to_ne_bytes().to_vec();
            p.extend_from_slice(&get_table_request(9)[..16]);
            message(NLMSG_ERROR, 9, &p)
        };
        assert_eq!(
            parse_answer(&error(libc::ENOENT), 9),
            Some(Ok(Installed::Absent))
        );
        assert_eq!(parse_answer(&error(libc::EPERM), 9), Some(Err(libc::EPERM)));
        assert_eq!(parse_answer(&error(libc::EPERM), 8), None);

        let comment = b"symroute iif_rules 0123456789abcdef\0";
        let mut udata = vec![UDATA_TABLE_COMMENT, comment.len() as u8];
        udata.extend_from_slice(comment);
        let mut payload = vec![NFPROTO_INET, 0, 0, 0];
        payload.extend(attribute(NFTA_TABLE_NAME, b"symroute\0"));
        payload.extend(attribute(2, &0u32.to_be_bytes()));
        payload.extend(attribute(NFTA_TABLE_USERDATA, &udata));
        let table = message(0x0a00, 9, &payload);
        assert_eq!(
            parse_answer(&table, 9),
            Some(Ok(Installed::Present {
                comment: Some("symroute iif_rules 0123456789abcdef".into())
            }))
        );
        let mut bare = vec![NFPROTO_INET, 0, 0, 0];
        bare.extend(attribute(NFTA_TABLE_NAME, b"symroute\0"));
        assert_eq!(
            parse_answer(&message(0x0a00, 9, &bare), 9),
            Some(Ok(Installed::Present { comment: None }))
        );
        // Truncated or garbage input never panics.
        for cut in 0..table.len() {
            let _ = parse_answer(&table[..cut], 9);
        }
        assert_eq!(comment_of(&[0, 200, 1]), None);
    }
}
