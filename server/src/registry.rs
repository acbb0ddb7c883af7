//! The server's state: who is persistent, who is connected. Only ever touched
//! under the server's lock, never across an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use conn_worker::WorkerHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{Direction, NetAddress};

/// A persistent peer: one worker, and whether a user asked for it.
pub(crate) struct Persistent<D: conn_worker::Dialer> {
    pub(crate) handle: WorkerHandle<PublicKey, Arc<D>>,
    pub(crate) perm: bool,
    /// Addresses a user gave in perm connects, latest first.
    pub(crate) user_addrs: Vec<NetAddress>,
}

impl<D: conn_worker::Dialer> Persistent<D> {
    /// How many user-given addresses are kept.
    const USER_ADDRS: usize = 8;

    /// Keeps a user-given address (latest first, a few at most).
    pub(crate) fn remember(&mut self, addr: NetAddress) {
        self.user_addrs.retain(|a| *a != addr);
        self.user_addrs.insert(0, addr);
        self.user_addrs.truncate(Self::USER_ADDRS);
    }
}

/// A live connection.
pub(crate) struct Live {
    /// Tells this connection from a later one to the same peer.
    pub(crate) id: u64,
    pub(crate) direction: Direction,
    pub(crate) since: Instant,
    pub(crate) addr: Option<NetAddress>,
    /// Cancels the peer handler running this connection.
    pub(crate) cancel: CancellationToken,
    /// Aborts that handler's task if it ignores `cancel` at shutdown.
    pub(crate) task: tokio::task::AbortHandle,
}

pub(crate) struct Registry<D: conn_worker::Dialer> {
    pub(crate) workers: HashMap<PublicKey, Persistent<D>>,
    pub(crate) conns: HashMap<PublicKey, Live>,
    /// Addresses from node announcements (or startup).
    pub(crate) advertised: HashMap<PublicKey, Vec<NetAddress>>,
    /// The address our last outbound connection to a peer used.
    pub(crate) last_dialed: HashMap<PublicKey, NetAddress>,
    /// Open channels per peer, as the application reports them.
    pub(crate) channels: HashMap<PublicKey, usize>,
    pub(crate) banned: HashSet<PublicKey>,
    pub(crate) next_conn_id: u64,
    pub(crate) shut_down: bool,
}

impl<D: conn_worker::Dialer> Default for Registry<D> {
    fn default() -> Self {
        Self {
            workers: HashMap::new(),
            conns: HashMap::new(),
            advertised: HashMap::new(),
            last_dialed: HashMap::new(),
            channels: HashMap::new(),
            banned: HashSet::new(),
            next_conn_id: 0,
            shut_down: false,
        }
    }
}

impl<D: conn_worker::Dialer> Registry<D> {
    /// The addresses to redial a peer at: those a user gave in perm
    /// connects, then the advertised ones, then the one we last dialed (if
    /// not among them; a stale one is thus tried last). Never an inbound
    /// peer's source address: its port is ephemeral (lnd issues #10086,
    /// #9698).
    pub(crate) fn redial_addrs(&self, peer: &PublicKey) -> Vec<NetAddress> {
        let user = self
            .workers
            .get(peer)
            .map(|p| p.user_addrs.as_slice())
            .unwrap_or_default();
        let advertised = self
            .advertised
            .get(peer)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut addrs: Vec<NetAddress> = Vec::with_capacity(user.len() + advertised.len() + 1);
        for a in user
            .iter()
            .chain(advertised)
            .chain(self.last_dialed.get(peer))
        {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        addrs
    }

    /// Removes a peer's worker and stops it. Returns whether there was one.
    pub(crate) fn stop_worker(&mut self, peer: &PublicKey) -> bool {
        match self.workers.remove(peer) {
            Some(p) => {
                p.handle.stop();
                true
            }
            None => false,
        }
    }
}
