//! Starts workers that share a clock, settings, a dial limit, an event
//! channel, a root token and a task tracker.

use std::fmt::{self, Debug};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event::{DialerEvent, DialerEvents};
use crate::planner::{Planner, Settings};
use crate::rng::SplitMix64;
use crate::shared::Shared;
use crate::worker::Worker;
use crate::{Clock, Config, DialSlots, Dialer, WorkerHandle};

/// Starts workers.
///
/// All workers of a spawner share its [`Config`], its clock, one limit on
/// dials in flight ([`Config::max_dials_in_flight`]), one event channel, and
/// run as children of its root token on its task tracker: cancelling the
/// root token stops every worker, and once the tracker is closed,
/// [`TaskTracker::wait`] returns when the last one has ended.
///
/// Cloning is cheap; clones share everything.
pub struct Spawner<P, D: Dialer, C> {
    clock: C,
    config: Config,
    /// The config's planner settings, shared by every worker.
    settings: Arc<Settings>,
    slots: DialSlots,
    root: CancellationToken,
    tracker: TaskTracker,
    events: mpsc::UnboundedSender<DialerEvent<P, D>>,
    seed: u64,
    spawned: Arc<AtomicU64>,
}

impl<P, D: Dialer, C: Clone> Clone for Spawner<P, D, C> {
    fn clone(&self) -> Self {
        Spawner {
            clock: self.clock.clone(),
            config: self.config.clone(),
            settings: Arc::clone(&self.settings),
            slots: self.slots.clone(),
            root: self.root.clone(),
            tracker: self.tracker.clone(),
            events: self.events.clone(),
            seed: self.seed,
            spawned: Arc::clone(&self.spawned),
        }
    }
}

impl<P, D: Dialer, C> Debug for Spawner<P, D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("config", &self.config)
            .field("dials_in_flight", &self.dials_in_flight())
            .finish_non_exhaustive()
    }
}

impl<P, D, C> Spawner<P, D, C>
where
    P: Clone + Debug + Send + Sync + 'static,
    D: Dialer,
    C: Clock,
{
    /// A spawner whose workers are children of `root` and run on `tracker`,
    /// and the receiver of their events (drain it: see [`Events`](crate::Events)).
    pub fn new(
        clock: C,
        config: Config,
        root: CancellationToken,
        tracker: TaskTracker,
    ) -> (Self, DialerEvents<P, D>) {
        let (events, rx) = mpsc::unbounded_channel();
        let seed = config.seed.unwrap_or_else(crate::rng::random_seed);
        let settings = Arc::new(Settings {
            policy: config.policy,
            stagger: config.stagger,
            max_parallel: config.max_parallel.get(),
            attempt_timeout: config.attempt_timeout(),
        });
        let spawner = Spawner {
            clock,
            settings,
            slots: DialSlots::new(config.max_dials_in_flight.get(), config.slot_lease()),
            config,
            root,
            tracker,
            events,
            seed,
            spawned: Arc::new(AtomicU64::new(0)),
        };
        (spawner, rx)
    }

    /// Starts an idle worker for `peer` that dials with `dialer` (pass an
    /// `Arc` to share one dialer between workers).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the worker is a tokio task).
    pub fn spawn(&self, peer: P, dialer: D) -> WorkerHandle<P, D::Addr, D::Error> {
        let worker = self.worker(peer, dialer);
        let handle = WorkerHandle::new(Arc::clone(&worker.shared));
        self.tracker.spawn(worker.run());
        handle
    }

    /// A worker for `peer`, not started; its `shared` counts one handle
    /// already (the one [`spawn`](Self::spawn) returns).
    pub(crate) fn worker(&self, peer: P, dialer: D) -> Worker<P, D, C> {
        let shared = Arc::new(Shared::new(peer, self.root.child_token()));
        let index = self.spawned.fetch_add(1, Ordering::Relaxed);
        let mut seeder = SplitMix64::new(self.seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        let planner = Planner::with_settings(Arc::clone(&self.settings), seeder.next_u64());
        Worker {
            dialer: Arc::new(dialer),
            clock: self.clock.clone(),
            planner,
            slots: self.slots.clone(),
            shared,
            events: self.events.clone(),
            attempts: 0,
        }
    }

    /// The shared settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The root token: cancelling it stops every worker.
    pub fn root(&self) -> &CancellationToken {
        &self.root
    }

    /// The tracker the workers run on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}

impl<P, D: Dialer, C> Spawner<P, D, C> {
    /// The dial slots every worker of this spawner takes: an owner's own
    /// dials (a one-off connect) take them too, so that one limit counts
    /// every dial.
    pub fn slots(&self) -> &DialSlots {
        &self.slots
    }

    /// Dials in flight now across all workers (at most
    /// [`Config::max_dials_in_flight`]).
    pub fn dials_in_flight(&self) -> usize {
        self.slots.in_use()
    }
}
