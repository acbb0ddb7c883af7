//! Startup: every persistent peer of a node that is starting gets its
//! worker, a first batch dials at once, the rest are spread.

use std::time::Duration;

use backoff::SplitMix64;
use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, When};

use crate::server::nodes;
use crate::{NetAddress, NodeAddr, PeerHandler, Server};

/// A persistent peer to connect to at [`Server::startup`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartupPeer {
    /// The peer.
    pub pubkey: PublicKey,
    /// Where it can be reached (its advertised addresses).
    pub addrs: Vec<NetAddress>,
    /// Addresses a user gave (`connect --perm`), latest first: kept ahead
    /// of the advertised ones.
    pub user_addrs: Vec<NetAddress>,
    /// Whether a user asked for it (`connect --perm`), rather than a channel.
    pub perm: bool,
    /// The backoff level it had (restored from a store), if known; `None`
    /// for a peer that was connected for long (it starts relaxed).
    pub backoff: Option<Duration>,
    /// The address of its last connection (restored from a store): dialed
    /// first.
    pub last_good: Option<NetAddress>,
}

impl StartupPeer {
    /// A peer with its advertised addresses and no history.
    pub fn new(pubkey: PublicKey, addrs: Vec<NetAddress>, perm: bool) -> Self {
        StartupPeer {
            pubkey,
            addrs,
            user_addrs: Vec::new(),
            perm,
            backoff: None,
            last_good: None,
        }
    }
}

impl<D, K, H> Server<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    /// Connects to the persistent peers of a node that is starting: the
    /// first [`Config::startup_batch`](crate::Config::startup_batch) at
    /// once, the others after a random whole number of seconds below
    /// [`Config::startup_spread`](crate::Config::startup_spread), so a
    /// restart does not dial them all at the same moment.
    pub fn startup(&self, peers: impl IntoIterator<Item = StartupPeer>) {
        let inner = &self.inner;
        let spread = inner.config.startup_spread.as_secs();
        let mut skipped = Vec::new();
        let mut reg = inner.lock();
        if reg.shut_down {
            return;
        }
        for (i, peer) in peers.into_iter().enumerate() {
            if peer.pubkey == inner.local {
                continue;
            }
            let policy = &inner.config.addresses;
            let (advertised, mut skips) = policy.plan(&peer.addrs);
            // A stored user-given address the policy skips (an onion one,
            // the proxy since removed) is reported too.
            let (user, user_skips) = policy.plan(&peer.user_addrs);
            skips.extend(user_skips);
            if !skips.is_empty() {
                skipped.push((peer.pubkey, skips));
            }
            if !peer.addrs.is_empty() {
                reg.announced.insert(peer.pubkey, peer.addrs.clone());
            }
            let handle = inner.get_or_create(&mut reg, peer.pubkey, peer.perm);
            // No stored addresses is no news: what the worker knows (from an
            // announcement) stays.
            if !peer.addrs.is_empty() {
                let _ = handle.update_addrs(nodes(peer.pubkey, advertised));
            }
            let user = nodes(peer.pubkey, user);
            let last_good = peer
                .last_good
                .filter(|a| inner.config.addresses.skip_reason(a).is_none())
                .map(|a| NodeAddr::new(peer.pubkey, a));
            if peer.backoff.is_some() || last_good.is_some() {
                let _ = handle.restore(peer.backoff, last_good);
            }
            if reg.conns.contains_key(&peer.pubkey) {
                let _ = handle.add_addrs(user);
                continue;
            }
            let when = if i < inner.config.startup_batch || spread == 0 {
                When::Now
            } else {
                let r =
                    SplitMix64::new(inner.seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F))
                        .next_u64();
                When::After(Duration::from_secs(r % spread))
            };
            // Stored addresses, not a user's request of now: no address
            // jumps ahead of the last good one.
            if !user.is_empty() {
                let _ = handle.add_addrs(user);
            }
            let _ = handle.connect(None, when);
        }
        drop(reg);
        for (peer, skipped) in skipped {
            inner.report_skipped(peer, skipped);
        }
    }
}
