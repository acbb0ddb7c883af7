//! The server's state: who is persistent, who is connected. Only ever touched
//! under the server's lock, never across an `.await`.
//!
//! It holds the server's own facts only. A peer's address book, backoff
//! level and intent belong to its worker; the server keeps the latest
//! announcement of each peer (the gossip a new worker starts from, and what
//! status shows as skipped), never a copy of what a worker decided.

use std::collections::HashMap;
use std::time::SystemTime;

use bitcoin::secp256k1::PublicKey;
use conn_worker::WorkerHandle;
use tokio::task::AbortHandle;
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

/// A new connection that lost the duplicate rule, held unread in case the
/// peer closes the winner.
pub(crate) struct Parked<C> {
    pub(crate) id: u64,
    pub(crate) conn: C,
    pub(crate) direction: Direction,
    pub(crate) addr: Option<NetAddress>,
    pub(crate) until: Instant,
    /// Ends the task that drops it at `until`, when it leaves the registry
    /// earlier.
    pub(crate) _timer: tokio_util::sync::DropGuard,
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
    /// It replaced another connection in a duplicate until then: an end
    /// before is the peer's choice, not a failure.
    pub(crate) contested_until: Option<Instant>,
}

pub(crate) struct Registry<C, E> {
    pub(crate) workers: HashMap<PublicKey, Persistent<E>>,
    pub(crate) conns: HashMap<PublicKey, Live>,
    pub(crate) parked: HashMap<PublicKey, Parked<C>>,
    /// The latest node announcement of each peer (or its startup list).
    pub(crate) announced: HashMap<PublicKey, Vec<NetAddress>>,
    /// Open channels per peer, as the application reports them.
    pub(crate) channels: HashMap<PublicKey, usize>,
    /// Banned peers, and when each ban ends (`None`: never).
    pub(crate) banned: HashMap<PublicKey, Option<SystemTime>>,
    /// Every connection whose handler has not ended, by connection id,
    /// current or not (a disconnected or replaced connection's handler may
    /// still be running), with its task's abort handle once it is spawned:
    /// what shutdown aborts after its grace.
    pub(crate) running: HashMap<u64, Option<AbortHandle>>,
    pub(crate) next_conn_id: u64,
    pub(crate) shut_down: bool,
    /// Shutdown's grace is over: a handler spawned from now on is aborted
    /// as soon as it is.
    pub(crate) aborting: bool,
}

impl<C, E> Default for Registry<C, E> {
    fn default() -> Self {
        Self {
            workers: HashMap::new(),
            conns: HashMap::new(),
            parked: HashMap::new(),
            announced: HashMap::new(),
            channels: HashMap::new(),
            banned: HashMap::new(),
            running: HashMap::new(),
            next_conn_id: 0,
            shut_down: false,
            aborting: false,
        }
    }
}

impl<C, E> Registry<C, E> {
    /// Whether the peer is banned now (an expired ban is not).
    pub(crate) fn is_banned(&self, peer: &PublicKey) -> bool {
        self.banned
            .get(peer)
            .is_some_and(|until| until.is_none_or(|t| t > SystemTime::now()))
    }

    /// Lifts the peer's ban if it is the one ending at `until`.
    pub(crate) fn unban_ended(&mut self, peer: &PublicKey, until: SystemTime) -> bool {
        let same = self.banned.get(peer) == Some(&Some(until));
        if same {
            self.banned.remove(peer);
        }
        same
    }

    /// Whether prune would stop the peer's worker: it is persistent, not
    /// perm, and has no open channel.
    pub(crate) fn prunable(&self, peer: &PublicKey) -> bool {
        self.workers.get(peer).is_some_and(|p| !p.perm) && !self.channels.contains_key(peer)
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
