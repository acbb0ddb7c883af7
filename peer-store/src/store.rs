//! The interface a server writes through.

use std::future::Future;

use crate::record::{Change, Snapshot};

/// Durable storage of a node's persistent peers and bans.
///
/// The server reads the whole store once at startup ([`load`](Self::load))
/// and writes every change through [`apply`](Self::apply) before it reports
/// the operation done. Implement it to keep peers in your node's own
/// database; [`MemoryStore`](crate::MemoryStore) is the reference for the
/// semantics.
///
/// Both methods must not block the async runtime: do file or database work
/// on a thread of your own (as `SqliteStore` does) or
/// in `spawn_blocking`. Dropping a returned future does not cancel the
/// operation: the changes may still be applied.
pub trait PeerStore: Send + Sync + 'static {
    /// The address type stored for peers.
    type Addr: Send + 'static;
    /// The error of this store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Everything the store holds.
    fn load(&self) -> impl Future<Output = Result<Snapshot<Self::Addr>, Self::Error>> + Send;

    /// Applies `changes` in order, atomically (all or none), and resolves
    /// only once they are durable. On an error nothing was applied.
    fn apply(
        &self,
        changes: Vec<Change<Self::Addr>>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
