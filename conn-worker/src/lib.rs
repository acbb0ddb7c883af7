//! One task per peer that dials, waits and retries: lnd PR #10640's
//! per-peer connection worker, made generic and with that PR's defects made
//! impossible.
//!
//! A worker owns one peer's whole dial / retry / backoff life. Its owner
//! (a registry of peers, for example) holds a cheap [`WorkerHandle`] and
//! posts commands: [`connect`](WorkerHandle::connect) (now, after a delay, or
//! after a disconnect, from which the worker computes the delay with the
//! [`backoff`] crate), [`update_addrs`](WorkerHandle::update_addrs),
//! [`stand_down`](WorkerHandle::stand_down) and [`stop`](WorkerHandle::stop).
//! The worker reports each step as an [`Event`] on a channel the owner drains,
//! and answers [`status`](WorkerHandle::status) with a snapshot.
//!
//! What it does not do: nothing here knows about Lightning, keys, BOLT 8 or
//! sockets. Dialing is a [`Dialer`] (any closure, through [`dial_fn`]), time
//! is a [`Clock`] ([`TokioClock`] for real, a manual clock in tests), and the
//! peer id is any cloneable type.
//!
//! # Behaviour
//!
//! - A connect waits its delay, then runs a round: the last known good
//!   address first, then the others in the order given. The next address
//!   starts as soon as the previous attempt fails, or after
//!   [`Config::stagger`] while it is still running if
//!   [`Config::max_parallel`] allows more than one attempt in flight (the
//!   default, 1, is lnd's sequential behaviour).
//! - The first success wins: the others are cancelled, the connection is
//!   delivered in [`EventKind::Connected`], and the worker goes idle. If
//!   every address fails, the worker waits the next backoff
//!   ([`backoff::Policy::after_failure`], `min` after the first failed round)
//!   and tries again. A zero delay never sticks: the level never goes below
//!   the policy's `min`.
//! - A connect or stand-down during a wait or a round cancels it and
//!   re-plans at once. A dial that completes after it was cancelled is
//!   dropped (closed), reported as [`EventKind::DialCancelled`], never
//!   delivered.
//! - An address update never lengthens a wait; if it brings a new address,
//!   the wait is cut to at most the policy's `min`. The backoff level is
//!   kept.
//! - All workers of a [`Spawner`] share one limit on dials in flight
//!   ([`Config::max_dials_in_flight`], 10 by default as Core Lightning).
//!   Waiting for a slot is cancelled like a dial.
//!
//! # The mailbox
//!
//! Commands never block, never fail while the worker lives (after a stop
//! they return [`Error::Stopped`]) and take bounded memory at any rate,
//! because they coalesce: the mailbox holds only the latest intent (connect
//! with its `When`, or stand down), the latest address list, and the latest
//! disconnect record. The worker takes all three at once when it wakes.
//! So a connect then a stand-down posted before the worker looks leaves it
//! idle, as processing both in turn would; an address update is never lost
//! to a later connect without addresses; and a disconnect record steps the
//! backoff level even if a later connect replaces its intent. Two
//! disconnects posted before the worker looks step the level once.
//!
//! Stop is not a mailbox command: it cancels the worker's
//! [`CancellationToken`](tokio_util::sync::CancellationToken), a child of the
//! spawner's root token, so it cannot be lost or overtaken; once
//! [`WorkerHandle::stop`] returns, every attempt's token is cancelled and
//! the worker starts no new attempt. Dropping the last handle stops the
//! worker too. Workers run on the spawner's
//! [`TaskTracker`](tokio_util::task::TaskTracker), so an owner can wait for
//! every one to end.
//!
//! # Example
//!
//! ```
//! use conn_worker::{dial_fn, Config, EventKind, Spawner, TokioClock, When};
//! use std::io;
//! use tokio_util::{sync::CancellationToken, task::TaskTracker};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A dialer from a closure: address 2 answers, the others refuse.
//! let dialer = dial_fn(|addr: u32, _cancel| async move {
//!     if addr == 2 {
//!         Ok(format!("connection to {addr}"))
//!     } else {
//!         Err(io::Error::other("refused"))
//!     }
//! });
//! let root = CancellationToken::new();
//! let tracker = TaskTracker::new();
//! let (spawner, mut events) = Spawner::new(TokioClock, Config::default(), root.clone(), tracker.clone());
//!
//! let worker = spawner.spawn("alice", dialer);
//! worker.connect(Some(vec![1, 2, 3]), When::Now).unwrap();
//!
//! while let Some(event) = events.recv().await {
//!     if let EventKind::Connected { addr, conn } = event.kind {
//!         assert_eq!((event.peer, addr, conn.as_str()), ("alice", 2, "connection to 2"));
//!         break;
//!     }
//! }
//!
//! // Shutdown: cancel the root, wait for every worker to end.
//! root.cancel();
//! tracker.close();
//! tracker.wait().await;
//! # }
//! ```

mod clock;
mod command;
mod config;
mod dialer;
mod error;
mod event;
mod handle;
mod rng;
mod spawner;
mod status;
mod worker;

pub use backoff::Policy;
pub use clock::{deadline_after, Clock, TokioClock};
pub use command::When;
pub use config::Config;
pub use dialer::{dial_fn, Dialer, FnDialer};
pub use error::Error;
pub use event::{Event, EventKind, Events};
pub use handle::WorkerHandle;
pub use spawner::Spawner;
pub use status::{State, Status};
