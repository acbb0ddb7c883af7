//! A store in memory, with the semantics of the durable ones.

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bitcoin::secp256k1::PublicKey;

use crate::encode::{addr_text, nanos, unix_nanos};
use crate::error::StoreError;
use crate::record::{Ban, Change, PeerRecord, Snapshot};
use crate::store::PeerStore;

/// A [`PeerStore`] that keeps everything in memory and forgets it when the
/// last clone is dropped: for tests, demos and a node that wants no files.
///
/// It has the semantics of `SqliteStore` exactly:
/// changes apply in order and all or none, a change a durable store would
/// refuse (a duration or time out of range, an address whose text form does
/// not parse back) is refused here too with the same error, and
/// [`load`](PeerStore::load) returns peers and bans ordered by node id.
/// Clones share one store.
///
/// ```
/// use std::net::SocketAddr;
/// use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
/// use peer_store::{Change, MemoryStore, PeerStore, Reason};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peer_store::StoreError> {
/// let secp = Secp256k1::new();
/// let peer = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[7; 32]).unwrap());
/// let store = MemoryStore::<SocketAddr>::new();
/// let reason = Reason { user_asked: true, has_channels: false };
/// store.apply(vec![
///     Change::Persist { peer, reason },
///     Change::SetUserAddrs { peer, addrs: vec!["127.0.0.1:9735".parse().unwrap()] },
/// ]).await?;
/// let snapshot = store.load().await?;
/// assert_eq!(snapshot.peers[0].user_addrs.len(), 1);
/// # Ok(())
/// # }
/// ```
pub struct MemoryStore<A> {
    state: Arc<Mutex<State<A>>>,
}

struct State<A> {
    peers: BTreeMap<[u8; 33], PeerRecord<A>>,
    bans: BTreeMap<[u8; 33], Ban>,
}

impl<A> MemoryStore<A> {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                peers: BTreeMap::new(),
                bans: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<A>> {
        // The lock is only held by `apply` and `load` below, which leave the
        // state whole at every point where they could panic (only in an
        // allocation or a user's `Clone`), so a poisoned lock is still true.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<A> Default for MemoryStore<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A> Clone for MemoryStore<A> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<A> fmt::Debug for MemoryStore<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("peers", &state.peers.len())
            .field("bans", &state.bans.len())
            .finish()
    }
}

/// Refuses what `SqliteStore` would refuse.
fn check<A: Display + FromStr>(change: &Change<A>) -> Result<(), StoreError> {
    let addrs = |addrs: &[A]| addrs.iter().try_for_each(|a| addr_text(a).map(drop));
    match change {
        Change::SetUserAddrs { addrs: a, .. } | Change::SetAdvertisedAddrs { addrs: a, .. } => {
            addrs(a)
        }
        Change::SetLastConnection { connection, .. } => {
            addr_text(&connection.addr)?;
            unix_nanos(connection.at, "connection time out of range")?;
            if let Some(lasted) = connection.lasted {
                nanos(lasted, "connection length out of range")?;
            }
            Ok(())
        }
        Change::SetBackoff { level, .. } => nanos(*level, "backoff level out of range").map(drop),
        Change::Ban(ban) => unix_nanos(ban.until, "ban expiry out of range").map(drop),
        Change::Persist { .. } | Change::Remove { .. } | Change::Unban { .. } => Ok(()),
    }
}

fn key(peer: &PublicKey) -> [u8; 33] {
    peer.serialize()
}

impl<A> State<A> {
    fn apply(&mut self, change: Change<A>) {
        match change {
            Change::Persist { peer, reason } => {
                self.peers
                    .entry(key(&peer))
                    .and_modify(|record| record.reason = reason)
                    .or_insert_with(|| PeerRecord::new(peer, reason));
            }
            Change::SetUserAddrs { peer, addrs } => {
                if let Some(record) = self.peers.get_mut(&key(&peer)) {
                    record.user_addrs = addrs;
                }
            }
            Change::SetAdvertisedAddrs { peer, addrs } => {
                if let Some(record) = self.peers.get_mut(&key(&peer)) {
                    record.advertised_addrs = addrs;
                }
            }
            Change::SetLastConnection { peer, connection } => {
                if let Some(record) = self.peers.get_mut(&key(&peer)) {
                    record.last_connection = Some(connection);
                }
            }
            Change::SetBackoff { peer, level } => {
                if let Some(record) = self.peers.get_mut(&key(&peer)) {
                    record.backoff = Some(level);
                }
            }
            Change::Remove { peer } => {
                self.peers.remove(&key(&peer));
            }
            Change::Ban(ban) => {
                self.bans.insert(key(&ban.peer), ban);
            }
            Change::Unban { peer } => {
                self.bans.remove(&key(&peer));
            }
        }
    }
}

impl<A> PeerStore for MemoryStore<A>
where
    A: Clone + Display + FromStr + Send + 'static,
{
    type Addr = A;
    type Error = StoreError;

    async fn load(&self) -> Result<Snapshot<A>, StoreError> {
        let state = self.lock();
        Ok(Snapshot::new(
            state.peers.values().cloned().collect(),
            state.bans.values().copied().collect(),
        ))
    }

    async fn apply(&self, changes: Vec<Change<A>>) -> Result<(), StoreError> {
        // Every check before any edit: all or none.
        changes.iter().try_for_each(check)?;
        let mut state = self.lock();
        for change in changes {
            state.apply(change);
        }
        Ok(())
    }
}
