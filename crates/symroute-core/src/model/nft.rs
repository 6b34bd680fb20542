//! `table inet symroute` (`iif_rules`): what is wanted of it, what the kernel holds, and the
//! change between them.

/// The nftables family and name of symroute's table.
pub const TABLE: &str = "inet symroute";

/// The nft binary, by absolute path: dispatchers run hooks without `PATH`.
pub const NFT: &str = "/usr/sbin/nft";

/// What the kernel holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftInstalled {
    Absent,
    /// The table exists, with this comment (`None`: none, so not written by symroute as it
    /// is wanted now).
    Present {
        comment: Option<String>,
    },
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
