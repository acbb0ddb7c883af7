//! Scaled time: a [`Clock`] on which the server and its workers see
//! `factor` times more time pass than the wall clock does. Every duration
//! they read from their configuration (backoff policy, stagger, attempt
//! timeout, slot lease, and whatever a later policy adds) is thereby scaled
//! without being named here.

use std::future::Future;
use std::time::Duration;

use conn_worker::{deadline_after, Clock};
use tokio::time::Instant;

/// "World" time runs `factor` times faster than wall time, from `origin`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scaled {
    origin: Instant,
    factor: u32,
}

impl Scaled {
    /// World time starts now, `factor` (at least 1) times faster.
    pub(crate) fn new(factor: u32) -> Self {
        Self {
            origin: Instant::now(),
            factor: factor.max(1),
        }
    }

    /// How many world seconds one wall second is.
    pub(crate) fn factor(&self) -> u32 {
        self.factor
    }

    /// The wall time that `world` takes (rounded up to the nanosecond, so
    /// a sleep never ends before its world deadline).
    pub(crate) fn wall(&self, world: Duration) -> Duration {
        let nanos = world.as_nanos().div_ceil(u128::from(self.factor));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The world time that `wall` stands for.
    pub(crate) fn world(&self, wall: Duration) -> Duration {
        wall.saturating_mul(self.factor)
    }

    /// Sleeps for `world` time.
    pub(crate) async fn sleep(&self, world: Duration) {
        tokio::time::sleep(self.wall(world)).await;
    }
}

impl Clock for Scaled {
    fn now(&self) -> Instant {
        deadline_after(self.origin, self.world(self.origin.elapsed()))
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        let world = deadline.saturating_duration_since(self.origin);
        tokio::time::sleep_until(deadline_after(self.origin, self.wall(world)))
    }
}
