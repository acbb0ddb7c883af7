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
//! - [`SqliteStore`] (cargo feature `sqlite`, on by default): one SQLite
//!   file, the default for a real node, as ldk-node and CLN keep theirs.
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
//! ```
//! use std::net::SocketAddr;
//! use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
//! use peer_store::{Change, PeerStore, Reason, SqliteConfig, SqliteStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("peers.sqlite");
//! let secp = Secp256k1::new();
//! let peer = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[7; 32])?);
//!
//! let store = SqliteStore::<SocketAddr>::open(&path, SqliteConfig::default()).await?;
//! // connect(peer, perm): on disk when this returns.
//! store.apply(vec![
//!     Change::Persist { peer, reason: Reason { user_asked: true, has_channels: false } },
//!     Change::SetUserAddrs { peer, addrs: vec!["127.0.0.1:9735".parse()?] },
//! ]).await?;
//! store.close().await?;
//!
//! // After a restart.
//! let store = SqliteStore::<SocketAddr>::open(&path, SqliteConfig::default()).await?;
//! let snapshot = store.load().await?;
//! assert_eq!(snapshot.peers[0].id, peer);
//! assert_eq!(snapshot.peers[0].user_addrs, ["127.0.0.1:9735".parse::<SocketAddr>()?]);
//! # Ok(())
//! # }
//! ```
//!
//! # The SQLite store
//!
//! One file (plus SQLite's `-wal` and `-shm` beside it while open), which
//! the `sqlite3` command-line tool reads, also while the node runs:
//!
//! ```text
//! $ sqlite3 peers.sqlite "SELECT id, user_asked, has_channels, backoff_ns / 1e9 FROM peer"
//! $ sqlite3 peers.sqlite "SELECT addr FROM peer_addr WHERE peer = '02ab…' ORDER BY kind, position"
//! $ sqlite3 peers.sqlite "SELECT peer, datetime(until_unix_ns / 1e9, 'unixepoch') FROM ban"
//! ```
//!
//! ## Tables (schema version 1)
//!
//! All `STRICT` tables. Node ids are 66 lowercase hex characters (the
//! compressed key); times are nanoseconds since the Unix epoch (signed, so
//! years 1678 to 2262 are storable: anything else is refused with
//! [`StoreError::Unstorable`]), durations are nanoseconds.
//!
//! `peer`: one row per persistent peer.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | TEXT, primary key | the node id |
//! | `user_asked` | INTEGER 0/1 | a user asked for the peer |
//! | `has_channels` | INTEGER 0/1 | the node has channels with it |
//! | `backoff_ns` | INTEGER or NULL | the backoff level, NULL if never written |
//! | `last_addr` | TEXT or NULL | the address of the last established connection |
//! | `last_connected_at_unix_ns` | INTEGER or NULL | when it was established (NULL exactly when `last_addr` is) |
//! | `last_connected_for_ns` | INTEGER or NULL | how long it lasted; NULL while live (or if it ended in a crash) |
//!
//! `peer_addr`: a peer's addresses, one row each, in the address type's text
//! form; primary key (`peer`, `kind`, `position`).
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `peer` | TEXT | the node id (a row of `peer`) |
//! | `kind` | TEXT | `user` (given by a user) or `advertised` (from its node announcement) |
//! | `position` | INTEGER | the address's place in its list, from 0 |
//! | `addr` | TEXT | the address |
//!
//! `ban`: one row per ban, independent of `peer`.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `peer` | TEXT, primary key | the banned node id |
//! | `until_unix_ns` | INTEGER | when the ban expires |
//!
//! `PRAGMA application_id` is `0x6c6e7073` ("lnps") and `PRAGMA
//! user_version` the schema version ([`SCHEMA_VERSION`]).
//!
//! ## Versions and migrations
//!
//! The schema is a list of migrations, the first creating version 1 on an
//! empty file; at open, those from the file's `user_version` on run in one
//! transaction with the new version number, so a file is at one version or
//! the next, never between. A file of a newer version is refused
//! ([`StoreError::NewerVersion`]) and left untouched.
//!
//! ## Durability
//!
//! `apply` resolves only after its transaction has committed with
//! `journal_mode = WAL` and `synchronous = FULL`. In WAL mode a commit
//! appends the transaction to the `-wal` file; with `FULL` that file is
//! fsynced before the commit returns, so a committed change survives a
//! process crash *and* a power loss or kernel crash: "on disk" as the
//! server's `connect(peer, perm)` promises. `NORMAL` would also survive a
//! process crash (the frames are in the OS's page cache before the commit
//! returns) but not a power loss, which may roll back the last commits; it
//! saves the fsync, and group commit (below) already shares that cost, so
//! the store keeps `FULL`. A change is atomic: SQLite's transaction either
//! lands whole or not at all, also across a crash mid-commit (the crash test
//! kills a writing process with SIGKILL at random moments and finds every
//! acknowledged peer whole).
//!
//! ## Threading and group commit
//!
//! The store runs on a thread of its own that owns the SQLite connection;
//! calls reach it through a channel and their answers come back through a
//! oneshot channel, so no call blocks the async runtime (not even
//! [`SqliteStore::open`], which checks the whole file). A change is encoded
//! (address text forms) on the caller's task; a load is decoded (10,000 node
//! ids to parse: tens of milliseconds) on the store's thread, and a panic in
//! the address type's `FromStr` there is resumed in the caller's task, as if
//! it had run there, while the store's thread lives on.
//!
//! When several `apply` calls are queued, the thread commits them in one
//! transaction (up to 4096 calls) and answers all of them after that one
//! commit and its one fsync: a burst of perm connects costs a few fsyncs,
//! not one each ([`SqliteStore::stats`] counts commits). If the shared
//! transaction fails, nothing of it was written, and the thread retries
//! each call in a transaction of its own, so every caller gets the outcome
//! of its own changes: one caller's failing change never fails or loses
//! another's. One exception: a lock another connection held past the busy
//! timeout concerns the file, not anyone's changes, and a retry per call
//! would wait the timeout once per call, so every call of that group gets
//! [`StoreError::Locked`] at once (nothing of theirs written).
//!
//! ## Bad files, refused at open
//!
//! [`SqliteStore::open`] creates a store only where no file exists, and
//! atomically (written as `<file>.new`, synced, then hard-linked into place,
//! which fails rather than replace a file that appeared meanwhile; a
//! `<file>.new` left by a crash is the crate's and is reset), so every
//! file at the path was once a whole store. Any other file is refused with a
//! typed error before anything is written to it (it is never overwritten,
//! and the store never starts empty in its place):
//!
//! | the file | error |
//! |---|---|
//! | not a database (random bytes) | [`StoreError::Corrupt`] |
//! | damaged or truncated pages (every page is read by `PRAGMA quick_check`) | [`StoreError::Corrupt`] |
//! | empty, cut inside its header, or another application's database | [`StoreError::NotAStore`] |
//! | from a newer version | [`StoreError::NewerVersion`] |
//! | locked by another connection beyond the busy timeout ([`SqliteConfig::with_busy_timeout`]) | [`StoreError::Locked`] |
//! | read-only, or in a read-only directory | [`StoreError::ReadOnly`] |
//! | on a full disk (from `apply` too) | [`StoreError::DiskFull`] |
//! | a value that does not decode (edited by hand), at `load` | [`StoreError::CorruptRecord`] |
//!
//! The store does not take SQLite's exclusive locking mode, so `sqlite3`
//! can read the file while a node has it open; two nodes must not share a
//! file (each would believe it owns the peers), which this crate does not
//! prevent.
//!
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
//! - `sqlite` (default): [`SqliteStore`], with SQLite compiled in
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
