//! Reading and writing `table inet symroute` (`iif_rules`): its text is planned in
//! [`crate::plan::nft`].
//!
//! - [`read_installed`] asks the kernel for the table's comment directly over nfnetlink: no
//!   process is started, so a converged run stays as fast as one without `iif_rules`.
//! - [`apply`] replaces or deletes the table in one atomic transaction with
//!   `/usr/sbin/nft -f -`.
//!
//! Nothing but `table inet symroute` is ever read or written.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use super::timed::{self, TimedError};

use super::socket;
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
            let (_, sender) = socket.recv_from(&mut buf, 0).map_err(read_error)?;
            // A process can send to our port too: only the kernel answers.
            if !socket::from_kernel(&sender) {
                continue;
            }
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
