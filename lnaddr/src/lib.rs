//! Lightning node addresses, as BOLT 7 defines them.
//!
//! What it does:
//! - [`NetAddress`]: where a node listens. IPv4 and IPv6 ([`NetAddress::Ip`]),
//!   Tor v3 onion services ([`NetAddress::Onion`], with [`OnionV3`]'s
//!   checksum and version checked) and DNS host names ([`NetAddress::Host`]).
//!   Tor v2 is obsolete and refused.
//! - Text forms (`1.2.3.4:9735`, `[::1]:9735`, `<56 chars>.onion:9735`,
//!   `node.example`; the port defaults to [`DEFAULT_PORT`]) through
//!   `FromStr` and `Display`, and [`NodeAddr`], `<pubkey>@<address>`.
//! - Wire forms: one BOLT 7 address descriptor ([`NetAddress::write_to`],
//!   [`NetAddress::read_from`]) and the `addresses` field of a
//!   `node_announcement` ([`NetAddress::read_list`],
//!   [`NetAddress::write_list`]), with BOLT 7's rules: reading stops at an
//!   unknown descriptor type, skips Tor v2, and a list with more than one DNS
//!   host name is refused.
//!
//! What it does not do: any I/O. It resolves no name, opens no socket and
//! reads no clock; it does not depend on tokio. It is `no_std` (it needs
//! `alloc`). Dialing a [`NetAddress`] is `brontide`'s job.
//!
//! # Example
//!
//! ```
//! use lnaddr::{AddressKind, NetAddress, NodeAddr};
//!
//! let node: NodeAddr =
//!     "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7@node.example".parse()?;
//! assert_eq!(node.addr.kind(), AddressKind::Dns);
//! assert_eq!(node.addr.port(), lnaddr::DEFAULT_PORT);
//!
//! // An announcement's address list, and back.
//! let addrs: Vec<NetAddress> = vec!["1.2.3.4:9735".parse()?, node.addr.clone()];
//! let mut wire = Vec::new();
//! NetAddress::write_list(&addrs, &mut wire)?;
//! assert_eq!(NetAddress::read_list(&wire)?, addrs);
//!
//! // A typo in an onion address is caught by its checksum.
//! let typo = "3gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";
//! assert!(matches!(
//!     typo.parse::<NetAddress>(),
//!     Err(lnaddr::AddressError::OnionChecksum { .. })
//! ));
//! # Ok::<(), lnaddr::AddressError>(())
//! ```

#![no_std]

extern crate alloc;

mod address;
mod error;
mod node;
mod onion;

pub use address::{AddressKind, NetAddress, DEFAULT_PORT, MAX_DESCRIPTOR_LEN};
pub use error::AddressError;
pub use node::NodeAddr;
pub use onion::OnionV3;
pub use secp256k1::PublicKey;
