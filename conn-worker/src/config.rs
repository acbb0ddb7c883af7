//! Worker settings.

use std::num::NonZeroUsize;
use std::time::Duration;

use backoff::Policy;

/// Settings shared by the workers of one [`Spawner`](crate::Spawner).
///
/// Build it from [`Config::default`] and the `with_*` methods; every default
/// is a documented constant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Retry delays (default: [`Policy::default`], lnd's 1 s to 1 h, stable
    /// after 10 min, ±5% jitter, plus the reconnect phase: after a stable
    /// connection ends, 12 rounds at most 10 s apart; [`Policy::LND`] for
    /// lnd's schedule alone).
    pub policy: Policy,
    /// How long after an attempt starts before the next address may start
    /// while it is still running, when `max_parallel` allows overlap
    /// (default [`Config::DEFAULT_STAGGER`]), counted from when the previous
    /// attempt got its global dial slot. A failed attempt frees its slot at
    /// once, without waiting for the stagger. With `max_parallel` 1 the next
    /// address starts when the previous attempt ends, so the stagger is
    /// unused (the dialer's own timeouts bound each attempt).
    pub stagger: Duration,
    /// Attempts one worker keeps in flight at once (default
    /// [`Config::DEFAULT_MAX_PARALLEL`], lnd's sequential behaviour).
    pub max_parallel: NonZeroUsize,
    /// Dials in flight across all workers of the spawner (default
    /// [`Config::DEFAULT_MAX_DIALS_IN_FLIGHT`]), counted in one place, the
    /// spawner's [`DialSlots`](crate::DialSlots), which its owner's other
    /// dials share. An attempt waits for a slot before it calls the dialer,
    /// by priority (see [`slot_lease`](Self::slot_lease)); the wait is
    /// cancelled like the dial.
    pub max_dials_in_flight: NonZeroUsize,
    /// Seed for the jitter of backoff delays; `None` (the default) draws one
    /// from the process's hash randomness. Fix it for reproducible tests.
    pub seed: Option<u64>,
    /// See [`Config::attempt_timeout`].
    attempt_timeout: Duration,
    /// See [`Config::slot_lease`].
    slot_lease: Duration,
}

/// A setting that cannot work, refused when the config is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A timeout of zero would fail every attempt before it starts.
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
}

impl Config {
    /// lnd's delay between a peer's addresses: 10 s.
    pub const DEFAULT_STAGGER: Duration = Duration::from_secs(10);
    /// One attempt at a time per peer, as lnd.
    pub const DEFAULT_MAX_PARALLEL: NonZeroUsize = NonZeroUsize::MIN;
    /// Ten dials in flight across all peers, as Core Lightning.
    pub const DEFAULT_MAX_DIALS_IN_FLIGHT: NonZeroUsize = match NonZeroUsize::new(10) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    };

    /// The attempt timeout of the defaults: LDK's 10 s connect timeout.
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

    /// How long one attempt (slot wait excluded: connect and handshake) may
    /// run before the worker gives up on it as failed
    /// ([`DialFailure::TimedOut`](crate::DialFailure::TimedOut)), whatever
    /// the dialer's own timeouts (default
    /// [`Config::DEFAULT_ATTEMPT_TIMEOUT`]). A dialer with no timeout of its
    /// own cannot hold a dial slot longer than this.
    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    /// The slot lease of the defaults: 1 s, about four round trips across
    /// the world, enough for a TCP connect and most handshakes.
    pub const DEFAULT_SLOT_LEASE: Duration = Duration::from_secs(1);

    /// How long an attempt keeps its global dial slot against a waiting
    /// attempt (default [`Config::DEFAULT_SLOT_LEASE`]); waiters are served
    /// by priority (a user's dial before a peer that did not fail, before a
    /// retry), and take the slot of a holder of their own or a lower
    /// priority whose lease is over. The attempt
    /// that loses its slot fails as timed out and its worker goes on (next
    /// address, or backoff), so addresses that never answer cannot starve
    /// live peers; with no one waiting, an attempt keeps its slot up to
    /// [`attempt_timeout`](Self::attempt_timeout). See [`DialSlots`](crate::DialSlots).
    pub fn slot_lease(&self) -> Duration {
        self.slot_lease
    }

    /// Replaces the slot lease; zero is refused.
    pub fn with_slot_lease(mut self, lease: Duration) -> Result<Self, ConfigError> {
        if lease.is_zero() {
            return Err(ConfigError::ZeroTimeout("slot lease"));
        }
        self.slot_lease = lease;
        Ok(self)
    }

    /// Replaces the attempt timeout; zero is refused.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("attempt timeout"));
        }
        self.attempt_timeout = timeout;
        Ok(self)
    }

    /// Replaces the backoff policy.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the stagger between a peer's addresses.
    #[must_use]
    pub fn with_stagger(mut self, stagger: Duration) -> Self {
        self.stagger = stagger;
        self
    }

    /// Replaces the number of attempts one worker keeps in flight.
    #[must_use]
    pub fn with_max_parallel(mut self, max_parallel: NonZeroUsize) -> Self {
        self.max_parallel = max_parallel;
        self
    }

    /// Replaces the limit on dials in flight across all workers.
    #[must_use]
    pub fn with_max_dials_in_flight(mut self, max: NonZeroUsize) -> Self {
        self.max_dials_in_flight = max;
        self
    }

    /// Fixes the jitter seed (workers derive their own from it in spawn
    /// order).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::default(),
            stagger: Self::DEFAULT_STAGGER,
            max_parallel: Self::DEFAULT_MAX_PARALLEL,
            max_dials_in_flight: Self::DEFAULT_MAX_DIALS_IN_FLIGHT,
            seed: None,
            attempt_timeout: Self::DEFAULT_ATTEMPT_TIMEOUT,
            slot_lease: Self::DEFAULT_SLOT_LEASE,
        }
    }
}
