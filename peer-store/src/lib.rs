//! Durable storage of a Lightning node's persistent peers and bans, so that
//! they survive a restart.
//!
//! A server writes every change of what it knows about its persistent peers
//! through a [`PeerStore`] before it reports the operation done, and reads
//! the whole store back at startup. This crate holds:
//!
//! - the interface: [`PeerStore`] (`load` everything, `apply` a list of
//!   [`Change`]s atomically and durably), the data it carries
//!   ([`Snapshot`], [`PeerRecord`], [`Reason`], [`LastConnection`], [`Ban`])
//!   and one error type, [`StoreError`];
//! - [`MemoryStore`]: the same semantics in memory, for tests and demos;
//! - `SqliteStore` (cargo feature `sqlite`, on by default; see its section
//!   below): one SQLite file, the default for a real node, as ldk-node and
//!   CLN keep theirs.
//!
//! What it does not do: decide anything. It has no clock (bans are returned
//! with their expiry; [`Snapshot::bans_active_at`] filters them), no policy
//! (a reason is stored as given; never downgrading `perm` is the server's
//! rule) and no live connection state (which connections are up, dials in
//! flight). Addresses are any type with a text form that parses back
//! (`A: Display + FromStr`); peer ids are secp256k1 public keys.
//!
//! Per persistent peer it stores why it is persistent (a user asked, the
//! node has channels with it; both can be true), the user-given addresses
//! and the advertised ones (each list in order), the last good address with
//! when that connection was established and how long it lasted, and the
//! backoff level; and every ban with its expiry.
//!
//! A server is generic over the store; here with the in-memory one:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, SystemTime};
//! use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
//! use peer_store::{Ban, Change, MemoryStore, PeerStore, Reason};
//!
//! /// At startup: every stored persistent peer, user-given addresses first.
//! async fn startup<S: PeerStore>(store: &S) -> Result<Vec<(PublicKey, Vec<S::Addr>)>, S::Error> {
//!     let snapshot = store.load().await?;
//!     Ok(snapshot.peers.into_iter().map(|p| (p.id, p.user_addrs)).collect())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secp = Secp256k1::new();
//! let key = |b| PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[b; 32]).unwrap());
//! let (peer, spammer) = (key(1), key(2));
//! let store = MemoryStore::<SocketAddr>::new();
//! // connect(peer, perm), then its worker reaches a backoff level of 4 s.
//! store.apply(vec![
//!     Change::Persist { peer, reason: Reason { user_asked: true, has_channels: false } },
//!     Change::SetUserAddrs { peer, addrs: vec!["127.0.0.1:9735".parse()?] },
//! ]).await?;
//! store.apply(vec![Change::SetBackoff { peer, level: Duration::from_secs(4) }]).await?;
//! // ban(spammer, one hour).
//! let until = SystemTime::now() + Duration::from_secs(3600);
//! store.apply(vec![Change::Ban(Ban { peer: spammer, until })]).await?;
//!
//! let peers = startup(&store).await?;
//! assert_eq!(peers, [(peer, vec!["127.0.0.1:9735".parse()?])]);
//! assert_eq!(store.load().await?.bans_active_at(SystemTime::now()).count(), 1);
//! # Ok(())
//! # }
//! ```
//!
#![cfg_attr(feature = "sqlite", doc = include_str!("sqlite/doc.md"))]
//! # Backing `PeerStore` with LDK's `KVStore`
//!
//! A node built on LDK already persists through
//! `lightning::util::persist::KVStore` (namespaced keys to byte blobs, with
//! per-key write ordering but no transactions across keys). A `PeerStore`
//! on it would use:
//!
//! - primary namespace `peer_store`, secondary namespaces `peers` and
//!   `bans`; the key is the node id's 66 hex characters (inside LDK's key
//!   alphabet `[A-Za-z0-9_-]` and its 120-character limit);
//! - one value per peer: the whole record serialized, best as an LDK TLV
//!   stream (`impl_writeable_tlv_based!` on a struct of the fields above,
//!   addresses in their text form or as BOLT 7 `SocketAddress`), so that
//!   later fields are odd TLV types older readers skip: that is the
//!   schema version;
//! - one value per ban: its expiry, 8 bytes of Unix seconds or nanoseconds.
//!
//! `load` is `list(peer_store, peers)` then a `read` of each key (and the
//! same for bans); a value that does not decode is a corrupt-record error,
//! never a skipped peer. `apply` keeps the records in memory too (loaded at
//! startup), applies the changes to that copy, then `write`s the new value of
//! each peer the changes touched and `remove`s (not lazily) each removed
//! peer's key, resolving after every one of those futures has; the changes
//! to one peer are then atomic, because its whole record is one value.
//! Atomicity across peers needs more than `KVStore` gives: either keep to one
//! peer per `apply` (each server operation touches one peer), or write the
//! whole list of changes under a journal key first, then the peers' keys,
//! then remove the journal, and replay a journal found at `load`. Group
//! commit is the `KVStore`'s own business (a SQLite-backed one can batch;
//! a file-per-key one fsyncs each file).
//!
//! # Cargo features
//!
//! - `sqlite` (default): `SqliteStore`, with SQLite compiled in
//!   (`rusqlite`'s `bundled`). Without it the crate is the interface,
//!   its types and [`MemoryStore`].

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
