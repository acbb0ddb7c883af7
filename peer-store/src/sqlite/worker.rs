//! The store's thread: owns the connection, commits queued applies together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::config::SqliteConfig;
use super::open::classify;
use super::rows::{read, RawSnapshot, Row};
use crate::error::StoreError;

/// At most this many queued `apply` calls share one transaction, so the
/// first of a long queue waits for a bounded amount of writing.
const MAX_GROUP: usize = 4096;

/// Where the answer to a call goes.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A load's continuation, with the address type erased so that the thread
/// is not generic.
pub(crate) type Decode = Box<dyn FnOnce(Result<RawSnapshot, StoreError>) + Send>;

/// A call, as the thread receives it.
pub(crate) enum Request {
    Apply {
        rows: Vec<Row>,
        reply: Reply<()>,
    },
    /// `decode` parses what was read and sends it to the caller, on this
    /// thread (parsing 10,000 node ids takes tens of milliseconds: not on
    /// the caller's runtime).
    Load {
        decode: Decode,
    },
    Close {
        reply: Reply<()>,
    },
}

/// What [`Stats`](super::Stats) reports, updated by the thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) applied: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried_groups: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Serves requests in the order they were sent until every handle is gone or
/// one asks to close; then closes the connection.
pub(crate) fn run(
    mut conn: Connection,
    config: &SqliteConfig,
    requests: Receiver<Request>,
    counters: &Counters,
) {
    let mut next = None;
    let close_reply = loop {
        let request = match next.take() {
            Some(request) => request,
            None => match requests.recv() {
                Ok(request) => request,
                Err(_) => break None,
            },
        };
        match request {
            Request::Load { decode } => decode(read(&mut conn).map_err(|e| classify(e, config))),
            Request::Close { reply } => break Some(reply),
            Request::Apply { rows, reply } => {
                let mut group = vec![(rows, reply)];
                while group.len() < MAX_GROUP {
                    match requests.try_recv() {
                        Ok(Request::Apply { rows, reply }) => group.push((rows, reply)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&mut conn, config, group, counters);
            }
        }
    };
    // Calls still queued are dropped with their reply senders: their callers
    // get `StoreError::Closed`, as do later calls.
    drop(requests);
    let closed = conn
        .close()
        .map_err(|(_, e)| classify(StoreError::Sqlite(e), config));
    if let Some(reply) = close_reply {
        let _ = reply.send(closed);
    }
}

/// Writes the batches in one transaction and commits it.
fn commit(conn: &mut Connection, batches: &[&[Row]]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for row in batches.iter().flat_map(|rows| rows.iter()) {
        row.write(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

/// Group commit: every queued call in one transaction, all answered after
/// its one commit. If that transaction fails, nothing of it was written, and
/// each call is retried alone, so each caller gets the outcome of its own
/// changes (one caller's failure never fails or loses another's changes).
///
/// Except for a lock another connection held past the busy timeout: that
/// concerns the file, not any call's changes, and a retry per call would
/// wait the timeout once per call, so every call left is answered
/// [`StoreError::Locked`] at once.
fn commit_group(
    conn: &mut Connection,
    config: &SqliteConfig,
    group: Vec<(Vec<Row>, Reply<()>)>,
    counters: &Counters,
) {
    if group.len() > 1 {
        let batches: Vec<&[Row]> = group.iter().map(|(rows, _)| rows.as_slice()).collect();
        match commit(conn, &batches).map_err(|e| classify(e, config)) {
            Ok(()) => {
                Counters::add(&counters.commits, 1);
                Counters::add(&counters.applied, group.len());
                for (_, reply) in group {
                    let _ = reply.send(Ok(()));
                }
                return;
            }
            Err(StoreError::Locked { waited }) => {
                return fail_all(group, waited, counters);
            }
            Err(_) => Counters::add(&counters.retried_groups, 1),
        }
    }
    let mut calls = group.into_iter();
    while let Some((rows, reply)) = calls.next() {
        let result = commit(conn, &[&rows]).map_err(|e| classify(e, config));
        let locked = match &result {
            Ok(()) => {
                Counters::add(&counters.commits, 1);
                Counters::add(&counters.applied, 1);
                None
            }
            Err(e) => {
                Counters::add(&counters.failed, 1);
                match e {
                    StoreError::Locked { waited } => Some(*waited),
                    _ => None,
                }
            }
        };
        let _ = reply.send(result);
        if let Some(waited) = locked {
            return fail_all(calls.collect(), waited, counters);
        }
    }
}

/// Answers every call [`StoreError::Locked`].
fn fail_all(calls: Vec<(Vec<Row>, Reply<()>)>, waited: std::time::Duration, counters: &Counters) {
    Counters::add(&counters.failed, calls.len());
    for (_, reply) in calls {
        let _ = reply.send(Err(StoreError::Locked { waited }));
    }
}
