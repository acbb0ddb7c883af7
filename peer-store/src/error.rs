//! The crate's error type.

use std::time::Duration;

/// What can go wrong opening, reading or writing a store.
///
/// Every bad file is one of these at open, never a panic and never an empty
/// store in its place; the file is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file is not a SQLite database or its pages are damaged (random
    /// bytes, a truncated file); `detail` is SQLite's finding.
    #[error("corrupt database file: {detail}")]
    Corrupt {
        /// What SQLite reported.
        detail: String,
    },
    /// The file is not a peer store: another application's database, an
    /// empty file, or one cut inside its header (this crate never leaves an
    /// empty file behind).
    #[error("not a peer store file")]
    NotAStore,
    /// The file was written by a newer version of this crate.
    #[error("schema version {found} is newer than the newest this build knows ({supported})")]
    NewerVersion {
        /// The file's schema version.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// Another connection or process holds a lock on the file, still after
    /// the busy timeout.
    #[error("database file is locked by another connection (waited {waited:?})")]
    Locked {
        /// How long the store waited for the lock.
        waited: Duration,
    },
    /// The file or its directory cannot be written.
    #[error("database file or its directory is read-only")]
    ReadOnly,
    /// The disk (or the file system holding the store) is full.
    #[error("disk full")]
    DiskFull,
    /// A stored value does not decode: a key that is not a node id, an
    /// address whose text does not parse, a negative duration.
    #[error("corrupt record in table {table}: {detail}")]
    CorruptRecord {
        /// The table holding the record.
        table: &'static str,
        /// Which value and why.
        detail: String,
    },
    /// A change holds a value the store cannot represent: nothing was applied.
    #[error("change cannot be stored: {0}")]
    Unstorable(&'static str),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The store's thread has ended (the store was closed).
    #[error("store is closed")]
    Closed,
    /// A file system call failed.
    #[error("file system error")]
    Io(#[from] std::io::Error),
    /// Any other SQLite error.
    #[cfg(feature = "sqlite")]
    #[error("sqlite error")]
    Sqlite(#[from] rusqlite::Error),
}
