//! Where the daemon keeps its persistent peers and bans: `peers.sqlite` in
//! the data directory, a [`peer_store::SqliteStore`] (its crate docs
//! describe the tables, which the `sqlite3` tool reads while the daemon
//! runs). The node writes through it ([`server::Server::open`]): each
//! operation of the control API that changes a peer or a ban returns only
//! once the change is durable, or with an error and nothing changed.

use std::path::Path;

use peer_store::{SqliteConfig, SqliteStore};
use server::NetAddress;

/// The store's file name inside the data directory.
pub(crate) const STORE_FILE: &str = "peers.sqlite";

/// Why the store could not be opened or read: corrupt, from a newer
/// version, locked by another process, unreadable. The file is left as it
/// was.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("peer store {path}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Opens (or creates) the store in `dir`.
pub(crate) async fn open(dir: &Path) -> Result<SqliteStore<NetAddress>, StoreError> {
    let path = dir.join(STORE_FILE);
    SqliteStore::open(&path, SqliteConfig::default())
        .await
        .map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(e),
        })
}
