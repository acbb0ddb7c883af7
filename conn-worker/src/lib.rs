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
//! Every decision is made by a sans-IO [`Planner`] (a pure state machine
//! that takes `now`); the worker task only sleeps until the planner's next
//! deadline, runs the attempts it asks for and feeds the results back. The
//! planner can be used, and is property-tested, without a runtime.
//!
//! - The worker owns the peer's address book: user-given addresses
//!   ([`WorkerHandle::connect`], latest first, never dropped by an
//!   announcement), advertised ones ([`WorkerHandle::update_addrs`],
//!   replaced by each announcement) and the last good one. A round tries
//!   the last good address first, then the user's, then the advertised.
//! - A connect waits its delay, then runs a round. The next address starts
//!   as soon as the previous attempt fails, or after [`Config::stagger`]
//!   while it is still running if [`Config::max_parallel`] allows more than
//!   one attempt in flight (the default, 1, is lnd's sequential behaviour).
//!   [`When::Now`] dials the given address within one stagger whatever the
//!   worker is doing, even in a round that already tried it.
//! - The first success wins: the others are cancelled, the connection is
//!   delivered in [`EventKind::Connected`], and the worker goes idle. If
//!   every address fails, the worker waits the next backoff (the policy's
//!   jittered first step, then [`backoff::Policy::after_failure`]) and tries
//!   again. A zero delay never sticks.
//! - After a connection that lasted the policy's stable duration ends
//!   ([`When::AfterDisconnect`]), the worker is in its reconnect phase
//!   ([`backoff::Reconnect`]): its waits stay under
//!   [`Policy::reconnect_cap`] (10 s by default) for a bounded number of
//!   rounds, so a restarted peer is dialed within the cap of being back;
//!   then the backoff doubles again. A peer that never connected or whose
//!   connections are shorter than stable never enters it.
//! - A dialer's error, a panic inside the dialer and an attempt that runs
//!   past [`Config::attempt_timeout`] all fail that attempt
//!   ([`DialFailure`]); the worker carries on.
//! - A stand-down during a wait or a round cancels it. A dial that completes
//!   after it was cancelled is dropped (closed), reported as
//!   [`EventKind::DialCancelled`], never delivered.
//! - An address update never lengthens a wait; it cuts one to at most the
//!   policy's `min` if it brings an address never seen, or once per backoff
//!   level one the worker does not list. The backoff level is kept.
//! - All workers of a [`Spawner`] share one limit on dials in flight
//!   ([`Config::max_dials_in_flight`], 10 by default as Core Lightning).
//!   Waiting for a slot is cancelled like a dial.

//! # The mailbox
//!
//! Commands never block, never fail while the worker lives (after a stop
//! they return [`Error::Stopped`]) and take bounded memory at any rate,
//! because they coalesce: the mailbox holds only the latest intent (connect
//! with its `When`, or stand down), the latest advertised list, the
//! user-given addresses posted since it last looked (bounded), the latest
//! disconnect record and the latest good address. The worker takes them all
//! at once when it wakes.
//! So a connect then a stand-down posted before the worker looks leaves it
//! idle, as processing both in turn would; an address update is never lost
//! to a later connect without addresses; and a disconnect record steps the
//! backoff level even if a later connect replaces its intent. Two
//! disconnects posted before the worker looks step the level once.
//!
//! Stop is not a mailbox command: it cancels the worker's
//! [`CancellationToken`], a child of the
//! spawner's root token, so it cannot be lost or overtaken; once
//! [`WorkerHandle::stop`] returns, every attempt's token is cancelled and
//! the worker starts no new attempt. Dropping the last handle stops the
//! worker too. Workers run on the spawner's
//! [`TaskTracker`], so an owner can wait for
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
mod planner;
mod rng;
mod shared;
mod slots;
mod spawner;
mod status;
mod worker;

pub use backoff::{Policy, Reconnect};
pub use clock::{deadline_after, Clock, TokioClock};
pub use command::When;
pub use config::{Config, ConfigError};
pub use dialer::{dial_fn, Dialer, FailureClass, FnDialer};
pub use error::Error;
pub use event::{DialFailure, DialerEvent, DialerEvents, Event, EventKind, Events, StopReason};
pub use handle::WorkerHandle;
pub use planner::{Action, AttemptId, Phase, Planner, Report, MAX_USER_ADDRS};
pub use slots::{DialSlots, Priority, SlotPermit};
pub use spawner::Spawner;
pub use status::{State, Status};
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;
pub use worker::panic_message;
