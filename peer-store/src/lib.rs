//! Durable storage of a Lightning node's persistent peers and bans.

mod encode;
mod error;
mod memory;
mod record;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use bitcoin::secp256k1::PublicKey;

pub use crate::error::StoreError;
pub use crate::memory::MemoryStore;
pub use crate::record::{Ban, Change, LastConnection, PeerRecord, Reason, Snapshot};
#[cfg(feature = "sqlite")]
pub use crate::sqlite::{SqliteConfig, SqliteStore, Stats, DEFAULT_BUSY_TIMEOUT, SCHEMA_VERSION};
pub use crate::store::PeerStore;
