//! The worker task: one per peer, owns the peer's dial / wait / retry life.

use std::collections::{HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use backoff::Policy;
use futures::FutureExt;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::deadline_after;
use crate::command::{Delay, Intent, Mailbox};
use crate::rng::SplitMix64;
use crate::{Clock, Dialer, Event, EventKind, State, Status};

/// What the worker does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Idle,
    Wait(Instant),
    Dial,
    AwaitAddrs,
    Stop,
}

/// The worker's state; its task is [`Worker::run`].
pub(crate) struct Worker<P, D: Dialer, C> {
    pub(crate) peer: P,
    pub(crate) dialer: Arc<D>,
    pub(crate) clock: C,
    pub(crate) policy: Policy,
    pub(crate) stagger: Duration,
    pub(crate) max_parallel: usize,
    pub(crate) limit: Arc<Semaphore>,
    pub(crate) mailbox: Arc<Mailbox<D::Addr>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) events: mpsc::UnboundedSender<Event<P, D>>,
    pub(crate) status: watch::Sender<Status<D>>,
    pub(crate) rng: SplitMix64,
    pub(crate) addrs: Vec<D::Addr>,
    pub(crate) last_good: Option<D::Addr>,
    pub(crate) backoff: Option<Duration>,
    pub(crate) attempts: u64,
    pub(crate) last_error: Option<Arc<D::Error>>,
}

/// One attempt in flight: first waiting for a global dial slot, then dialing.
struct Attempt<D: Dialer> {
    addr: D::Addr,
    cancel: CancellationToken,
    /// The dialer was called (events report only such attempts).
    started: bool,
    fut: Pin<Box<dyn Future<Output = Stage<D>> + Send>>,
}

/// What an attempt's future yields.
enum Stage<D: Dialer> {
    /// The global slot was granted: the dial may start.
    Permit(OwnedSemaphorePermit),
    /// The attempt's token fired before it finished.
    Cancelled,
    /// The dialer returned.
    Done(Result<D::Conn, D::Error>),
}

/// Whether the round may start another attempt (besides free slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// At once (round start, or an attempt just ended).
    Open,
    /// Not until the attempt waiting for a global slot gets it.
    Blocked,
    /// Once the stagger since the last start has passed.
    At(Instant),
}

/// What woke the worker during a round.
enum RoundWake<D: Dialer> {
    Stop,
    Mail,
    Attempt(usize, Stage<D>),
    Stagger,
}

impl<P, D, C> Worker<P, D, C>
where
    P: Clone + std::fmt::Debug + Send + Sync + 'static,
    D: Dialer,
    C: Clock,
{
    /// Runs until stopped.
    pub(crate) async fn run(mut self) {
        // A panic inside (a dialer's, say) must not leave a handle that
        // reports a live worker nobody runs: the worker ends as stopped.
        let outcome = std::panic::AssertUnwindSafe(self.run_plans())
            .catch_unwind()
            .await;
        if outcome.is_err() {
            tracing::error!("worker panicked; it is stopped");
            self.cancel.cancel();
        }
        self.publish(State::Stopped, None, 0);
        self.emit(EventKind::Stopped);
        tracing::debug!("worker stopped");
    }

    async fn run_plans(&mut self) {
        tracing::debug!("worker started");
        self.publish(State::Idle, None, 0);
        let mut plan = Plan::Idle;
        loop {
            plan = match plan {
                Plan::Idle => self.idle().await,
                // A round's state (attempts, queue, timers) and a wait's
                // timer are large; boxed, they are allocated only while they
                // run, and an idle worker's task stays small.
                Plan::Wait(until) => Box::pin(self.wait(until)).await,
                Plan::Dial => Box::pin(self.dial_round()).await,
                Plan::AwaitAddrs => self.await_addrs().await,
                Plan::Stop => break,
            };
        }
    }

    async fn idle(&mut self) -> Plan {
        self.publish(State::Idle, None, 0);
        self.emit(EventKind::Idle);
        loop {
            if !self.next_mail().await {
                return Plan::Stop;
            }
            match self.apply(Plan::Idle) {
                Plan::Idle => self.publish(State::Idle, None, 0),
                other => return other,
            }
        }
    }

    async fn await_addrs(&mut self) -> Plan {
        self.publish(State::AwaitingAddrs, None, 0);
        self.emit(EventKind::AwaitingAddrs);
        loop {
            if !self.next_mail().await {
                return Plan::Stop;
            }
            match self.apply(Plan::AwaitAddrs) {
                Plan::AwaitAddrs => self.publish(State::AwaitingAddrs, None, 0),
                other => return other,
            }
        }
    }

    async fn wait(&mut self, mut until: Instant) -> Plan {
        self.enter_wait(until);
        loop {
            let sleep = self.clock.sleep_until(until);
            let mail = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Plan::Stop,
                _ = self.mailbox.notified() => true,
                _ = sleep => false,
            };
            if !mail {
                return Plan::Dial;
            }
            match self.apply(Plan::Wait(until)) {
                Plan::Wait(same) if same == until => self.enter_wait_quiet(until),
                Plan::Wait(other) => {
                    until = other;
                    self.enter_wait(until);
                }
                other => return other,
            }
        }
    }

    /// Waits for mail; `false` if the worker was stopped instead.
    async fn next_mail(&self) -> bool {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => false,
            _ = self.mailbox.notified() => true,
        }
    }

    /// One round: dial the addresses (last good first) until one connects,
    /// all fail, or a command or stop interrupts.
    async fn dial_round(&mut self) -> Plan {
        if self.addrs.is_empty() {
            return Plan::AwaitAddrs;
        }
        let mut queue = self.ordered_addrs();
        let mut tried: HashSet<D::Addr> = HashSet::new();
        let mut flight: Vec<Attempt<D>> = Vec::new();
        let mut gate = Gate::Open;
        self.publish(State::Dialing, None, 0);
        loop {
            // Start what the slots and the stagger allow.
            let now = self.clock.now();
            while flight.len() < self.max_parallel && (flight.is_empty() || gate_open(gate, now)) {
                let Some(addr) = queue.pop_front() else { break };
                tried.insert(addr.clone());
                let cancel = self.cancel.child_token();
                let fut = acquire::<D>(Arc::clone(&self.limit), cancel.clone());
                flight.push(Attempt {
                    addr,
                    cancel,
                    started: false,
                    fut,
                });
                gate = Gate::Blocked;
            }
            if flight.is_empty() {
                if self.addrs.is_empty() {
                    // Every address was withdrawn: nothing failed, nothing
                    // to dial until an update brings one.
                    return Plan::AwaitAddrs;
                }
                // Every address of the round was tried and failed.
                return self.round_failed();
            }
            self.publish(State::Dialing, None, flight.len());
            let stagger = match gate {
                Gate::At(t) if flight.len() < self.max_parallel && !queue.is_empty() => {
                    Some(self.clock.sleep_until(t))
                }
                _ => None,
            };
            let wake = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => RoundWake::Stop,
                _ = self.mailbox.notified() => RoundWake::Mail,
                (i, stage) = poll_attempts(&mut flight) => RoundWake::Attempt(i, stage),
                _ = maybe(stagger) => RoundWake::Stagger,
            };
            match wake {
                RoundWake::Stop => {
                    self.cancel_all(&mut flight);
                    return Plan::Stop;
                }
                RoundWake::Stagger => gate = Gate::Open,
                RoundWake::Mail => {
                    let (intent, _) = self.take_mail();
                    if let Some(intent) = intent {
                        self.cancel_all(&mut flight);
                        return self.plan_for(intent);
                    }
                    // Addresses changed: withdraw attempts at dropped
                    // addresses, queue the new ones in the given order.
                    for attempt in &flight {
                        if !self.addrs.contains(&attempt.addr) {
                            attempt.cancel.cancel();
                        }
                    }
                    queue = self
                        .ordered_addrs()
                        .into_iter()
                        .filter(|a| !tried.contains(a))
                        .collect();
                }
                RoundWake::Attempt(i, Stage::Permit(permit)) => {
                    let attempt = &mut flight[i];
                    if attempt.cancel.is_cancelled() {
                        // Polled next round as cancelled; the permit is
                        // released here.
                        drop(permit);
                        attempt.fut = Box::pin(async { Stage::Cancelled });
                        continue;
                    }
                    self.attempts += 1;
                    attempt.started = true;
                    let addr = attempt.addr.clone();
                    attempt.fut = dial(
                        Arc::clone(&self.dialer),
                        addr.clone(),
                        attempt.cancel.clone(),
                        permit,
                    );
                    gate = Gate::At(deadline_after(self.clock.now(), self.stagger));
                    tracing::debug!(?addr, "dial started");
                    self.emit(EventKind::DialStarted { addr });
                }
                RoundWake::Attempt(i, Stage::Cancelled) => {
                    let attempt = flight.remove(i);
                    // Its slot frees at once, as after a failure.
                    gate = Gate::Open;
                    if attempt.started {
                        self.emit(EventKind::DialCancelled { addr: attempt.addr });
                    }
                }
                RoundWake::Attempt(i, Stage::Done(Err(error))) => {
                    let attempt = flight.remove(i);
                    if attempt.cancel.is_cancelled() {
                        self.emit(EventKind::DialCancelled { addr: attempt.addr });
                    } else {
                        tracing::debug!(addr = ?attempt.addr, %error, "dial failed");
                        let error = Arc::new(error);
                        self.last_error = Some(Arc::clone(&error));
                        self.emit(EventKind::DialFailed {
                            addr: attempt.addr,
                            error,
                        });
                    }
                    gate = Gate::Open;
                }
                RoundWake::Attempt(i, Stage::Done(Ok(conn))) => {
                    let attempt = flight.remove(i);
                    if attempt.cancel.is_cancelled() {
                        // Completed after it was cancelled: closed by drop.
                        drop(conn);
                        tracing::debug!(addr = ?attempt.addr, "late connection dropped");
                        self.emit(EventKind::DialCancelled { addr: attempt.addr });
                        gate = Gate::Open;
                        continue;
                    }
                    // A connect or stand-down posted before we saw this
                    // connection cancels it, as it would have a moment
                    // earlier.
                    let (intent, _) = self.take_mail();
                    if let Some(intent) = intent {
                        attempt.cancel.cancel();
                        drop(conn);
                        self.emit(EventKind::DialCancelled { addr: attempt.addr });
                        self.cancel_all(&mut flight);
                        return self.plan_for(intent);
                    }
                    self.cancel_all(&mut flight);
                    tracing::debug!(addr = ?attempt.addr, "connected");
                    self.last_good = Some(attempt.addr.clone());
                    self.attempts = 0;
                    self.last_error = None;
                    self.emit(EventKind::Connected {
                        addr: attempt.addr,
                        conn,
                    });
                    return Plan::Idle;
                }
            }
        }
    }

    /// Cancels and drops every attempt in flight (dropping a dial future
    /// closes whatever it held).
    fn cancel_all(&mut self, flight: &mut Vec<Attempt<D>>) {
        for attempt in flight.drain(..) {
            attempt.cancel.cancel();
            drop(attempt.fut);
            if attempt.started {
                self.emit(EventKind::DialCancelled { addr: attempt.addr });
            }
        }
    }

    /// Every address failed: step the backoff level and wait it.
    fn round_failed(&mut self) -> Plan {
        let next = match self.backoff {
            None => self.policy.first(),
            Some(current) => self.policy.after_failure(current, self.rng.next_u64()),
        };
        self.backoff = Some(next);
        tracing::debug!(?next, "round failed");
        Plan::Wait(deadline_after(self.clock.now(), next))
    }

    /// Takes the mailbox: applies addresses and a disconnect record to the
    /// worker's state, returns the intent and whether a new address appeared.
    fn take_mail(&mut self) -> (Option<Intent>, bool) {
        let pending = self.mailbox.take();
        if let Some(connected_for) = pending.disconnect {
            let next =
                self.policy
                    .after_disconnect(self.backoff, connected_for, self.rng.next_u64());
            self.backoff = Some(next);
        }
        let mut added = false;
        if let Some(addrs) = pending.addrs {
            let mut seen = HashSet::with_capacity(addrs.len());
            let addrs: Vec<D::Addr> = addrs
                .into_iter()
                .filter(|a| seen.insert(a.clone()))
                .collect();
            added = addrs.iter().any(|a| !self.addrs.contains(a));
            self.addrs = addrs;
        }
        (pending.intent, added)
    }

    /// Takes the mailbox outside a round and says what to do next.
    fn apply(&mut self, current: Plan) -> Plan {
        let (intent, added) = self.take_mail();
        if let Some(intent) = intent {
            return self.plan_for(intent);
        }
        match current {
            Plan::Wait(until) if added => {
                let soon = deadline_after(self.clock.now(), self.policy.min());
                Plan::Wait(until.min(soon))
            }
            Plan::AwaitAddrs if !self.addrs.is_empty() => Plan::Dial,
            other => other,
        }
    }

    fn plan_for(&self, intent: Intent) -> Plan {
        match intent {
            Intent::StandDown => Plan::Idle,
            Intent::Connect(Delay::Now) => Plan::Dial,
            Intent::Connect(Delay::After(d)) if d.is_zero() => Plan::Dial,
            Intent::Connect(Delay::After(d)) => Plan::Wait(deadline_after(self.clock.now(), d)),
            Intent::Connect(Delay::Backoff) => {
                let d = self.backoff.unwrap_or(self.policy.first());
                Plan::Wait(deadline_after(self.clock.now(), d))
            }
        }
    }

    /// The round's order: last known good first, then as given.
    fn ordered_addrs(&self) -> VecDeque<D::Addr> {
        let mut queue = VecDeque::with_capacity(self.addrs.len());
        if let Some(good) = self.last_good.as_ref().filter(|g| self.addrs.contains(g)) {
            queue.push_back(good.clone());
        }
        for addr in &self.addrs {
            if Some(addr) != self.last_good.as_ref() {
                queue.push_back(addr.clone());
            }
        }
        queue
    }

    fn enter_wait(&mut self, until: Instant) {
        self.enter_wait_quiet(until);
        self.emit(EventKind::Waiting { until });
    }

    fn enter_wait_quiet(&mut self, until: Instant) {
        self.publish(State::Waiting, Some(until), 0);
    }

    fn publish(&self, state: State, next_attempt: Option<Instant>, in_flight: usize) {
        self.status.send_modify(|s| {
            s.state = state;
            s.backoff = self.backoff;
            s.attempts = self.attempts;
            s.last_error.clone_from(&self.last_error);
            s.next_attempt = next_attempt;
            s.in_flight = in_flight;
            s.addrs.clone_from(&self.addrs);
            s.last_good.clone_from(&self.last_good);
        });
    }

    fn emit(&self, kind: EventKind<D>) {
        // The owner may have dropped its receiver (shutting down): nothing
        // to report to then.
        let _ = self.events.send(Event {
            peer: self.peer.clone(),
            at: self.clock.now(),
            kind,
        });
    }
}

fn gate_open(gate: Gate, now: Instant) -> bool {
    match gate {
        Gate::Open => true,
        Gate::Blocked => false,
        Gate::At(t) => now >= t,
    }
}

/// Waits for a global dial slot, or the attempt's cancellation.
fn acquire<D: Dialer>(
    limit: Arc<Semaphore>,
    cancel: CancellationToken,
) -> Pin<Box<dyn Future<Output = Stage<D>> + Send>> {
    Box::pin(async move {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Stage::Cancelled,
            permit = limit.acquire_owned() => match permit {
                Ok(permit) => Stage::Permit(permit),
                // The semaphore is never closed; treat it as a cancellation.
                Err(_) => Stage::Cancelled,
            },
        }
    })
}

/// Dials while holding the global slot; cancellation wins over a result that
/// is ready at the same time (that result is dropped with the future).
fn dial<D: Dialer>(
    dialer: Arc<D>,
    addr: D::Addr,
    cancel: CancellationToken,
    permit: OwnedSemaphorePermit,
) -> Pin<Box<dyn Future<Output = Stage<D>> + Send>> {
    Box::pin(async move {
        let _permit = permit;
        if cancel.is_cancelled() {
            return Stage::Cancelled;
        }
        let token = cancel.clone();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Stage::Cancelled,
            result = dialer.dial(&addr, token) => Stage::Done(result),
        }
    })
}

/// Polls every attempt; yields the first that finishes a stage.
async fn poll_attempts<D: Dialer>(flight: &mut [Attempt<D>]) -> (usize, Stage<D>) {
    poll_fn(|cx| {
        for (i, attempt) in flight.iter_mut().enumerate() {
            if let Poll::Ready(stage) = attempt.fut.as_mut().poll(cx) {
                return Poll::Ready((i, stage));
            }
        }
        Poll::Pending
    })
    .await
}

/// A sleep if there is one, else never.
async fn maybe<F: Future<Output = ()>>(sleep: Option<F>) {
    match sleep {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}
