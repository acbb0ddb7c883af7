//! The server's state: who is persistent, who is connected. Only ever touched
//! under the server's lock, never across an `.await`.
//!
//! It holds the server's own facts only. A peer's address book, backoff
//! level and intent belong to its worker; the server keeps the latest
//! announcement of each peer (the gossip a new worker starts from, and what
//! status shows as skipped), never a copy of what a worker decided.

use std::collections::{HashMap, HashSet};

use bitcoin::secp256k1::PublicKey;
use conn_worker::WorkerHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{Direction, NetAddress, NodeAddr};

/// The handle type of a server's workers.
pub(crate) type Handle<E> = WorkerHandle<PublicKey, NodeAddr, E>;

/// A persistent peer: one worker, and whether a user asked for it.
pub(crate) struct Persistent<E> {
    pub(crate) handle: Handle<E>,
    pub(crate) perm: bool,
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

pub(crate) struct Registry<E> {
    pub(crate) workers: HashMap<PublicKey, Persistent<E>>,
    pub(crate) conns: HashMap<PublicKey, Live>,
    /// The latest node announcement of each peer (or its startup list).
    pub(crate) announced: HashMap<PublicKey, Vec<NetAddress>>,
    /// Open channels per peer, as the application reports them.
    pub(crate) channels: HashMap<PublicKey, usize>,
    pub(crate) banned: HashSet<PublicKey>,
    pub(crate) next_conn_id: u64,
    pub(crate) shut_down: bool,
}

impl<E> Default for Registry<E> {
    fn default() -> Self {
        Self {
            workers: HashMap::new(),
            conns: HashMap::new(),
            announced: HashMap::new(),
            channels: HashMap::new(),
            banned: HashSet::new(),
            next_conn_id: 0,
            shut_down: false,
        }
    }
}

impl<E> Registry<E> {
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
