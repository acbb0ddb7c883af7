//! What [`Server::status`] reports.

use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, Status};
use tokio::time::Instant;

use crate::registry::Registry;
use crate::{Direction, NetAddress, NodeAddr, PeerHandler, Server, SkippedAddr};

/// The live connection to a peer, as [`Server::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Who dialed.
    pub direction: Direction,
    /// When it was established.
    pub since: Instant,
    /// The address we dialed, or the peer's source address if inbound.
    pub addr: Option<NetAddress>,
}

/// One peer as [`Server::status`] reports it. `E` is the dialer's error.
#[non_exhaustive]
pub struct PeerStatus<E> {
    /// The peer.
    pub pubkey: PublicKey,
    /// `Some(perm)` if the peer is persistent (it has a worker).
    pub persistent: Option<bool>,
    /// The live connection, if any.
    pub connection: Option<ConnectionInfo>,
    /// The worker's snapshot, if the peer is persistent.
    pub worker: Option<Status<NodeAddr, E>>,
    /// A second connection that lost the duplicate rule and is held for
    /// [`Config::duplicate_grace`](crate::Config::duplicate_grace) in case
    /// the peer keeps it: its direction.
    pub parked: Option<Direction>,
    /// The peer's announced addresses not handed to its worker, and why
    /// (see [`Config::addresses`](crate::Config::addresses)).
    pub skipped: Vec<SkippedAddr>,
}

impl<E: std::fmt::Debug> std::fmt::Debug for PeerStatus<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStatus")
            .field("pubkey", &self.pubkey)
            .field("persistent", &self.persistent)
            .field("connection", &self.connection)
            .field("worker", &self.worker)
            .field("parked", &self.parked)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl<E> Clone for PeerStatus<E> {
    fn clone(&self) -> Self {
        PeerStatus {
            pubkey: self.pubkey,
            persistent: self.persistent,
            connection: self.connection.clone(),
            worker: self.worker.clone(),
            parked: self.parked,
            skipped: self.skipped.clone(),
        }
    }
}

impl<D, K, H> Server<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    /// Every peer the server knows of (connected or persistent), sorted by
    /// public key. For display: a snapshot, stale as soon as it is read.
    pub fn status(&self) -> Vec<PeerStatus<D::Error>> {
        let mut peers: Vec<PeerStatus<D::Error>> = {
            let reg = self.inner.lock();
            let only_persistent = reg.workers.keys().filter(|k| !reg.conns.contains_key(k));
            reg.conns
                .keys()
                .chain(only_persistent)
                .map(|&pubkey| self.status_in(&reg, pubkey))
                .collect()
        };
        // Sorted after the lock is released, each key serialized once.
        peers.sort_by_cached_key(|p| p.pubkey.serialize());
        peers
    }

    /// One peer's status, if the server knows of it (connected or
    /// persistent).
    pub fn peer_status(&self, peer: &PublicKey) -> Option<PeerStatus<D::Error>> {
        let reg = self.inner.lock();
        let known = reg.conns.contains_key(peer) || reg.workers.contains_key(peer);
        known.then(|| self.status_in(&reg, *peer))
    }

    fn status_in(
        &self,
        reg: &Registry<D::Conn, D::Error>,
        pubkey: PublicKey,
    ) -> PeerStatus<D::Error> {
        PeerStatus {
            pubkey,
            persistent: reg.workers.get(&pubkey).map(|p| p.perm),
            connection: reg.conns.get(&pubkey).map(|l| ConnectionInfo {
                direction: l.direction,
                since: l.since,
                addr: l.addr.clone(),
            }),
            worker: reg.workers.get(&pubkey).map(|p| p.handle.status()),
            parked: reg.parked.get(&pubkey).map(|p| p.direction),
            skipped: reg
                .announced
                .get(&pubkey)
                .map(|a| self.inner.config.addresses.plan(a).1)
                .unwrap_or_default(),
        }
    }
}
