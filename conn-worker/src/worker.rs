//! The worker task: a thin async driver over the [`Planner`].
//!
//! It sleeps until the planner's next deadline, takes the mailbox, runs the
//! attempts the planner asks for (a global dial slot, then the dialer, under
//! the attempt timeout) and feeds every result back. Every decision is the
//! planner's.

use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::deadline_after;
use crate::command::Intent;
use crate::planner::{Action, AttemptId, Phase, Planner, Report};
use crate::shared::Shared;
use crate::slots::{DialSlots, Priority, SlotPermit};
use crate::{Clock, DialFailure, Dialer, Event, EventKind, FailureClass, State, StopReason, When};

type Sender<P, D> = mpsc::UnboundedSender<crate::event::DialerEvent<P, D>>;

/// The worker's state; its task is [`Worker::run`]. Kept small: an idle
/// worker's task is this plus the idle wait. What all workers of a
/// spawner share (the settings) is behind one `Arc` in the planner; what a
/// worker shares with its handles (peer, token, mailbox, status) is behind
/// `shared`; why its last attempt failed lives only in the status.
pub(crate) struct Worker<P, D: Dialer, K> {
    pub(crate) dialer: Arc<D>,
    pub(crate) clock: K,
    pub(crate) planner: Planner<D::Addr>,
    pub(crate) slots: DialSlots,
    pub(crate) shared: Arc<Shared<P, D::Addr, D::Error>>,
    pub(crate) events: Sender<P, D>,
    /// Dials started since the last connection.
    pub(crate) attempts: u64,
}

impl<P, D: Dialer, K> Drop for Worker<P, D, K> {
    /// However the task ends (run to its end, or dropped with its runtime),
    /// the status says stopped and `stopped()` waiters wake.
    fn drop(&mut self) {
        self.shared.end();
    }
}

/// One attempt in flight: first waiting for a global dial slot, then dialing.
struct Attempt<D: Dialer> {
    id: AttemptId,
    addr: D::Addr,
    cancel: CancellationToken,
    /// The dialer was called (events report only such attempts).
    started: bool,
    fut: Pin<Box<dyn Future<Output = Stage<D>> + Send>>,
}

/// What an attempt's future yields.
enum Stage<D: Dialer> {
    /// The global slot was granted: the dial may start.
    Permit(SlotPermit),
    /// The attempt's token fired (the worker is stopping).
    Cancelled,
    /// The dialer returned, or the attempt failed around it.
    Done(Result<D::Conn, DialFailure<D::Error>>),
}

/// What woke the worker.
enum Wake<D: Dialer> {
    Stop,
    Mail,
    Timer,
    Attempt(usize, Stage<D>),
}

impl<P, D, K> Worker<P, D, K>
where
    P: Clone + std::fmt::Debug + Send + Sync + 'static,
    D: Dialer,
    K: Clock,
{
    /// Runs until stopped.
    ///
    /// Not an `async fn`: one taking `self` by value keeps the argument
    /// and its moved-in copy both in the future (rust-lang/rust#62958), a
    /// second `Worker` in every idle task. The block captures it once.
    ///
    /// No `tracing` span wraps the task (it would take 40 bytes in every
    /// idle one): the worker's own log lines carry the peer, and each dial
    /// runs in a `conn_worker{peer}` span, so the dialer's lines do too.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would keep two copies of the worker"
    )]
    pub(crate) fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            // A panic inside (the clock's, say; a dialer's is caught per
            // attempt) must not leave a handle that reports a live worker
            // nobody runs: the worker ends as stopped, and says why.
            let outcome = AssertUnwindSafe(self.drive()).catch_unwind().await;
            let reason = match outcome {
                Ok(()) => StopReason::Stopped,
                Err(panic) => {
                    tracing::error!(peer = ?self.shared.peer, "worker panicked; it is stopped");
                    self.shared.cancel.cancel();
                    StopReason::Panicked(panic_message(panic.as_ref()))
                }
            };
            self.shared.end();
            self.emit(EventKind::Stopped { reason });
            tracing::debug!(peer = ?self.shared.peer, "worker stopped");
        }
    }

    async fn drive(&mut self) {
        tracing::debug!(peer = ?self.shared.peer, "worker started");
        self.emit(EventKind::Idle);
        let mut flight: Vec<Attempt<D>> = Vec::new();
        loop {
            self.act(&mut flight);
            self.publish();
            // No deadline kept across the idle wait: it would take room
            // in every idle task.
            let idle = flight.is_empty() && self.planner.next_deadline().is_none();
            if idle {
                // An idle worker (a connected peer's, most of them) keeps no
                // buffers of its last round: freed here, allocated again by
                // the next one.
                flight.shrink_to_fit();
                self.planner.shrink_to_fit();
            }
            let wake = if idle {
                // Idle (or awaiting addresses): only a command or a stop can
                // wake the worker. This small wait is what an idle worker's
                // task holds; the full one below is boxed, so its timer and
                // attempt futures take heap only while they are needed.
                tokio::select! {
                    biased;
                    _ = self.shared.cancel.cancelled() => Wake::Stop,
                    _ = self.shared.mailbox.notified() => Wake::Mail,
                }
            } else {
                let sleep = self
                    .planner
                    .next_deadline()
                    .map(|d| self.clock.sleep_until(d));
                let (cancel, mailbox) = (&self.shared.cancel, &self.shared.mailbox);
                Box::pin(async {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => Wake::Stop,
                        _ = mailbox.notified() => Wake::Mail,
                        (i, stage) = poll_attempts(&mut flight), if !flight.is_empty() => {
                            Wake::Attempt(i, stage)
                        }
                        _ = maybe(sleep) => Wake::Timer,
                    }
                })
                .await
            };
            let now = self.clock.now();
            match wake {
                Wake::Stop => {
                    for attempt in flight.drain(..) {
                        attempt.cancel.cancel();
                        if attempt.started {
                            self.emit(EventKind::DialCancelled { addr: attempt.addr });
                        }
                    }
                    return;
                }
                Wake::Mail => self.take_mail(now),
                Wake::Timer => self.planner.handle_timeout(now),
                Wake::Attempt(i, Stage::Permit(permit)) => {
                    let attempt = &mut flight[i];
                    attempt.started = true;
                    attempt.fut = dial(
                        tracing::info_span!("conn_worker", peer = ?self.shared.peer),
                        Arc::clone(&self.dialer),
                        self.clock.clone(),
                        attempt.addr.clone(),
                        attempt.cancel.clone(),
                        permit,
                        self.planner.settings().attempt_timeout,
                    );
                    self.attempts += 1;
                    let (id, addr) = (attempt.id, attempt.addr.clone());
                    tracing::debug!(peer = ?self.shared.peer, ?addr, "dial started");
                    self.emit(EventKind::DialStarted { addr });
                    self.planner.attempt_started(now, id);
                }
                Wake::Attempt(i, Stage::Cancelled) => {
                    // Only the worker's own token cancels an attempt still
                    // in the list: the worker is stopping.
                    let attempt = flight.remove(i);
                    if attempt.started {
                        self.emit(EventKind::DialCancelled { addr: attempt.addr });
                    }
                }
                Wake::Attempt(i, Stage::Done(Err(failure))) => {
                    let attempt = flight.remove(i);
                    tracing::debug!(peer = ?self.shared.peer, addr = ?attempt.addr, "dial failed");
                    self.shared
                        .with_status(|s| s.last_error = Some(failure.clone()));
                    let class = self.classify(&failure);
                    self.emit(EventKind::DialFailed {
                        addr: attempt.addr,
                        failure,
                        class,
                    });
                    self.planner.attempt_failed(now, attempt.id);
                }
                Wake::Attempt(i, Stage::Done(Ok(conn))) => {
                    let attempt = flight.remove(i);
                    // Facts posted before this connection was seen count
                    // first, as they would have a moment earlier: a
                    // stand-down cancels it.
                    self.take_mail(now);
                    if self.planner.attempt_connected(now, attempt.id) {
                        tracing::debug!(peer = ?self.shared.peer, addr = ?attempt.addr, "connected");
                        // The other attempts end before the connection is
                        // handed over, the idle report after it.
                        let mut rest = Vec::new();
                        while let Some(action) = self.planner.poll_action() {
                            match action {
                                Action::Cancel { id } => self.cancel_attempt(&mut flight, id),
                                other => rest.push(other),
                            }
                        }
                        self.attempts = 0;
                        self.shared.with_status(|s| s.last_error = None);
                        self.emit(EventKind::Connected {
                            addr: attempt.addr,
                            conn,
                        });
                        for action in rest {
                            self.carry_out(&mut flight, action);
                        }
                    } else {
                        // Not wanted any more: closed by drop.
                        drop(conn);
                        self.emit(EventKind::DialCancelled { addr: attempt.addr });
                    }
                }
            }
        }
    }

    /// Carries out what the planner decided.
    fn act(&mut self, flight: &mut Vec<Attempt<D>>) {
        while let Some(action) = self.planner.poll_action() {
            self.carry_out(flight, action);
        }
    }

    fn cancel_attempt(&self, flight: &mut Vec<Attempt<D>>, id: AttemptId) {
        if let Some(i) = flight.iter().position(|a| a.id == id) {
            let attempt = flight.remove(i);
            attempt.cancel.cancel();
            // Dropping the future closes whatever it held and frees its
            // slot.
            drop(attempt.fut);
            if attempt.started {
                self.emit(EventKind::DialCancelled { addr: attempt.addr });
            }
        }
    }

    fn carry_out(&self, flight: &mut Vec<Attempt<D>>, action: Action<D::Addr>) {
        {
            match action {
                Action::Dial { id, addr, priority } => {
                    let cancel = self.shared.cancel.child_token();
                    let fut = acquire::<D>(
                        self.slots.clone(),
                        priority,
                        self.clock.now(),
                        cancel.clone(),
                    );
                    flight.push(Attempt {
                        id,
                        addr,
                        cancel,
                        started: false,
                        fut,
                    });
                }
                Action::Cancel { id } => self.cancel_attempt(flight, id),
                Action::Report(report) => match report {
                    Report::Idle => self.emit(EventKind::Idle),
                    Report::Waiting { until } => self.emit(EventKind::Waiting {
                        until,
                        backoff: self.planner.backoff(),
                    }),
                    Report::AwaitingAddrs => self.emit(EventKind::AwaitingAddrs),
                    _ => {}
                },
            }
        }
    }

    /// Hands the mailbox to the planner: a disconnect record first, then
    /// the advertised addresses, then the intent with the user's addresses.
    fn take_mail(&mut self, now: Instant) {
        let pending = self.shared.mailbox.take();
        let mut disconnect = pending.disconnect;
        if let Some(level) = pending.backoff {
            self.planner.set_backoff(Some(level));
        }
        if let Some(good) = pending.good {
            self.planner.learn_good(good);
        }
        if let Some(addrs) = pending.advertised {
            self.planner.update_addrs(now, &addrs);
        }
        // Every user-given address joins the book; only the latest
        // connect's own first address leads the round.
        self.planner.add_user_addrs(&pending.user);
        let lead = pending.lead.as_slice();
        match pending.intent {
            Some(Intent::Connect(When::AfterDisconnect { connected_for })) => {
                // The record is the latest disconnect; it steps the level
                // once, here.
                let connected_for = disconnect.take().unwrap_or(connected_for);
                self.planner
                    .connect(now, lead, When::AfterDisconnect { connected_for });
            }
            Some(Intent::Connect(when)) => {
                if let Some(d) = disconnect.take() {
                    self.planner.record_disconnect(d);
                }
                self.planner.connect(now, lead, when);
            }
            Some(Intent::StandDown) | None => {
                if let Some(d) = disconnect.take() {
                    self.planner.record_disconnect(d);
                }
                if pending.intent.is_some() {
                    self.planner.stand_down(now, None);
                }
            }
        }
    }

    /// Copies what changed into the status snapshot.
    fn publish(&self) {
        let planner = &self.planner;
        let state = match planner.phase() {
            Phase::Idle => State::Idle,
            Phase::Waiting => State::Waiting,
            Phase::Dialing => State::Dialing,
            _ => State::AwaitingAddrs,
        };
        self.shared.with_status(|s| {
            s.state = state;
            s.backoff = planner.backoff();
            s.attempts = self.attempts;
            s.next_attempt = planner.waiting_until();
            s.in_flight = planner.in_flight();
            // Copied into the snapshot's own vectors, reusing them.
            if s.user_addrs != planner.user_addrs() {
                s.user_addrs.clear();
                s.user_addrs.extend_from_slice(planner.user_addrs());
            }
            if s.advertised != planner.advertised_addrs() {
                s.advertised.clear();
                s.advertised.extend_from_slice(planner.advertised_addrs());
            }
            if s.last_good.as_ref() != planner.last_good() {
                s.last_good = planner.last_good().cloned();
            }
        });
    }

    /// The failure's class; the dialer's `classify` is user code, so a
    /// panic in it counts as a local failure.
    fn classify(&self, failure: &DialFailure<D::Error>) -> FailureClass {
        match failure {
            DialFailure::Error(e) => {
                std::panic::catch_unwind(AssertUnwindSafe(|| self.dialer.classify(e)))
                    .unwrap_or(FailureClass::Local)
            }
            DialFailure::TimedOut { .. } => FailureClass::Timeout,
            DialFailure::Panicked(_) => FailureClass::Local,
        }
    }

    fn emit(&self, kind: EventKind<D::Addr, D::Conn, D::Error>) {
        // The owner may have dropped its receiver (shutting down): nothing
        // to report to then.
        let _ = self.events.send(Event {
            peer: self.shared.peer.clone(),
            at: self.clock.now(),
            kind,
        });
    }
}

/// The text of a panic's payload (a `&str` or `String` message, as `panic!`
/// makes), for a supervisor that reports what a task's panic said.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("panic with a non-text payload")
    }
}

/// Waits for a global dial slot, or the attempt's cancellation.
fn acquire<D: Dialer>(
    slots: DialSlots,
    priority: Priority,
    now: Instant,
    cancel: CancellationToken,
) -> Pin<Box<dyn Future<Output = Stage<D>> + Send>> {
    Box::pin(async move {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Stage::Cancelled,
            permit = slots.acquire(priority, now) => Stage::Permit(permit),
        }
    })
}

/// Dials (in `span`) while holding the global slot, under the attempt timeout, giving
/// the slot back (as a timeout) if it is reclaimed for a waiting attempt.
/// A panic in the dialer fails the attempt; cancellation wins over a result
/// that is ready at the same time (that result is dropped with the future).
fn dial<D: Dialer, K: Clock>(
    span: tracing::Span,
    dialer: Arc<D>,
    clock: K,
    addr: D::Addr,
    cancel: CancellationToken,
    permit: SlotPermit,
    timeout: Duration,
) -> Pin<Box<dyn Future<Output = Stage<D>> + Send>> {
    Box::pin(
        async move {
            if cancel.is_cancelled() {
                return Stage::Cancelled;
            }
            let started = clock.now();
            permit.start(started);
            let token = cancel.clone();
            let deadline = deadline_after(started, timeout);
            let lease = async {
                if let Some(end) = permit.lease_ends() {
                    clock.sleep_until(end).await;
                    permit.slots().lease_expired(clock.now());
                }
                // From here only a waiter's arrival (which reclaims the slot)
                // or the other branches end the attempt.
                std::future::pending::<Stage<D>>().await
            };
            let dial = AssertUnwindSafe(async { dialer.dial(&addr, token).await }).catch_unwind();
            let stage = tokio::select! {
                biased;
                _ = cancel.cancelled() => Stage::Cancelled,
                () = permit.reclaimed() => Stage::Done(Err(DialFailure::TimedOut {
                    after: clock.now().saturating_duration_since(started),
                })),
                result = dial => Stage::Done(match result {
                    Ok(Ok(conn)) => Ok(conn),
                    Ok(Err(e)) => Err(DialFailure::Error(Arc::new(e))),
                    Err(panic) => Err(DialFailure::Panicked(panic_message(panic.as_ref()))),
                }),
                () = clock.sleep_until(deadline) => {
                    Stage::Done(Err(DialFailure::TimedOut { after: timeout }))
                }
                stage = lease => stage,
            };
            drop(permit);
            stage
        }
        .instrument(span),
    )
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

#[cfg(test)]
mod size {
    //! What an idle worker's task holds, by part. The future type is
    //! private, so only a test in the crate can measure it; run with
    //! `--nocapture` to see the parts.

    use std::convert::Infallible;
    use std::mem::size_of;

    use super::*;
    use crate::{dial_fn, Config, Spawner, TokioClock};

    type Ready = std::future::Ready<Result<(), Infallible>>;
    type D = Arc<crate::FnDialer<u32, fn(u32, CancellationToken) -> Ready>>;

    fn ready(_addr: u32, _cancel: CancellationToken) -> Ready {
        std::future::ready(Ok(()))
    }

    /// tokio's task cell is the future plus about 112 bytes (header,
    /// scheduler, id, trailer, and the tracker's token), rounded up to 128
    /// bytes on x86-64: a worker future of at most 400 bytes (for `u32`
    /// addresses, as the bench) keeps the task in 512 bytes. Issue 20
    /// measured 1016 before: the `async fn run(self)` kept two `Worker`s.
    #[test]
    fn an_idle_workers_future_fits_a_512_byte_task() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let (spawner, _events) = Spawner::<u32, D, TokioClock>::new(
                TokioClock,
                Config::default(),
                CancellationToken::new(),
                tokio_util::task::TaskTracker::new(),
            );
            let dialer = || Arc::new(dial_fn(ready as fn(u32, CancellationToken) -> Ready));
            let mut worker = spawner.worker(1, dialer());
            let drive = size_of_val(&worker.drive());
            let worker = spawner.worker(2, dialer());
            let run = worker.run();
            let parts = [
                ("Worker", size_of::<Worker<u32, D, TokioClock>>()),
                ("  Planner", size_of::<Planner<u32>>()),
                ("drive() future (idle wait included)", drive),
                ("run() future", size_of_val(&run)),
                (
                    "shared with the handles",
                    size_of::<Shared<u32, u32, Infallible>>(),
                ),
            ];
            for (name, size) in parts {
                println!("{name}: {size} B");
            }
            assert!(size_of_val(&run) <= 400, "{parts:?}");
            assert!(size_of_val(&run) < size_of::<Worker<u32, D, TokioClock>>() + drive + 16);
        });
    }
}
