//! Reading and writing `table inet symroute` (`iif_rules`): its text is planned in
//! [`crate::plan::nft`].
//!
//! - [`read_installed`] asks the kernel for the table's comment directly over nfnetlink: no
//!   process is started, so a converged run stays as fast as one without `iif_rules`.
//! - [`apply`] replaces or deletes the table in one atomic transaction with
//!   `/usr/sbin/nft -f -`.
//!
//! Nothing but `table inet symroute` is ever read or written.

use std::process::Command;
use std::time::Duration;

use super::timed::{self, TimedError};

use super::rtnl::{attrs, Answer};
use super::socket::{Netfilter, NetlinkError, Socket};
pub use crate::model::nft::NFT;
use crate::model::nft::TABLE;
use crate::model::{NftChange, NftInstalled as Installed};

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

/// How long `nft` may take: it answers in milliseconds; one that hangs is killed so that the
/// run (a hook in a dispatcher's queue, the daemon's loop) goes on.
pub const NFT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `nft -f -` with `change`'s script, killed after [`NFT_TIMEOUT`].
pub fn apply(change: &NftChange) -> Result<(), NftError> {
    let what = match change {
        NftChange::Replace(_) => "replacing",
        NftChange::Delete => "deleting",
    };
    let mut command = Command::new(NFT);
    command.args(["-f", "-"]);
    let out = match timed::run(command, change.script().into_bytes(), NFT_TIMEOUT) {
        Ok(out) => out,
        Err(TimedError::Spawn(e)) => {
            return Err(NftError::Missing {
                what,
                reason: io_text(&e),
            })
        }
        Err(e @ TimedError::Timeout(_)) => {
            return Err(NftError::Failed {
                what,
                status: "timed out".into(),
                message: e.to_string(),
            })
        }
        Err(TimedError::Wait(e)) => {
            return Err(NftError::Failed {
                what,
                status: "not waited for".into(),
                message: io_text(&e),
            })
        }
    };
    if out.status.success() {
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
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFPROTO_INET: u8 = 1;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_USERDATA: u16 = 6;
/// libnftnl's `NFTNL_UDATA_TABLE_COMMENT`: the TLV that holds a table's comment.
const UDATA_TABLE_COMMENT: u8 = 0;
const NLM_F_REQUEST: u16 = 1;

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

/// The table an answer to the `NFT_MSG_GETTABLE` request holds, with its comment; `None`
/// for a message of another kind.
fn table_of(answer: &Answer<'_>) -> Option<Installed> {
    if answer.kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE {
        return None;
    }
    let comment = attrs(answer.payload.get(4..)?)
        .find(|(t, _)| *t == NFTA_TABLE_USERDATA)
        .and_then(|(_, udata)| comment_of(udata));
    Some(Installed::Present { comment })
}

/// What the kernel's answer says: the table, its absence (`ENOENT`), or a failure
/// (`EAGAIN` is asked again by the caller).
fn installed(answer: Result<Option<Installed>, NetlinkError>) -> Result<Installed, NetlinkError> {
    match answer {
        Ok(Some(installed)) => Ok(installed),
        Ok(None) => Err(NetlinkError::Closed),
        Err(NetlinkError::Errno(libc::ENOENT)) => Ok(Installed::Absent),
        Err(e) => Err(e),
    }
}

/// Asks the kernel whether `table inet symroute` exists and for its comment, over the one
/// netlink socket ([`Socket`] of [`Netfilter`]). Needs CAP_NET_ADMIN, like every nfnetlink
/// request.
pub fn read_installed() -> Result<Installed, NftError> {
    let read_error = |e: NetlinkError| NftError::Read(e.to_string());
    let mut socket = Socket::<Netfilter>::open().map_err(read_error)?;
    // The first request after nf_tables was loaded on demand is answered EAGAIN.
    for _ in 0..3 {
        let mut request = get_table_request(0);
        match installed(socket.get(&mut request, table_of)) {
            Ok(installed) => return Ok(installed),
            Err(NetlinkError::Errno(libc::EAGAIN)) => continue,
            Err(e) => return Err(read_error(e)),
        }
    }
    Err(read_error(NetlinkError::Errno(libc::EAGAIN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_table_request_bytes() {
        let msg = get_table_request(7);
        assert_eq!(msg.len(), 36);
        let answers: Vec<_> = super::super::rtnl::messages(&msg).collect();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].kind, 0x0a01);
        assert_eq!(answers[0].flags, NLM_F_REQUEST);
        assert_eq!(answers[0].seq, 7);
        assert_eq!(&msg[16..20], &[1, 0, 0, 0]);
        let found: Vec<_> = attrs(&msg[20..]).collect();
        assert_eq!(found, [(1, &b"symroute\0"[..])]);
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

    /// [`table_of`] of the one message in `datagram`.
    fn parse(datagram: &[u8]) -> Option<Installed> {
        let answers: Vec<_> = super::super::rtnl::messages(datagram).collect();
        answers.first().and_then(table_of)
    }

    #[test]
    fn answers_are_parsed() {
        assert_eq!(
            installed(Err(NetlinkError::Errno(libc::ENOENT))),
            Ok(Installed::Absent)
        );
        assert_eq!(
            installed(Err(NetlinkError::Errno(libc::EPERM))),
            Err(NetlinkError::Errno(libc::EPERM))
        );
        assert_eq!(installed(Ok(None)), Err(NetlinkError::Closed));

        let comment = b"symroute iif_rules 0123456789abcdef\0";
        let mut udata = vec![UDATA_TABLE_COMMENT, comment.len() as u8];
        udata.extend_from_slice(comment);
        let mut payload = vec![NFPROTO_INET, 0, 0, 0];
        payload.extend(attribute(NFTA_TABLE_NAME, b"symroute\0"));
        payload.extend(attribute(2, &0u32.to_be_bytes()));
        payload.extend(attribute(NFTA_TABLE_USERDATA, &udata));
        let table = message(0x0a00, 9, &payload);
        assert_eq!(
            parse(&table),
            Some(Installed::Present {
                comment: Some("symroute iif_rules 0123456789abcdef".into())
            })
        );
        let mut bare = vec![NFPROTO_INET, 0, 0, 0];
        bare.extend(attribute(NFTA_TABLE_NAME, b"symroute\0"));
        assert_eq!(
            parse(&message(0x0a00, 9, &bare)),
            Some(Installed::Present { comment: None })
        );
        // Truncated or garbage input never panics.
        for cut in 0..table.len() {
            let _ = parse(&table[..cut]);
        }
        assert_eq!(comment_of(&[0, 200, 1]), None);
    }
}
