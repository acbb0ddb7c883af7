//! Which of a peer's addresses its worker dials, and in what order.

use crate::{AddressKind, NetAddress};

/// How the server orders and filters a peer's addresses before it hands
/// them to the peer's worker. The worker then dials the last address that
/// worked first, and the others in this order.
///
/// ```
/// use server::{AddressPolicy, NetAddress, SkipReason};
///
/// let addrs: Vec<NetAddress> = [
///     "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9735",
///     "node.example:9735",
///     "1.2.3.4:9735",
///     "[2001:db8::1]:9735",
/// ]
/// .iter()
/// .map(|s| s.parse())
/// .collect::<Result<_, _>>()?;
///
/// // No proxy: the onion address is skipped, with a reason.
/// let (dial, skipped) = AddressPolicy::default().plan(&addrs);
/// assert_eq!(dial, [addrs[3].clone(), addrs[2].clone(), addrs[1].clone()]);
/// assert_eq!(skipped[0].reason, SkipReason::NoProxy);
///
/// // With a proxy to Tor it is dialed last.
/// let (dial, skipped) = AddressPolicy::default().with_onion(true).plan(&addrs);
/// assert_eq!(dial.last(), Some(&addrs[0]));
/// assert!(skipped.is_empty());
/// # Ok::<(), server::AddressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddressPolicy {
    /// Address kinds, most preferred first:
    /// [`AddressPolicy::DEFAULT_ORDER`] (IPv6, IPv4, DNS, onion: the order
    /// Core Lightning and lnd users asked for). Kinds not listed come after
    /// the listed ones. Addresses of one kind keep the order they were
    /// given in.
    pub order: Vec<AddressKind>,
    /// Whether onion addresses can be dialed, that is whether the dialer
    /// has a SOCKS5 proxy to Tor: take it from the dialer with
    /// [`AddressPolicy::for_dialer`] (or [`AddressPolicy::with_reach`]) rather
    /// than setting it by hand. Default `false`: onion addresses are skipped with
    /// [`SkipReason::NoProxy`], reported in [`ServerEvent::AddressSkipped`]
    /// and [`PeerStatus::skipped`], never dropped silently.
    ///
    /// [`ServerEvent::AddressSkipped`]: crate::ServerEvent::AddressSkipped
    /// [`PeerStatus::skipped`]: crate::PeerStatus::skipped
    pub onion: bool,
}

impl AddressPolicy {
    /// IPv6, IPv4, DNS, then onion.
    pub const DEFAULT_ORDER: [AddressKind; 4] = [
        AddressKind::Ipv6,
        AddressKind::Ipv4,
        AddressKind::Dns,
        AddressKind::Onion,
    ];

    /// Replaces the order of preference.
    #[must_use]
    pub fn with_order(mut self, order: impl IntoIterator<Item = AddressKind>) -> Self {
        self.order = order.into_iter().collect();
        self
    }

    /// Sets whether onion addresses can be dialed.
    #[must_use]
    pub fn with_onion(mut self, onion: bool) -> Self {
        self.onion = onion;
        self
    }

    /// Takes which address kinds can be dialed from whoever dials them (a
    /// [`brontide::NetTransport::reaches`], for example).
    #[must_use]
    pub fn with_reach(self, reaches: impl Fn(AddressKind) -> bool) -> Self {
        self.with_onion(reaches(AddressKind::Onion))
    }

    /// The default order, dialing what `dialer` reaches: the proxy is
    /// configured once, on the dialer's transport, and the policy follows.
    ///
    /// ```
    /// use brontide::{DialConfig, NetTransport, NodeKeyPair, ProxyScope, SecretKey, Socks5};
    /// use server::{AddressPolicy, BrontideDialer};
    ///
    /// let key = NodeKeyPair::new(SecretKey::from_slice(&[1; 32]).unwrap());
    /// let tor = Socks5::new("127.0.0.1:9050".parse().unwrap());
    /// let dialer = BrontideDialer::new(key, DialConfig::default())
    ///     .with_transport(NetTransport::new().with_proxy(tor, ProxyScope::OnionOnly));
    /// assert!(AddressPolicy::for_dialer(&dialer).onion);
    /// ```
    pub fn for_dialer<L: brontide::NodeSigner + Clone>(dialer: &crate::BrontideDialer<L>) -> Self {
        Self::default().with_reach(|kind| dialer.reaches(kind))
    }

    /// Why `addr` will not be dialed, if it will not.
    pub fn skip_reason(&self, addr: &NetAddress) -> Option<SkipReason> {
        if addr.port() == 0 {
            return Some(SkipReason::PortZero);
        }
        (addr.kind() == AddressKind::Onion && !self.onion).then_some(SkipReason::NoProxy)
    }

    /// The addresses to dial, in order of preference and without
    /// duplicates, and the ones skipped with why.
    pub fn plan(&self, addrs: &[NetAddress]) -> (Vec<NetAddress>, Vec<SkippedAddr>) {
        let mut dial: Vec<NetAddress> = Vec::with_capacity(addrs.len());
        let mut skipped = Vec::new();
        for addr in addrs {
            if let Some(reason) = self.skip_reason(addr) {
                skipped.push(SkippedAddr {
                    addr: addr.clone(),
                    reason,
                });
            } else if !dial.contains(addr) {
                dial.push(addr.clone());
            }
        }
        let rank = |a: &NetAddress| {
            let kind = a.kind();
            self.order
                .iter()
                .position(|k| *k == kind)
                .unwrap_or(self.order.len())
        };
        // Stable: one kind keeps the given order.
        dial.sort_by_key(rank);
        (dial, skipped)
    }
}

impl Default for AddressPolicy {
    fn default() -> Self {
        Self {
            order: Self::DEFAULT_ORDER.to_vec(),
            onion: false,
        }
    }
}

/// An address the server did not hand to a worker, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedAddr {
    /// The address.
    pub addr: NetAddress,
    /// Why it is not dialed.
    pub reason: SkipReason,
}

/// Why an address is not dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SkipReason {
    /// An onion address, and no SOCKS5 proxy to Tor is configured.
    #[error("onion addresses need a SOCKS5 proxy to Tor, and none is configured")]
    NoProxy,
    /// Port 0: nothing listens there (BOLT 7 says to ignore such an
    /// address).
    #[error("port 0 cannot be dialed")]
    PortZero,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<NetAddress> {
        list.iter().map(|s| s.parse().expect(s)).collect()
    }

    const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:1";

    #[test]
    fn default_order_is_ipv6_ipv4_dns_onion_stable_within_a_kind() {
        let given = addrs(&[
            ONION,
            "b.example:1",
            "1.1.1.1:1",
            "[::2]:1",
            "a.example:1",
            "[::1]:1",
            "2.2.2.2:1",
        ]);
        let (dial, skipped) = AddressPolicy::default().with_onion(true).plan(&given);
        assert_eq!(
            dial,
            addrs(&[
                "[::2]:1",
                "[::1]:1",
                "1.1.1.1:1",
                "2.2.2.2:1",
                "b.example:1",
                "a.example:1",
                ONION
            ])
        );
        assert!(skipped.is_empty());
    }

    #[test]
    fn onion_skipped_without_proxy_with_a_reason() {
        let given = addrs(&[ONION, "1.1.1.1:1"]);
        let (dial, skipped) = AddressPolicy::default().plan(&given);
        assert_eq!(dial, addrs(&["1.1.1.1:1"]));
        assert_eq!(
            skipped,
            [SkippedAddr {
                addr: given[0].clone(),
                reason: SkipReason::NoProxy
            }]
        );
    }

    #[test]
    fn custom_order_and_unlisted_kinds_last() {
        let given = addrs(&["1.1.1.1:1", "a.example:1", ONION, "[::1]:1"]);
        let policy = AddressPolicy::default()
            .with_onion(true)
            .with_order([AddressKind::Onion, AddressKind::Dns]);
        let (dial, _) = policy.plan(&given);
        assert_eq!(dial, addrs(&[ONION, "a.example:1", "1.1.1.1:1", "[::1]:1"]));
    }

    #[test]
    fn duplicates_dialed_once() {
        let given = addrs(&["1.1.1.1:1", "1.1.1.1:1"]);
        assert_eq!(AddressPolicy::default().plan(&given).0.len(), 1);
    }
}
