//! `pubkey@address`: a node and where to reach it.

use alloc::borrow::ToOwned;
use core::fmt;
use core::str::FromStr;

use secp256k1::PublicKey;

use crate::{AddressError, NetAddress};

/// A node and where to reach it: `<pubkey>@<address>`.
///
/// ```
/// use lnaddr::NodeAddr;
///
/// let n: NodeAddr =
///     "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7@127.0.0.1:9735".parse()?;
/// assert_eq!(n.addr.port(), 9735);
/// assert_eq!(n.to_string().parse::<NodeAddr>()?, n);
/// # Ok::<(), lnaddr::AddressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    /// The node's public key.
    pub pubkey: PublicKey,
    /// Where it listens.
    pub addr: NetAddress,
}

impl NodeAddr {
    /// A node at an address.
    pub fn new(pubkey: PublicKey, addr: impl Into<NetAddress>) -> Self {
        Self {
            pubkey,
            addr: addr.into(),
        }
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.pubkey, self.addr)
    }
}

impl FromStr for NodeAddr {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        let (key, addr) = s.split_once('@').ok_or(AddressError::MissingAt)?;
        let pubkey = parse_pubkey(key)?;
        Ok(Self {
            pubkey,
            addr: addr.parse()?,
        })
    }
}

/// Reads a public key from 66 hex characters.
pub(crate) fn parse_pubkey(key: &str) -> Result<PublicKey, AddressError> {
    if key.len() != 66 {
        return Err(AddressError::BadPubkey(key.to_owned()));
    }
    PublicKey::from_str(key).map_err(|_| AddressError::BadPubkey(key.to_owned()))
}
