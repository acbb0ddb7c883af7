//! The crate's one error type.

use alloc::string::String;

/// Why a text or a BOLT 7 descriptor could not be read (or a host name
/// written) as an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The text (or the descriptor bytes) is empty.
    #[error("empty address")]
    Empty,
    /// The port is not a number from 1 to 65535.
    #[error("bad port {0:?}")]
    BadPort(String),
    /// An IPv6 address in brackets is malformed.
    #[error("bad IPv6 address {0:?}")]
    BadIpv6(String),
    /// The host is neither an IP address nor a valid DNS name.
    #[error("bad host name {0:?}")]
    BadHost(String),
    /// A `pubkey@address` has no `@`.
    #[error("expected <pubkey>@<host>[:<port>]")]
    MissingAt,
    /// The public key is not 33 bytes of hex encoding a valid point.
    #[error("bad public key {0:?}")]
    BadPubkey(String),
    /// A Tor v2 onion address (16 characters, BOLT 7 type 3): obsolete.
    #[error("tor v2 onion addresses are obsolete; use a v3 (56 characters) address")]
    OnionV2,
    /// A `.onion` name that is not 56 base32 characters.
    #[error("bad onion address {0:?}: expected 56 base32 characters then .onion")]
    BadOnion(String),
    /// An onion address whose checksum does not match its key (a typo).
    #[error("onion address checksum mismatch: expected {expected:02x?}, found {found:02x?}")]
    OnionChecksum {
        /// The checksum computed from the key.
        expected: [u8; 2],
        /// The checksum in the address.
        found: [u8; 2],
    },
    /// An onion address whose version byte is not 3.
    #[error("onion address version {0}, expected 3")]
    OnionVersion(u8),
    /// A BOLT 7 descriptor cut short.
    #[error("address descriptor type {descriptor} needs {needed} bytes, got {got}")]
    Truncated {
        /// The descriptor type.
        descriptor: u8,
        /// Bytes the descriptor needs, type byte included.
        needed: usize,
        /// Bytes there were.
        got: usize,
    },
    /// A BOLT 7 descriptor of a type this code does not know.
    #[error("unknown address descriptor type {0}")]
    UnknownType(u8),
    /// An address list with a second DNS host name (BOLT 7: a node "MUST
    /// NOT announce more than one `type 5` DNS hostname").
    #[error("more than one dns host name in an address list")]
    MoreThanOneHost,
}
