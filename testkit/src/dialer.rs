//! A scripted dialer that records every attempt.

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Debug};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use conn_worker::{Clock, Dialer, FailureClass};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{Key, ManualClock};

/// What one dial does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Behavior {
    /// Fails at once with [`MockError::Refused`].
    Fail,
    /// Connects at once.
    Succeed,
    /// Never completes; ends with [`MockError::Cancelled`] when cancelled.
    Hang,
    /// Fails after this long on the clock (or ends when cancelled).
    FailAfter(Duration),
    /// Connects after this long on the clock (or ends when cancelled).
    SucceedAfter(Duration),
    /// Connects after this long on the clock and ignores cancellation (as
    /// lnd's dialer ignores its context): the worker must drop it.
    SucceedAfterIgnoringCancel(Duration),
    /// Panics inside the dial future (a buggy dialer).
    Panic,
}

/// Why a mock dial failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// The script said fail.
    #[error("connection refused")]
    Refused,
    /// The attempt's token fired.
    #[error("dial cancelled")]
    Cancelled,
}

/// How a recorded attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Still in flight.
    Pending,
    /// Returned an error (including [`MockError::Cancelled`]).
    Failed,
    /// Returned a connection.
    Connected,
    /// The future was dropped before it completed.
    Dropped,
}

/// One recorded dial.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Attempt<P, A> {
    /// The peer label of the dialer that made it (see [`MockDialer::for_peer`]).
    pub peer: Option<P>,
    /// The address dialed.
    pub addr: A,
    /// When the dialer was called.
    pub started: Instant,
    /// When it ended (returned or dropped).
    pub ended: Option<Instant>,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether its token was cancelled or its future dropped before it
    /// completed.
    pub cancelled: bool,
}

/// A connection made by a [`MockDialer`]; the dialer counts those still
/// open (not dropped).
pub struct MockConn {
    id: u64,
    open: Arc<AtomicUsize>,
}

impl MockConn {
    /// The connection's serial number (in order of creation, from 0).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Debug for MockConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConn").field("id", &self.id).finish()
    }
}

impl Drop for MockConn {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Record<P, A> {
    attempt: Attempt<P, A>,
    token: CancellationToken,
}

struct State<P, A> {
    scripts: HashMap<A, VecDeque<Behavior>>,
    defaults: HashMap<A, Behavior>,
    fallback: Behavior,
    records: Vec<Record<P, A>>,
    in_flight: usize,
    max_in_flight: usize,
    in_flight_by_peer: HashMap<P, usize>,
    max_by_peer: HashMap<P, usize>,
    conns_made: u64,
}

struct Shared<P, A> {
    clock: ManualClock,
    state: Mutex<State<P, A>>,
    open: Arc<AtomicUsize>,
}

/// A [`Dialer`] scripted per address, on a [`ManualClock`].
///
/// Each address has a queue of [`Behavior`]s used one per dial, then a
/// default for that address ([`set`](Self::set)), then the dialer's fallback
/// ([`Behavior::Fail`] unless [`set_fallback`](Self::set_fallback) says
/// otherwise). Every attempt is recorded ([`attempts`](Self::attempts)), and
/// the most dials seen in flight at once is kept per peer label and in total.
///
/// Clones share scripts and records; [`for_peer`](Self::for_peer) gives a
/// clone that labels its attempts with a peer.
pub struct MockDialer<P, A> {
    shared: Arc<Shared<P, A>>,
    peer: Option<P>,
}

impl<P: Clone, A> Clone for MockDialer<P, A> {
    fn clone(&self) -> Self {
        MockDialer {
            shared: Arc::clone(&self.shared),
            peer: self.peer.clone(),
        }
    }
}

impl<P: Debug, A> Debug for MockDialer<P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockDialer")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<P, A> MockDialer<P, A>
where
    P: Key,
    A: Key,
{
    /// A dialer on `clock` where every address fails until scripted.
    pub fn new(clock: ManualClock) -> Self {
        MockDialer {
            shared: Arc::new(Shared {
                clock,
                state: Mutex::new(State {
                    scripts: HashMap::new(),
                    defaults: HashMap::new(),
                    fallback: Behavior::Fail,
                    records: Vec::new(),
                    in_flight: 0,
                    max_in_flight: 0,
                    in_flight_by_peer: HashMap::new(),
                    max_by_peer: HashMap::new(),
                    conns_made: 0,
                }),
                open: Arc::new(AtomicUsize::new(0)),
            }),
            peer: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<P, A>> {
        // Nothing panics while the lock is held.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A clone whose attempts are labelled with `peer`.
    pub fn for_peer(&self, peer: P) -> Self {
        MockDialer {
            shared: Arc::clone(&self.shared),
            peer: Some(peer),
        }
    }

    /// Queues behaviours for the next dials of `addr`.
    pub fn script(&self, addr: A, behaviors: impl IntoIterator<Item = Behavior>) {
        self.lock()
            .scripts
            .entry(addr)
            .or_default()
            .extend(behaviors);
    }

    /// What `addr` does once its queue is empty.
    pub fn set(&self, addr: A, behavior: Behavior) {
        self.lock().defaults.insert(addr, behavior);
    }

    /// What unscripted addresses do.
    pub fn set_fallback(&self, behavior: Behavior) {
        self.lock().fallback = behavior;
    }

    /// Every attempt so far, in the order the dialer was called.
    pub fn attempts(&self) -> Vec<Attempt<P, A>> {
        self.lock()
            .records
            .iter()
            .map(|r| {
                let mut a = r.attempt.clone();
                a.cancelled |= r.token.is_cancelled();
                a
            })
            .collect()
    }

    /// The addresses dialed, in order.
    pub fn dialed(&self) -> Vec<A> {
        self.lock()
            .records
            .iter()
            .map(|r| r.attempt.addr.clone())
            .collect()
    }

    /// How many dials are in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// How many dials are in flight now for `peer`.
    pub fn in_flight_for(&self, peer: &P) -> usize {
        self.lock()
            .in_flight_by_peer
            .get(peer)
            .copied()
            .unwrap_or(0)
    }

    /// The most dials seen in flight at once, all peers together.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// The most dials seen in flight at once for `peer`.
    pub fn max_in_flight_for(&self, peer: &P) -> usize {
        self.lock().max_by_peer.get(peer).copied().unwrap_or(0)
    }

    /// The most dials seen in flight at once for any single peer.
    pub fn max_in_flight_per_peer(&self) -> usize {
        self.lock().max_by_peer.values().copied().max().unwrap_or(0)
    }

    /// Connections made and not yet dropped (by the worker or its owner).
    pub fn open_conns(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections made so far.
    pub fn conns_made(&self) -> u64 {
        self.lock().conns_made
    }

    /// Records the start of a dial; returns its index.
    fn begin(&self, addr: &A, token: &CancellationToken) -> (usize, Behavior) {
        let now = self.shared.clock.now();
        let mut st = self.lock();
        let behavior = match st.scripts.get_mut(addr).and_then(VecDeque::pop_front) {
            Some(b) => b,
            None => st.defaults.get(addr).copied().unwrap_or(st.fallback),
        };
        st.in_flight += 1;
        st.max_in_flight = st.max_in_flight.max(st.in_flight);
        if let Some(peer) = &self.peer {
            let n = st.in_flight_by_peer.entry(peer.clone()).or_default();
            *n += 1;
            let n = *n;
            let max = st.max_by_peer.entry(peer.clone()).or_default();
            *max = (*max).max(n);
        }
        st.records.push(Record {
            attempt: Attempt {
                peer: self.peer.clone(),
                addr: addr.clone(),
                started: now,
                ended: None,
                outcome: Outcome::Pending,
                cancelled: false,
            },
            token: token.clone(),
        });
        (st.records.len() - 1, behavior)
    }

    fn end(&self, index: usize, outcome: Outcome) {
        let now = self.shared.clock.now();
        let mut st = self.lock();
        st.in_flight -= 1;
        if let Some(peer) = &self.peer {
            if let Some(n) = st.in_flight_by_peer.get_mut(peer) {
                *n -= 1;
            }
        }
        let record = &mut st.records[index];
        record.attempt.ended = Some(now);
        record.attempt.outcome = outcome;
        if outcome == Outcome::Dropped {
            record.attempt.cancelled = true;
        }
    }

    fn make_conn(&self) -> MockConn {
        let mut st = self.lock();
        let id = st.conns_made;
        st.conns_made += 1;
        self.shared.open.fetch_add(1, Ordering::SeqCst);
        MockConn {
            id,
            open: Arc::clone(&self.shared.open),
        }
    }
}

/// Ends an attempt's record exactly once, as dropped unless told otherwise.
struct Guard<P, A>
where
    P: Key,
    A: Key,
{
    dialer: MockDialer<P, A>,
    index: usize,
    done: bool,
}

impl<P, A> Guard<P, A>
where
    P: Key,
    A: Key,
{
    fn finish(mut self, result: Result<MockConn, MockError>) -> Result<MockConn, MockError> {
        self.done = true;
        let outcome = if result.is_ok() {
            Outcome::Connected
        } else {
            Outcome::Failed
        };
        self.dialer.end(self.index, outcome);
        result
    }
}

impl<P, A> Drop for Guard<P, A>
where
    P: Key,
    A: Key,
{
    fn drop(&mut self) {
        if !self.done {
            self.dialer.end(self.index, Outcome::Dropped);
        }
    }
}

impl<P, A> Dialer for MockDialer<P, A>
where
    P: Key,
    A: Key,
{
    type Addr = A;
    type Conn = MockConn;
    type Error = MockError;

    fn dial(
        &self,
        addr: &A,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<MockConn, MockError>> + Send {
        let (index, behavior) = self.begin(addr, &cancel);
        let guard = Guard {
            dialer: self.clone(),
            index,
            done: false,
        };
        let clock = self.shared.clock.clone();
        let dialer = self.clone();
        async move {
            let after = |d: Duration| clock.sleep_until(clock.now() + d);
            let result = match behavior {
                Behavior::Fail => Err(MockError::Refused),
                Behavior::Succeed => Ok(dialer.make_conn()),
                Behavior::Hang => {
                    cancel.cancelled().await;
                    Err(MockError::Cancelled)
                }
                Behavior::FailAfter(d) => {
                    tokio::select! {
                        _ = cancel.cancelled() => Err(MockError::Cancelled),
                        _ = after(d) => Err(MockError::Refused),
                    }
                }
                Behavior::SucceedAfter(d) => {
                    tokio::select! {
                        _ = cancel.cancelled() => Err(MockError::Cancelled),
                        _ = after(d) => Ok(dialer.make_conn()),
                    }
                }
                Behavior::SucceedAfterIgnoringCancel(d) => {
                    after(d).await;
                    Ok(dialer.make_conn())
                }
                Behavior::Panic => panic!("mock dialer told to panic"),
            };
            guard.finish(result)
        }
    }

    fn classify(&self, error: &MockError) -> FailureClass {
        match error {
            MockError::Refused => FailureClass::Network,
            MockError::Cancelled => FailureClass::Local,
        }
    }
}
