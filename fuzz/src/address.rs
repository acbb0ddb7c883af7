//! Address parsing: `host[:port]` ([`NetAddress`]) and `pubkey@host[:port]`
//! ([`NodeAddr`]), as typed by a user or read from a peer's announcement.

use server::{AddressError, NetAddress, NodeAddr};

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
