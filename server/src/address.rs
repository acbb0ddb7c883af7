use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;

/// The port Lightning nodes listen on unless they say otherwise (BOLT 1).
pub const DEFAULT_PORT: u16 = 9735;

/// Where a node can be reached: an IP socket address or a DNS host name with
/// a port.
///
/// Text forms: `1.2.3.4:9735`, `[::1]:9735`, `host.example:9735`; the port
/// may be left out and defaults to [`DEFAULT_PORT`].
///
/// ```
/// use server::NetAddress;
///
/// let a: NetAddress = "127.0.0.1".parse()?;
/// assert_eq!(a.to_string(), "127.0.0.1:9735");
/// let b: NetAddress = "[::1]:10011".parse()?;
/// assert_eq!(b.to_string(), "[::1]:10011");
/// let c: NetAddress = "node.example:9736".parse()?;
/// assert_eq!(c.port(), 9736);
/// # Ok::<(), server::AddressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum NetAddress {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A DNS host name and port, resolved when dialed.
    Host {
        /// The host name, without a trailing dot.
        name: String,
        /// The port.
        port: u16,
    },
}

impl NetAddress {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Ip(a) => a.port(),
            Self::Host { port, .. } => *port,
        }
    }
}

impl From<SocketAddr> for NetAddress {
    fn from(a: SocketAddr) -> Self {
        Self::Ip(a)
    }
}

impl fmt::Display for NetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(a) => a.fmt(f),
            Self::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

/// Why a text could not be read as an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The text is empty.
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
}

impl FromStr for NetAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or_else(|| AddressError::BadIpv6(s.to_owned()))?;
            let ip: std::net::Ipv6Addr = ip
                .parse()
                .map_err(|_| AddressError::BadIpv6(s.to_owned()))?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => parse_port(
                    p.strip_prefix(':')
                        .ok_or_else(|| AddressError::BadIpv6(s.to_owned()))?,
                )?,
            };
            return Ok(Self::Ip(SocketAddr::new(IpAddr::V6(ip), port)));
        }
        // A bare IPv6 address has several colons and no port.
        if let Ok(ip) = s.parse::<std::net::Ipv6Addr>() {
            return Ok(Self::Ip(SocketAddr::new(IpAddr::V6(ip), DEFAULT_PORT)));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p)?),
            None => (s, DEFAULT_PORT),
        };
        if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
            return Ok(Self::Ip(SocketAddr::new(IpAddr::V4(ip), port)));
        }
        let name = host.strip_suffix('.').unwrap_or(host);
        if !valid_host_name(name) {
            return Err(AddressError::BadHost(host.to_owned()));
        }
        Ok(Self::Host {
            name: name.to_ascii_lowercase(),
            port,
        })
    }
}

fn parse_port(p: &str) -> Result<u16, AddressError> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(AddressError::BadPort(p.to_owned())),
        Ok(port) => Ok(port),
    }
}

/// A DNS name as BOLT 7 allows it: at most 255 bytes of ASCII letters,
/// digits, hyphens and dots, in labels of 1 to 63 bytes.
fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // All-numeric names are mistyped IPv4 addresses, not host names.
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A node and where to reach it: `<pubkey>@<address>`.
///
/// ```
/// use server::NodeAddr;
///
/// let n: NodeAddr =
///     "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7@127.0.0.1:9735".parse()?;
/// assert_eq!(n.addr.port(), 9735);
/// assert_eq!(n.to_string().parse::<NodeAddr>()?, n);
/// # Ok::<(), server::AddressError>(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7";

    #[test]
    fn text_forms_round_trip() {
        for s in [
            "1.2.3.4:9735",
            "[::1]:9735",
            "[2001:db8::1]:1",
            "node.example:65535",
        ] {
            let a: NetAddress = s.parse().expect(s);
            assert_eq!(a.to_string(), s);
        }
    }

    #[test]
    fn port_defaults_to_9735() {
        assert_eq!("1.2.3.4".parse::<NetAddress>().map(|a| a.port()), Ok(9735));
        assert_eq!("::1".parse::<NetAddress>().map(|a| a.port()), Ok(9735));
        assert_eq!("[::1]".parse::<NetAddress>().map(|a| a.port()), Ok(9735));
        assert_eq!(
            "host.example".parse::<NetAddress>().map(|a| a.port()),
            Ok(9735)
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        assert_eq!("".parse::<NetAddress>(), Err(AddressError::Empty));
        assert_eq!(
            "1.2.3.4:0".parse::<NetAddress>(),
            Err(AddressError::BadPort("0".into()))
        );
        assert_eq!(
            "1.2.3.4:65536".parse::<NetAddress>(),
            Err(AddressError::BadPort("65536".into()))
        );
        assert_eq!(
            "1.2.3.4:".parse::<NetAddress>(),
            Err(AddressError::BadPort("".into()))
        );
        assert!(matches!(
            "[::1".parse::<NetAddress>(),
            Err(AddressError::BadIpv6(_))
        ));
        assert!(matches!(
            "[::1]x".parse::<NetAddress>(),
            Err(AddressError::BadIpv6(_))
        ));
        assert!(matches!(
            "bad host:1".parse::<NetAddress>(),
            Err(AddressError::BadHost(_))
        ));
        assert!(matches!(
            "-a.example".parse::<NetAddress>(),
            Err(AddressError::BadHost(_))
        ));
        assert!(matches!(
            "1.2.3.999".parse::<NetAddress>(),
            Err(AddressError::BadHost(_))
        ));
    }

    #[test]
    fn node_addr_errors_are_typed() {
        assert_eq!(
            "127.0.0.1:9735".parse::<NodeAddr>(),
            Err(AddressError::MissingAt)
        );
        assert!(matches!(
            "02ab@127.0.0.1".parse::<NodeAddr>(),
            Err(AddressError::BadPubkey(_))
        ));
        let not_on_curve = format!("02{}", "00".repeat(32));
        assert!(matches!(
            format!("{not_on_curve}@127.0.0.1").parse::<NodeAddr>(),
            Err(AddressError::BadPubkey(_))
        ));
        assert_eq!(
            format!("{KEY}@").parse::<NodeAddr>(),
            Err(AddressError::Empty)
        );
        let ok: NodeAddr = format!("{KEY}@localhost").parse().expect("valid");
        assert_eq!(
            ok.addr,
            NetAddress::Host {
                name: "localhost".into(),
                port: 9735
            }
        );
    }
}
