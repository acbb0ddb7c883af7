//! Address parsing: `host[:port]` ([`NetAddress`]) and `pubkey@host[:port]`
//! ([`NodeAddr`]) as text, as typed by a user; and BOLT 7 address
//! descriptors, as read from a peer's `node_announcement`.

use lnaddr::{AddressError, AddressKind, NetAddress, NodeAddr};

/// A valid node key (the spec responder's), to reach the address parser
/// through `NodeAddr`.
const KEY: &str = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7";

/// What the three parses of one input gave.
#[derive(Debug)]
pub struct AddressReport {
    /// The input as a `NetAddress`.
    pub net: Result<NetAddress, AddressError>,
    /// The input as a `NodeAddr`.
    pub node: Result<NodeAddr, AddressError>,
    /// `<valid key>@<input>` as a `NodeAddr`.
    pub keyed: Result<NodeAddr, AddressError>,
}

/// Parses `data` (lossily decoded as UTF-8) every way.
///
/// What must hold: nothing panics; an accepted address prints to a text that
/// parses back to the same address (and prints the same again); a
/// `NodeAddr` is exactly a key, `@`, and a `NetAddress`; errors print.
///
/// # Panics
/// If one of those breaks.
pub fn parse_address(data: &[u8]) -> AddressReport {
    let text = String::from_utf8_lossy(data);

    let net = text.parse::<NetAddress>();
    if let Ok(addr) = &net {
        let printed = addr.to_string();
        let again: NetAddress = printed
            .parse()
            .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not parse: {e}"));
        assert_eq!(&again, addr, "{text:?} printed as {printed:?}");
        assert_eq!(again.to_string(), printed);
        assert_ne!(addr.port(), 0, "port 0 accepted from {text:?}");
        binary_round_trip(addr);
    }

    let node = text.parse::<NodeAddr>();
    if let Ok(n) = &node {
        let printed = n.to_string();
        let again: NodeAddr = printed
            .parse()
            .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not parse: {e}"));
        assert_eq!(&again, n);
        let (_, addr) = text.split_once('@').expect("a NodeAddr has an @");
        assert_eq!(addr.parse::<NetAddress>().as_ref(), Ok(&n.addr));
    }

    let keyed = format!("{KEY}@{text}").parse::<NodeAddr>();
    assert_eq!(
        keyed.as_ref().map(|n| &n.addr),
        net.as_ref(),
        "key@{text:?} and {text:?} disagree"
    );

    let errors = [
        net.as_ref().err(),
        node.as_ref().err(),
        keyed.as_ref().err(),
    ];
    for err in errors.into_iter().flatten() {
        let _ = err.to_string();
    }
    AddressReport { net, node, keyed }
}

/// What the wire form keeps of an address: an IPv6 address's scope id and
/// flow info are not encoded.
fn on_the_wire(addr: &NetAddress) -> NetAddress {
    match addr {
        NetAddress::Ip(std::net::SocketAddr::V6(v6)) => {
            NetAddress::Ip(std::net::SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0).into())
        }
        other => other.clone(),
    }
}

/// An address encodes as a BOLT 7 descriptor of `encoded_len()` bytes that
/// reads back as the same address (as the wire form keeps it).
fn binary_round_trip(addr: &NetAddress) -> Vec<u8> {
    let bytes = addr
        .to_bytes()
        .unwrap_or_else(|e| panic!("{addr} does not encode: {e}"));
    assert_eq!(bytes.len(), addr.encoded_len(), "{addr}");
    let (again, n) = NetAddress::read_from(&bytes)
        .unwrap_or_else(|e| panic!("{addr} encodes to {bytes:?}, which does not read: {e}"));
    assert_eq!(again, on_the_wire(addr));
    assert_eq!(n, bytes.len());
    bytes
}

/// An address prints as text that parses back to the same address.
fn text_round_trip(addr: &NetAddress) {
    let printed = addr.to_string();
    let again: NetAddress = printed
        .parse()
        .unwrap_or_else(|e| panic!("{printed:?} does not parse: {e}"));
    assert_eq!(&again, addr, "{printed:?}");
}

/// What reading one input as BOLT 7 descriptors gave.
#[derive(Debug)]
pub struct DescriptorReport {
    /// The first descriptor, and the bytes it took.
    pub first: Result<(NetAddress, usize), AddressError>,
    /// The whole input as a `node_announcement` address list.
    pub list: Result<Vec<NetAddress>, AddressError>,
}

/// Reads `data` as one descriptor and as an address list.
///
/// What must hold: nothing panics; a descriptor read takes exactly its
/// `encoded_len()` bytes, re-encodes to the same bytes (host names modulo
/// case) and prints as text that parses back to it; the list reader agrees
/// with the single reader on the first address, accepts at most one DNS
/// host name, and what it reads writes back to a list that reads the same.
///
/// # Panics
/// If one of those breaks.
pub fn read_descriptors(data: &[u8]) -> DescriptorReport {
    let first = NetAddress::read_from(data);
    if let Ok((addr, n)) = &first {
        assert!(*n <= data.len());
        assert_eq!(*n, addr.encoded_len(), "{addr}");
        let bytes = binary_round_trip(addr);
        if matches!(addr, NetAddress::Host { .. }) {
            assert!(bytes.eq_ignore_ascii_case(&data[..*n]));
        } else {
            assert_eq!(&bytes[..], &data[..*n], "{addr} re-encodes differently");
        }
        text_round_trip(addr);
    }
    let list = NetAddress::read_list(data);
    if let Ok(addrs) = &list {
        for addr in addrs {
            binary_round_trip(addr);
            text_round_trip(addr);
        }
        // BOLT 7: at most one DNS host name; and the list writes back.
        let hosts = addrs
            .iter()
            .filter(|a| a.kind() == AddressKind::Dns)
            .count();
        assert!(hosts <= 1, "{hosts} host names accepted");
        let mut written = Vec::new();
        NetAddress::write_list(addrs, &mut written)
            .unwrap_or_else(|e| panic!("{addrs:?} does not write: {e}"));
        assert_eq!(NetAddress::read_list(&written).as_ref(), Ok(addrs));
        if let Ok((addr, _)) = &first {
            assert_eq!(addrs.first(), Some(addr), "the list reader disagrees");
        }
    }
    if let Err(e) = &first {
        let _ = e.to_string();
    }
    if let Err(e) = &list {
        let _ = e.to_string();
    }
    DescriptorReport { first, list }
}
