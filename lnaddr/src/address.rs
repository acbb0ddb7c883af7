//! BOLT 7 address descriptors: [`NetAddress`], its text form and its wire
//! form.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use core::str::FromStr;

use crate::{AddressError, OnionV3};

/// The port Lightning nodes listen on unless they say otherwise (BOLT 1).
pub const DEFAULT_PORT: u16 = 9735;

/// The longest BOLT 7 address descriptor: type 5 with a 255-byte name.
pub const MAX_DESCRIPTOR_LEN: usize = 1 + 1 + 255 + 2;

/// Where a node can be reached: BOLT 7's address descriptors. IPv4 (type 1)
/// and IPv6 (type 2) are [`NetAddress::Ip`], Tor v3 (type 4) is
/// [`NetAddress::Onion`], a DNS host name (type 5) is [`NetAddress::Host`].
/// Tor v2 (type 3) is obsolete and refused.
///
/// Text forms: `1.2.3.4:9735`, `[::1]:9735`, `<56 characters>.onion:9735`,
/// `host.example:9735`; the port may be left out and defaults to
/// [`DEFAULT_PORT`]. An IPv6 address's numeric scope id is printed and read
/// as the standard library does (`[fe80::1%3]:9735`: a link-local address
/// cannot be dialed without it); its flow info has no text form and is not
/// printed. Wire form: [`NetAddress::write_to`] and
/// [`NetAddress::read_from`].
///
/// ```
/// use lnaddr::NetAddress;
///
/// let a: NetAddress = "127.0.0.1".parse()?;
/// assert_eq!(a.to_string(), "127.0.0.1:9735");
/// let b: NetAddress = "[::1]:10011".parse()?;
/// assert_eq!(b.to_string(), "[::1]:10011");
/// let c: NetAddress = "node.example:9736".parse()?;
/// assert_eq!(c.port(), 9736);
/// let d: NetAddress =
///     "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion".parse()?;
/// assert!(matches!(d, NetAddress::Onion { port: 9735, .. }));
///
/// // BOLT 7 wire form: type, body, port.
/// let bytes = a.to_bytes()?;
/// assert_eq!(bytes, [1, 127, 0, 0, 1, 0x26, 0x07]);
/// assert_eq!(NetAddress::read_from(&bytes)?, (a, 7));
/// # Ok::<(), lnaddr::AddressError>(())
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
    /// A Tor v3 onion service and port, reached through a SOCKS5 proxy.
    Onion {
        /// The onion service.
        onion: OnionV3,
        /// The port.
        port: u16,
    },
}

/// The kinds of [`NetAddress`], by BOLT 7 descriptor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AddressKind {
    /// IPv4 (type 1).
    Ipv4,
    /// IPv6 (type 2).
    Ipv6,
    /// Tor v3 onion service (type 4).
    Onion,
    /// DNS host name (type 5).
    Dns,
}

impl AddressKind {
    /// The BOLT 7 descriptor type.
    pub fn descriptor_type(self) -> u8 {
        match self {
            Self::Ipv4 => 1,
            Self::Ipv6 => 2,
            Self::Onion => 4,
            Self::Dns => 5,
        }
    }
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Onion => "onion",
            Self::Dns => "dns",
        })
    }
}

impl NetAddress {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Ip(a) => a.port(),
            Self::Host { port, .. } | Self::Onion { port, .. } => *port,
        }
    }

    /// Which kind of address this is.
    pub fn kind(&self) -> AddressKind {
        match self {
            Self::Ip(SocketAddr::V4(_)) => AddressKind::Ipv4,
            Self::Ip(SocketAddr::V6(_)) => AddressKind::Ipv6,
            Self::Onion { .. } => AddressKind::Onion,
            Self::Host { .. } => AddressKind::Dns,
        }
    }

    /// The host part as a SOCKS5 proxy takes it: an IP literal (without
    /// brackets), an onion name or a DNS name.
    pub fn host(&self) -> String {
        match self {
            Self::Ip(a) => a.ip().to_string(),
            Self::Host { name, .. } => name.clone(),
            Self::Onion { onion, .. } => onion.to_string(),
        }
    }

    /// The length of the BOLT 7 descriptor, type byte included.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Self::Ip(SocketAddr::V4(_)) => 4 + 2,
            Self::Ip(SocketAddr::V6(_)) => 16 + 2,
            Self::Onion { .. } => OnionV3::ENCODED_LEN + 2,
            Self::Host { name, .. } => 1 + name.len() + 2,
        }
    }

    /// Appends the BOLT 7 address descriptor (type byte, body, big-endian
    /// port). An IPv6 address's flow info and scope id are not encoded.
    ///
    /// # Errors
    /// [`AddressError::BadPort`] for port 0; [`AddressError::BadHost`] for a
    /// host name that BOLT 7 cannot carry (not ASCII, empty, over 255 bytes,
    /// or otherwise malformed) or that [`NetAddress::read_from`] would not
    /// read back as itself (an onion name, upper case). Nothing is written
    /// then.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), AddressError> {
        if self.port() == 0 {
            return Err(AddressError::BadPort("0".to_owned()));
        }
        out.push(self.kind().descriptor_type());
        match self {
            Self::Ip(SocketAddr::V4(a)) => out.extend_from_slice(&a.ip().octets()),
            Self::Ip(SocketAddr::V6(a)) => out.extend_from_slice(&a.ip().octets()),
            Self::Onion { onion, .. } => out.extend_from_slice(&onion.encoded()),
            Self::Host { name, .. } => {
                let len = u8::try_from(name.len()).ok().filter(|_| {
                    valid_host_name(name)
                        && !is_onion_name(name)
                        && !name.bytes().any(|b| b.is_ascii_uppercase())
                });
                let Some(len) = len else {
                    out.pop();
                    return Err(AddressError::BadHost(name.clone()));
                };
                out.push(len);
                out.extend_from_slice(name.as_bytes());
            }
        }
        out.extend_from_slice(&self.port().to_be_bytes());
        Ok(())
    }

    /// The BOLT 7 address descriptor.
    ///
    /// # Errors
    /// As [`NetAddress::write_to`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, AddressError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Reads one BOLT 7 address descriptor from the start of `bytes`, and
    /// how many bytes it took.
    ///
    /// # Errors
    /// [`AddressError::Empty`] for no bytes; [`AddressError::Truncated`] if
    /// the descriptor is cut short; [`AddressError::UnknownType`] (its
    /// length is unknown, so nothing after it can be read);
    /// [`AddressError::OnionV2`] for type 3; [`AddressError::OnionVersion`]
    /// and [`AddressError::OnionChecksum`] for a bad type 4;
    /// [`AddressError::BadHost`] for a type 5 name that is not a valid ASCII
    /// DNS name (or is an onion name); [`AddressError::BadPort`] for port 0.
    pub fn read_from(bytes: &[u8]) -> Result<(NetAddress, usize), AddressError> {
        let (addr, len) = Self::read_descriptor(bytes)?;
        if addr.port() == 0 {
            return Err(AddressError::BadPort("0".to_owned()));
        }
        Ok((addr, len))
    }

    /// [`NetAddress::read_from`], port 0 included.
    fn read_descriptor(bytes: &[u8]) -> Result<(NetAddress, usize), AddressError> {
        let (&ty, body) = bytes.split_first().ok_or(AddressError::Empty)?;
        let take = |n: usize| -> Result<&[u8], AddressError> {
            body.get(..n).ok_or(AddressError::Truncated {
                descriptor: ty,
                needed: 1 + n,
                got: bytes.len(),
            })
        };
        let (addr, len) = match ty {
            1 => {
                let b = take(4 + 2)?;
                let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
                let port = read_port(&b[4..])?;
                (Self::Ip(SocketAddr::new(IpAddr::V4(ip), port)), b.len())
            }
            2 => {
                let b = take(16 + 2)?;
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&b[..16]);
                let port = read_port(&b[16..])?;
                let ip = Ipv6Addr::from(octets);
                (Self::Ip(SocketAddr::new(IpAddr::V6(ip), port)), b.len())
            }
            3 => return Err(AddressError::OnionV2),
            4 => {
                let b = take(OnionV3::ENCODED_LEN + 2)?;
                let mut encoded = [0u8; OnionV3::ENCODED_LEN];
                encoded.copy_from_slice(&b[..OnionV3::ENCODED_LEN]);
                let onion = OnionV3::from_encoded(&encoded)?;
                let port = read_port(&b[OnionV3::ENCODED_LEN..])?;
                (Self::Onion { onion, port }, b.len())
            }
            5 => {
                let n = usize::from(*take(1)?.first().ok_or(AddressError::Empty)?);
                let b = take(1 + n + 2)?;
                let raw = &b[1..1 + n];
                let name = core::str::from_utf8(raw)
                    .ok()
                    .filter(|name| valid_host_name(name) && !is_onion_name(name))
                    .ok_or_else(|| {
                        AddressError::BadHost(String::from_utf8_lossy(raw).into_owned())
                    })?;
                let port = read_port(&b[1 + n..])?;
                let host = Self::Host {
                    name: name.to_ascii_lowercase(),
                    port,
                };
                (host, b.len())
            }
            other => return Err(AddressError::UnknownType(other)),
        };
        Ok((addr, 1 + len))
    }

    /// Reads the `addresses` field of a `node_announcement`: descriptors one
    /// after another. As BOLT 7 asks, reading stops at the first descriptor
    /// of an unknown type (the rest is ignored), obsolete Tor v2
    /// descriptors (type 3) are skipped, and so are addresses with port 0
    /// ("SHOULD ignore" for IPv4, IPv6 and host names; an onion service at
    /// port 0 cannot be dialed either), the others kept. A list with more
    /// than one DNS host name breaks BOLT 7's rule for the announcing node
    /// ("MUST NOT announce more than one `type 5` DNS hostname") and is
    /// refused whole (an ignored one with port 0 included).
    ///
    /// # Errors
    /// As [`NetAddress::read_from`] for a known descriptor that is cut
    /// short or malformed; [`AddressError::MoreThanOneHost`].
    pub fn read_list(mut bytes: &[u8]) -> Result<Vec<NetAddress>, AddressError> {
        /// Type 3: 10 bytes of address and a port.
        const ONION_V2_LEN: usize = 1 + 10 + 2;
        let mut out = Vec::new();
        let mut hosts = 0;
        while !bytes.is_empty() {
            match Self::read_descriptor(bytes) {
                Ok((addr, n)) => {
                    if addr.kind() == AddressKind::Dns {
                        hosts += 1;
                        if hosts > 1 {
                            return Err(AddressError::MoreThanOneHost);
                        }
                    }
                    if addr.port() != 0 {
                        out.push(addr);
                    }
                    bytes = &bytes[n..];
                }
                Err(AddressError::UnknownType(_)) => break,
                Err(AddressError::OnionV2) => {
                    bytes = bytes.get(ONION_V2_LEN..).ok_or(AddressError::Truncated {
                        descriptor: 3,
                        needed: ONION_V2_LEN,
                        got: bytes.len(),
                    })?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Appends `addrs` as the `addresses` field of a `node_announcement`,
    /// the inverse of [`NetAddress::read_list`].
    ///
    /// # Errors
    /// [`AddressError::MoreThanOneHost`] for a second DNS host name; as
    /// [`NetAddress::write_to`] for an address that cannot be encoded.
    /// Nothing is written then.
    pub fn write_list(addrs: &[NetAddress], out: &mut Vec<u8>) -> Result<(), AddressError> {
        let hosts = addrs
            .iter()
            .filter(|a| a.kind() == AddressKind::Dns)
            .count();
        if hosts > 1 {
            return Err(AddressError::MoreThanOneHost);
        }
        let start = out.len();
        for addr in addrs {
            if let Err(e) = addr.write_to(out) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }
}

fn read_port(b: &[u8]) -> Result<u16, AddressError> {
    match b {
        [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(AddressError::BadPort(format!("{b:?}"))),
    }
}

/// Whether a DNS name is in Tor's `.onion` domain.
fn is_onion_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
    name.len() >= 6 && name[name.len() - 6..].eq_ignore_ascii_case(b".onion")
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
            Self::Onion { onion, port } => write!(f, "{onion}:{port}"),
        }
    }
}

impl FromStr for NetAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let bad = || AddressError::BadIpv6(s.to_owned());
            let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
            // A numeric scope id (`[fe80::1%3]`), as `Display` prints one.
            let (ip, scope_id) = match ip.split_once('%') {
                Some((ip, scope)) if scope.bytes().all(|b| b.is_ascii_digit()) => {
                    (ip, scope.parse::<u32>().map_err(|_| bad())?)
                }
                Some(_) => return Err(bad()),
                None => (ip, 0),
            };
            let ip: Ipv6Addr = ip.parse().map_err(|_| bad())?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => parse_port(p.strip_prefix(':').ok_or_else(bad)?)?,
            };
            return Ok(Self::Ip(SocketAddr::V6(SocketAddrV6::new(
                ip, port, 0, scope_id,
            ))));
        }
        // A bare IPv6 address has several colons and no port.
        if let Ok(ip) = s.parse::<Ipv6Addr>() {
            return Ok(Self::Ip(SocketAddr::new(IpAddr::V6(ip), DEFAULT_PORT)));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p)?),
            None => (s, DEFAULT_PORT),
        };
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(Self::Ip(SocketAddr::new(IpAddr::V4(ip), port)));
        }
        if is_onion_name(host) {
            let onion = host.parse()?;
            return Ok(Self::Onion { onion, port });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeAddr;
    use alloc::vec;

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
    fn a_scoped_ipv6_address_prints_and_parses_back() {
        let scoped = NetAddress::Ip(SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().expect("ip"),
            9735,
            0,
            3,
        )));
        assert_eq!(scoped.to_string(), "[fe80::1%3]:9735");
        assert_eq!("[fe80::1%3]:9735".parse::<NetAddress>(), Ok(scoped.clone()));
        assert_eq!("[fe80::1%3]".parse::<NetAddress>(), Ok(scoped));
        for bad in [
            "[fe80::1%eth0]:1",
            "[fe80::1%]:1",
            "[fe80::1%+3]:1",
            "[fe80::1%4294967296]:1",
        ] {
            assert!(
                matches!(bad.parse::<NetAddress>(), Err(AddressError::BadIpv6(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_names_are_written_only_if_they_read_back_as_themselves() {
        for name in [
            "Node.Example",
            "NODE.EXAMPLE",
            &ONION.to_uppercase(),
            ONION,
            "x.onion",
        ] {
            let host = NetAddress::Host {
                name: name.into(),
                port: 1,
            };
            let mut out = vec![7];
            assert!(
                matches!(host.write_to(&mut out), Err(AddressError::BadHost(_))),
                "{name}"
            );
            assert_eq!(out, [7], "nothing written on error");
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

    const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

    #[test]
    fn onion_text_forms_round_trip() {
        let a: NetAddress = format!("{ONION}:9735").parse().expect("onion");
        assert_eq!(a.kind(), AddressKind::Onion);
        assert_eq!(a.to_string(), format!("{ONION}:9735"));
        assert_eq!(a.host(), ONION);
        let b: NetAddress = ONION.to_uppercase().parse().expect("upper case");
        assert_eq!(b, a);
        let n: NodeAddr = format!("{KEY}@{ONION}:10000").parse().expect("node");
        assert_eq!(n.addr.port(), 10000);
        assert_eq!(n.to_string().parse::<NodeAddr>(), Ok(n));
    }

    #[test]
    fn bad_onion_text_is_refused() {
        assert_eq!(
            "expyuzz4wqqyqhjn.onion:9735".parse::<NetAddress>(),
            Err(AddressError::OnionV2)
        );
        assert!(matches!(
            "short.onion:9735".parse::<NetAddress>(),
            Err(AddressError::BadOnion(_))
        ));
        let typo = ONION.replacen('2', "3", 1);
        assert!(matches!(
            format!("{typo}:9735").parse::<NetAddress>(),
            Err(AddressError::OnionChecksum { .. })
        ));
        assert!(matches!(
            format!("{ONION}:0").parse::<NetAddress>(),
            Err(AddressError::BadPort(_))
        ));
    }

    #[test]
    fn kinds_name_their_descriptor_types() {
        let cases = [
            ("1.2.3.4:1", AddressKind::Ipv4, 1),
            ("[::1]:1", AddressKind::Ipv6, 2),
            ("h.example:1", AddressKind::Dns, 5),
        ];
        for (s, kind, ty) in cases {
            let a: NetAddress = s.parse().expect(s);
            assert_eq!(a.kind(), kind);
            assert_eq!(kind.descriptor_type(), ty);
            assert_eq!(a.to_bytes().expect(s)[0], ty);
        }
        assert_eq!(AddressKind::Onion.descriptor_type(), 4);
    }

    /// The examples of BOLT 7's descriptor layouts, byte for byte.
    #[test]
    fn wire_layouts() {
        let v4: NetAddress = "1.2.3.4:9735".parse().expect("v4");
        assert_eq!(v4.to_bytes(), Ok(vec![1, 1, 2, 3, 4, 0x26, 0x07]));
        let v6: NetAddress = "[::1]:258".parse().expect("v6");
        let mut want = vec![2];
        want.extend_from_slice(&[0; 15]);
        want.extend_from_slice(&[1, 1, 2]);
        assert_eq!(v6.to_bytes(), Ok(want));
        let host: NetAddress = "ab.cd:1".parse().expect("host");
        assert_eq!(
            host.to_bytes(),
            Ok(vec![5, 5, b'a', b'b', b'.', b'c', b'd', 0, 1])
        );
        let onion: NetAddress = ONION.parse().expect("onion");
        let bytes = onion.to_bytes().expect("onion");
        assert_eq!(bytes.len(), 1 + 35 + 2);
        assert_eq!((bytes[0], bytes[35]), (4, 3));
        for a in [v4, v6, host, onion] {
            let bytes = a.to_bytes().expect("encodes");
            assert_eq!(bytes.len(), a.encoded_len());
            assert_eq!(NetAddress::read_from(&bytes), Ok((a, bytes.len())));
        }
    }

    #[test]
    fn truncated_descriptors_are_refused() {
        for s in ["1.2.3.4:1", "[::1]:1", "h.example:1", ONION] {
            let a: NetAddress = s.parse().expect(s);
            let bytes = a.to_bytes().expect(s);
            for cut in 1..bytes.len() {
                assert!(
                    matches!(
                        NetAddress::read_from(&bytes[..cut]),
                        Err(AddressError::Truncated { descriptor, .. }) if descriptor == bytes[0]
                    ),
                    "{s} cut at {cut}"
                );
            }
        }
        assert_eq!(NetAddress::read_from(&[]), Err(AddressError::Empty));
    }

    #[test]
    fn bad_descriptors_are_refused() {
        let onion: NetAddress = ONION.parse().expect("onion");
        let good = onion.to_bytes().expect("onion");
        let mut bad_sum = good.clone();
        bad_sum[33] ^= 0xff;
        assert!(matches!(
            NetAddress::read_from(&bad_sum),
            Err(AddressError::OnionChecksum { .. })
        ));
        let mut bad_version = good.clone();
        bad_version[35] = 2;
        assert_eq!(
            NetAddress::read_from(&bad_version),
            Err(AddressError::OnionVersion(2))
        );
        assert_eq!(NetAddress::read_from(&[3; 13]), Err(AddressError::OnionV2));
        assert_eq!(
            NetAddress::read_from(&[9, 0, 0]),
            Err(AddressError::UnknownType(9))
        );
        assert_eq!(
            NetAddress::read_from(&[1, 1, 2, 3, 4, 0, 0]),
            Err(AddressError::BadPort("0".into()))
        );
        // Type 5: not ASCII, empty, an IP literal, an onion name.
        for name in [&b"h\xc3\xa9.example"[..], b"", b"1.2.3.4", ONION.as_bytes()] {
            let mut d = vec![5, name.len() as u8];
            d.extend_from_slice(name);
            d.extend_from_slice(&[0, 1]);
            assert!(
                matches!(NetAddress::read_from(&d), Err(AddressError::BadHost(_))),
                "{name:?}"
            );
        }
        let long = NetAddress::Host {
            name: "a".repeat(256),
            port: 1,
        };
        assert!(matches!(long.to_bytes(), Err(AddressError::BadHost(_))));
        let mut out = vec![7];
        assert!(long.write_to(&mut out).is_err());
        assert_eq!(out, [7], "nothing written on error");
    }

    #[test]
    fn address_lists_skip_v2_and_stop_at_unknown_types() {
        let a: NetAddress = "1.2.3.4:1".parse().expect("v4");
        let b: NetAddress = ONION.parse().expect("onion");
        let mut list = a.to_bytes().expect("a");
        list.extend_from_slice(&[3; 13]); // a v2 onion: skipped
        list.extend(b.to_bytes().expect("b"));
        list.extend_from_slice(&[42, 1, 2, 3]); // unknown: the rest is ignored
        assert_eq!(NetAddress::read_list(&list), Ok(vec![a, b]));
        assert!(matches!(
            NetAddress::read_list(&[1, 1, 2]),
            Err(AddressError::Truncated { .. })
        ));
        assert!(matches!(
            NetAddress::read_list(&[3; 5]),
            Err(AddressError::Truncated { descriptor: 3, .. })
        ));
    }

    /// BOLT 7: a reader SHOULD ignore an IPv4, IPv6 or host name address
    /// with port 0; the list's other addresses are kept.
    #[test]
    fn address_lists_skip_port_0_and_keep_the_others() {
        let a: NetAddress = "1.2.3.4:1".parse().expect("v4");
        let b: NetAddress = ONION.parse().expect("onion");
        let mut list = vec![1, 9, 9, 9, 9, 0, 0];
        list.extend(a.to_bytes().expect("a"));
        list.extend_from_slice(&[2; 17]);
        list.extend_from_slice(&[0, 0]);
        list.extend_from_slice(&[5, 5, b'a', b'b', b'.', b'c', b'd', 0, 0]);
        let mut onion_0 = b.to_bytes().expect("b");
        let n = onion_0.len();
        onion_0[n - 2..].fill(0);
        list.extend(onion_0);
        list.extend(b.to_bytes().expect("b"));
        assert_eq!(NetAddress::read_list(&list), Ok(vec![a, b]));
        // Still malformed: a port-0 descriptor cut short, or a second host name.
        assert!(matches!(
            NetAddress::read_list(&[1, 9, 9, 9, 9, 0]),
            Err(AddressError::Truncated { .. })
        ));
        let mut two = vec![5, 2, b'a', b'b', 0, 0];
        two.extend(
            NetAddress::Host {
                name: "cd".into(),
                port: 1,
            }
            .to_bytes()
            .expect("cd"),
        );
        assert_eq!(
            NetAddress::read_list(&two),
            Err(AddressError::MoreThanOneHost)
        );
        // One descriptor alone is still refused.
        assert_eq!(
            NetAddress::read_from(&[1, 9, 9, 9, 9, 0, 0]),
            Err(AddressError::BadPort("0".into()))
        );
    }

    #[test]
    fn a_second_dns_host_name_in_a_list_is_refused() {
        let v4: NetAddress = "1.2.3.4:1".parse().expect("v4");
        let a: NetAddress = "a.example:1".parse().expect("a");
        let b: NetAddress = "b.example:1".parse().expect("b");
        let mut one = Vec::new();
        NetAddress::write_list(&[a.clone(), v4.clone()], &mut one).expect("one host name");
        assert_eq!(NetAddress::read_list(&one), Ok(vec![a.clone(), v4.clone()]));
        let mut two = one.clone();
        b.write_to(&mut two).expect("b");
        assert_eq!(
            NetAddress::read_list(&two),
            Err(AddressError::MoreThanOneHost)
        );
        let mut out = vec![9];
        assert_eq!(
            NetAddress::write_list(&[a, v4, b], &mut out),
            Err(AddressError::MoreThanOneHost)
        );
        assert_eq!(out, [9], "nothing written on error");
    }

    fn any_address() -> impl proptest::strategy::Strategy<Value = NetAddress> {
        use proptest::prelude::*;
        let port = 1..=u16::MAX;
        let label = "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?";
        prop_oneof![
            (any::<[u8; 4]>(), port.clone())
                .prop_map(|(ip, p)| NetAddress::Ip(SocketAddr::from((ip, p)))),
            (any::<[u8; 16]>(), port.clone())
                .prop_map(|(ip, p)| NetAddress::Ip(SocketAddr::from((ip, p)))),
            (any::<[u8; 16]>(), port.clone(), any::<u32>()).prop_map(|(ip, p, scope)| {
                NetAddress::Ip(SocketAddr::V6(SocketAddrV6::new(ip.into(), p, 0, scope)))
            }),
            (any::<[u8; 32]>(), port.clone()).prop_map(|(k, port)| NetAddress::Onion {
                onion: OnionV3::from_pubkey(k),
                port
            }),
            (
                proptest::collection::vec(label, 1..5),
                "[a-z][a-z0-9]{1,10}",
                port
            )
                .prop_map(|(labels, tld, port)| NetAddress::Host {
                    name: format!("{}.{tld}", labels.join(".")),
                    port
                }),
        ]
    }

    /// What the wire form keeps of an address: not an IPv6 scope id.
    fn on_the_wire(a: &NetAddress) -> NetAddress {
        match a {
            NetAddress::Ip(SocketAddr::V6(v6)) => {
                NetAddress::Ip(SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)))
            }
            other => other.clone(),
        }
    }

    /// A type 5 descriptor of any bytes as the name, and a port.
    fn host_descriptor(name: &[u8], port: u16) -> Vec<u8> {
        let mut d = vec![5, name.len() as u8];
        d.extend_from_slice(name);
        d.extend_from_slice(&port.to_be_bytes());
        d
    }

    proptest::proptest! {
        #[test]
        fn wire_round_trip(
            addrs in proptest::collection::vec(any_address(), 0..6),
            zeros in proptest::collection::vec((0..7usize, proptest::prelude::any::<bool>()), 0..3),
        ) {
            let mut bytes = Vec::new();
            // The same list with port-0 descriptors here and there, which
            // read_list skips.
            let mut with_zeros = Vec::new();
            for (i, a) in addrs.iter().enumerate() {
                for &(_, v4) in zeros.iter().filter(|(at, _)| *at == i) {
                    with_zeros.extend_from_slice(if v4 { &[1, 1, 2, 3, 4, 0, 0][..] } else { &[2; 19][..] });
                    if !v4 {
                        let n = with_zeros.len();
                        with_zeros[n - 2..].fill(0);
                    }
                }
                a.write_to(&mut bytes).expect("encodable");
                a.write_to(&mut with_zeros).expect("encodable");
            }
            proptest::prop_assert_eq!(NetAddress::read_list(&with_zeros), NetAddress::read_list(&bytes));
            let addrs: Vec<NetAddress> = addrs.iter().map(on_the_wire).collect();
            let hosts = addrs.iter().filter(|a| a.kind() == AddressKind::Dns).count();
            let mut listed = Vec::new();
            if hosts > 1 {
                // BOLT 7: at most one DNS host name, on both sides.
                proptest::prop_assert_eq!(NetAddress::read_list(&bytes), Err(AddressError::MoreThanOneHost));
                proptest::prop_assert_eq!(
                    NetAddress::write_list(&addrs, &mut listed),
                    Err(AddressError::MoreThanOneHost)
                );
                proptest::prop_assert!(listed.is_empty());
            } else {
                proptest::prop_assert_eq!(NetAddress::read_list(&bytes), Ok(addrs.clone()));
                proptest::prop_assert_eq!(NetAddress::write_list(&addrs, &mut listed), Ok(()));
                proptest::prop_assert_eq!(&listed, &bytes);
            }
            if let Some(first) = addrs.first() {
                proptest::prop_assert_eq!(
                    NetAddress::read_from(&bytes),
                    Ok((first.clone(), first.encoded_len()))
                );
            }
        }

        #[test]
        fn text_round_trip(a in any_address()) {
            proptest::prop_assert_eq!(a.to_string().parse::<NetAddress>(), Ok(a));
        }

        /// `write_to` takes a host name exactly when `read_from` reads it
        /// back as itself.
        #[test]
        fn host_names_written_are_the_ones_read(
            name in "([a-zA-Z0-9-]{1,12}\\.){0,3}([a-zA-Z0-9-]{1,12}|onion|ONION|[a-z2-7]{56}\\.onion)",
            port in 1..=u16::MAX,
        ) {
            let host = NetAddress::Host { name: name.clone(), port };
            let written = host.to_bytes();
            let read = NetAddress::read_from(&host_descriptor(name.as_bytes(), port));
            let reads_as_itself = read.as_ref().is_ok_and(|(a, _)| *a == host);
            proptest::prop_assert_eq!(written.is_ok(), reads_as_itself, "{:?} {:?}", written, read);
            if let Ok(bytes) = written {
                proptest::prop_assert_eq!(NetAddress::read_from(&bytes), Ok((host, bytes.len())));
            }
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = NetAddress::read_from(&bytes);
            let _ = NetAddress::read_list(&bytes);
        }

        #[test]
        fn any_text_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<NetAddress>();
            let _ = s.parse::<NodeAddr>();
        }
    }
}
