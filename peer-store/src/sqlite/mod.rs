//! The default store: one SQLite file, written by a thread of its own.

mod config;
mod open;
mod rows;
mod schema;
mod worker;

use std::fmt::{self, Display};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;

use tokio::sync::oneshot;

pub use self::config::{SqliteConfig, DEFAULT_BUSY_TIMEOUT};
use self::open::{io_error, open};
use self::rows::{decode, encode};
use self::worker::{run, Counters, Decode, Request};
use crate::error::StoreError;
use crate::record::{Change, Snapshot};
use crate::store::PeerStore;

/// The schema version this build writes (`PRAGMA user_version`), and the
/// newest it opens.
pub const SCHEMA_VERSION: i64 = schema::CURRENT_VERSION;

/// A [`PeerStore`] in one SQLite file (WAL mode, `synchronous = FULL`),
/// served by a thread that owns the connection; see the crate docs for the
/// tables, the durability and the group commit.
///
/// Cheap to clone: clones are handles to the same thread, which ends when the
/// last handle is dropped or [`close`](Self::close) is called.
pub struct SqliteStore<A> {
    requests: mpsc::Sender<Request>,
    counters: Arc<Counters>,
    addr: PhantomData<fn() -> A>,
}

/// What a [`SqliteStore`] has done since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Write transactions committed. Each is one `fsync` of the WAL file
    /// (WAL mode, `synchronous = FULL`); checkpoints add their own (two each,
    /// about one per 1000 pages written).
    pub commits: u64,
    /// `apply` calls whose changes were committed.
    pub applied: u64,
    /// `apply` calls the store's thread answered with an error (nothing of
    /// theirs written). Calls refused before reaching it
    /// ([`StoreError::Unstorable`], [`StoreError::Closed`]) are not counted.
    pub failed: u64,
    /// Groups of queued calls whose shared transaction failed, after which
    /// each call was retried in a transaction of its own.
    pub retried_groups: u64,
}

impl<A> SqliteStore<A> {
    /// Opens the store file at `path`, creating it if there is none, on a
    /// new thread (the caller's runtime is never blocked). Checks the whole
    /// file first: a file that is not a whole store of a known version is an
    /// error, and is left as it was.
    pub async fn open(path: impl Into<PathBuf>, config: SqliteConfig) -> Result<Self, StoreError> {
        let path = path.into();
        let (requests, receiver) = mpsc::channel();
        let (opened, is_open) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        thread::Builder::new()
            .name("peer-store".into())
            .spawn(move || match open(&path, &config) {
                Ok(conn) => {
                    if opened.send(Ok(())).is_ok() {
                        run(conn, &config, receiver, &thread_counters);
                    }
                }
                Err(e) => {
                    let _ = opened.send(Err(open::classify(e, &config)));
                }
            })
            .map_err(io_error)?;
        is_open.await.map_err(|_| StoreError::Closed)??;
        Ok(Self {
            requests,
            counters,
            addr: PhantomData,
        })
    }

    /// Counters of commits and calls.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            commits: c.commits.load(Ordering::Relaxed),
            applied: c.applied.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried_groups: c.retried_groups.load(Ordering::Relaxed),
        }
    }

    /// Closes the store once the calls sent before are answered, and
    /// resolves when the file is closed (the WAL checkpointed). Calls through
    /// other clones after this fail with [`StoreError::Closed`].
    pub async fn close(self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Close { reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl<A> Clone for SqliteStore<A> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            counters: Arc::clone(&self.counters),
            addr: PhantomData,
        }
    }
}

impl<A> fmt::Debug for SqliteStore<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<A> PeerStore for SqliteStore<A>
where
    A: Display + FromStr + Send + 'static,
{
    type Addr = A;
    type Error = StoreError;

    async fn load(&self) -> Result<Snapshot<A>, StoreError> {
        let (reply, answer) = oneshot::channel();
        // Runs on the store's thread. A panic in `A::from_str` is caught
        // there and resumed here, as if the parsing had run on this task:
        // the thread lives on.
        let decode: Decode = Box::new(move |raw| {
            let decoded = panic::catch_unwind(AssertUnwindSafe(|| raw.and_then(decode::<A>)));
            let _ = reply.send(decoded);
        });
        self.requests
            .send(Request::Load { decode })
            .map_err(|_| StoreError::Closed)?;
        match answer.await.map_err(|_| StoreError::Closed)? {
            Ok(snapshot) => snapshot,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    async fn apply(&self, changes: Vec<Change<A>>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let rows = changes.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        drop(changes);
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Apply { rows, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}
