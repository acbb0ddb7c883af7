//! Where the worker reads the time and how it sleeps.

use std::future::Future;

use tokio::time::Instant;

/// A source of time for workers.
///
/// Instants are [`tokio::time::Instant`]s, so the real clock is plain tokio
/// time (and follows tokio's paused test time, if a test uses it), while a
/// manual clock can hand out instants of its own that only move when a test
/// says so.
///
/// The sleep future is `'static` (it must not borrow the clock) so a worker
/// can keep it across its own state changes.
pub trait Clock: Clone + Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// A future that completes once [`now`](Clock::now) has reached
    /// `deadline` (at once if it already has).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static;
}

/// The real clock: [`tokio::time`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep_until(deadline)
    }
}

/// `now + d`, or a deadline decades away if that would overflow (a caller's
/// `Duration::MAX` means "not in this process's lifetime", not a panic).
pub fn deadline_after(now: Instant, d: std::time::Duration) -> Instant {
    const FAR: std::time::Duration = std::time::Duration::from_secs(30 * 365 * 24 * 3600);
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}
