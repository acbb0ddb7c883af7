//! Helpers that run workers step by step, so a test reads as a script.

use std::future::Future;
use std::time::Duration;

use conn_worker::{Config, EventKind, Events, Policy, Spawner, WorkerHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Key, ManualClock, MockConn, MockDialer, MockError};

/// Lets every task run until none can make progress.
///
/// It sleeps on tokio's clock, which must be paused (use [`run`], or
/// `#[tokio::test(start_paused = true)]`): a paused clock only moves when the
/// runtime has no task ready to run, so this returns exactly when the
/// runtime has gone idle. Workers should use a [`ManualClock`], which this
/// does not move.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Runs `test` on a current-thread runtime with tokio's time paused, as
/// [`settle`] needs.
///
/// # Panics
///
/// If the runtime cannot be built (out of resources).
pub fn run<F: Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        // Building a current-thread runtime only fails if the OS refuses
        // resources; a test cannot go on then.
        .expect("build a current-thread runtime")
        .block_on(test)
}

/// A worker event, with the connection taken out and times made relative.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Seen<A> {
    /// [`EventKind::DialStarted`].
    DialStarted(A),
    /// [`EventKind::DialFailed`].
    DialFailed(A),
    /// [`EventKind::DialCancelled`].
    DialCancelled(A),
    /// [`EventKind::Connected`] (the harness keeps the connection).
    Connected(A),
    /// [`EventKind::Waiting`], with how long the wait is from the event.
    Waiting(Duration),
    /// [`EventKind::AwaitingAddrs`].
    AwaitingAddrs,
    /// [`EventKind::Idle`].
    Idle,
    /// [`EventKind::Stopped`].
    Stopped,
}

/// The spawner type a [`Harness`] uses.
pub type MockSpawner<P, A> = Spawner<P, MockDialer<P, A>, ManualClock>;
/// The worker handle type a [`Harness`] hands out.
pub type MockHandle<P, A> = WorkerHandle<P, A, MockError>;

/// A spawner on a manual clock and a mock dialer, with its event stream.
#[derive(Debug)]
pub struct Harness<P: Key, A: Key> {
    /// The clock every worker and the dialer use.
    pub clock: ManualClock,
    /// The dialer (workers get [`MockDialer::for_peer`] clones of it).
    pub dialer: MockDialer<P, A>,
    /// The spawner.
    pub spawner: MockSpawner<P, A>,
    /// The spawner's root token.
    pub root: CancellationToken,
    /// The spawner's tracker.
    pub tracker: TaskTracker,
    /// Connections delivered so far, kept open as an owner would.
    pub conns: Vec<(P, MockConn)>,
    events: Events<P, A, MockConn, MockError>,
}

impl<P, A> Harness<P, A>
where
    P: Key,
    A: Key,
{
    /// A harness with these settings.
    pub fn new(config: Config) -> Self {
        let clock = ManualClock::new();
        let dialer = MockDialer::new(clock.clone());
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (spawner, events) = Spawner::new(clock.clone(), config, root.clone(), tracker.clone());
        Harness {
            clock,
            dialer,
            spawner,
            root,
            tracker,
            conns: Vec::new(),
            events,
        }
    }

    /// The settings of lnd PR #10640's worker tests: backoff 100 ms to 2 s,
    /// stagger 50 ms; plus a fixed seed.
    ///
    /// # Panics
    ///
    /// Never: the policy's bounds are valid constants.
    pub fn pr10640_config() -> Config {
        let policy = Policy::new(Duration::from_millis(100), Duration::from_secs(2))
            // 100 ms <= 2 s, both non-zero: a valid policy.
            .expect("valid policy");
        Config::default()
            .with_policy(policy)
            .with_stagger(Duration::from_millis(50))
            .with_seed(10640)
    }

    /// Spawns an idle worker for `peer` on the mock dialer.
    pub fn spawn(&self, peer: P) -> MockHandle<P, A> {
        self.spawner.spawn(peer.clone(), self.dialer.for_peer(peer))
    }

    /// Lets every task run until idle (see [`settle`]).
    pub async fn settle(&self) {
        settle().await;
    }

    /// Advances the clock (see [`ManualClock::advance`]).
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(by).await;
    }

    /// Settles, then drains the events so far, keeping delivered
    /// connections in [`conns`](Self::conns).
    pub async fn events(&mut self) -> Vec<(P, Seen<A>)> {
        settle().await;
        let mut seen = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            let peer = event.peer;
            let s = match event.kind {
                EventKind::DialStarted { addr } => Seen::DialStarted(addr),
                EventKind::DialFailed { addr, .. } => Seen::DialFailed(addr),
                EventKind::DialCancelled { addr } => Seen::DialCancelled(addr),
                EventKind::Connected { addr, conn } => {
                    self.conns.push((peer.clone(), conn));
                    Seen::Connected(addr)
                }
                EventKind::Waiting { until, .. } => {
                    Seen::Waiting(until.saturating_duration_since(event.at))
                }
                EventKind::AwaitingAddrs => Seen::AwaitingAddrs,
                EventKind::Idle => Seen::Idle,
                EventKind::Stopped { .. } => Seen::Stopped,
                _ => continue,
            };
            seen.push((peer, s));
        }
        seen
    }

    /// [`events`](Self::events) without the peer tags (for one-worker tests).
    pub async fn seen(&mut self) -> Vec<Seen<A>> {
        self.events().await.into_iter().map(|(_, s)| s).collect()
    }

    /// Cancels the root token, closes the tracker and waits for every worker
    /// to end.
    pub async fn shutdown(&self) {
        self.root.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
