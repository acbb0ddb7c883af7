use core::time::Duration;

use crate::{Jitter, PolicyError};

/// A validated backoff policy: the bounds, the stable-connection duration and
/// the jitter.
///
/// Built once with [`Policy::new`] (or [`Policy::default`], lnd's values);
/// every rule is checked then, so the delay functions cannot fail or panic.
///
/// The delay functions are pure: the caller passes the current backoff and a
/// `u64` of entropy (any random `u64`), and gets the next delay. The same
/// inputs always give the same result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    min: Duration,
    max: Duration,
    stable: Duration,
    jitter: Jitter,
}

impl Policy {
    /// lnd's minimum backoff: 1 second.
    pub const DEFAULT_MIN: Duration = Duration::from_secs(1);
    /// lnd's maximum backoff: 1 hour.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(60 * 60);
    /// lnd's stable-connection duration: 10 minutes. A connection that lasted
    /// at least this long relaxes the backoff instead of growing it.
    pub const DEFAULT_STABLE: Duration = Duration::from_secs(10 * 60);

    /// A policy with delays between `min` and `max` (both inclusive), the
    /// default stable duration and lnd's jitter.
    ///
    /// Refuses a zero `min` (a zero backoff redials a flapping peer in a tight
    /// loop) and a `min` above `max`.
    pub const fn new(min: Duration, max: Duration) -> Result<Policy, PolicyError> {
        if min.is_zero() {
            return Err(PolicyError::ZeroMin);
        }
        if min.as_nanos() > max.as_nanos() {
            return Err(PolicyError::MinAboveMax { min, max });
        }
        Ok(Policy {
            min,
            max,
            stable: Self::DEFAULT_STABLE,
            jitter: Jitter::LND,
        })
    }

    /// The same policy with another stable-connection duration.
    pub const fn with_stable(self, stable: Duration) -> Policy {
        Policy { stable, ..self }
    }

    /// The same policy with another jitter.
    pub const fn with_jitter(self, jitter: Jitter) -> Policy {
        Policy { jitter, ..self }
    }

    /// The smallest delay this policy ever returns.
    pub const fn min(&self) -> Duration {
        self.min
    }

    /// The largest delay this policy ever returns.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// How long a connection must last to relax the backoff.
    pub const fn stable(&self) -> Duration {
        self.stable
    }

    /// How delays are spread.
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The first delay for a peer with no history: `min`, spread upwards by
    /// the jitter (into `[min, min + margin]`, never above `max`).
    ///
    /// lnd returns exactly `min` here, so after a mass disconnect (our own
    /// network blip) every peer's first retry lands in the same instant;
    /// the spread keeps them apart.
    ///
    /// ```
    /// use backoff::Policy;
    ///
    /// let policy = Policy::default();
    /// assert_eq!(policy.first(0), policy.min());
    /// assert!(policy.first(u64::MAX) > policy.min());
    /// ```
    pub fn first(&self, entropy: u64) -> Duration {
        self.spread(self.min, entropy)
    }

    /// The delay after a round of dials that all failed, given the delay
    /// waited before that round.
    ///
    /// lnd's rule with its defects fixed: the delay doubles (a `current`
    /// below `min`, zero included, counts as `min`), is capped at `max`, then
    /// is spread by the jitter. The window is centred on the doubled value,
    /// moved down where it would cross `max` and up where it would cross
    /// `min`, so the result always lies in `[min, max]` and peers at the cap
    /// are still spread out (below `max`) rather than all landing on it.
    ///
    /// ```
    /// use backoff::Policy;
    /// use core::time::Duration;
    ///
    /// let policy = Policy::default();
    /// let next = policy.after_failure(Duration::from_secs(1), 0x8000_0000_0000_0000);
    /// assert_eq!(next, Duration::from_secs(2)); // mid-window entropy: exactly twice
    /// ```
    pub fn after_failure(&self, current: Duration, entropy: u64) -> Duration {
        let base = if current < self.min {
            self.min
        } else {
            current
        };
        let doubled = base.saturating_mul(2);
        let next = if doubled > self.max {
            self.max
        } else {
            doubled
        };
        self.spread(next, entropy)
    }

    /// The delay before reconnecting to a peer whose connection just ended.
    ///
    /// - `current`: the peer's backoff before this; `None` if it has none yet
    ///   (then the result is [`first`](Policy::first)).
    /// - `connected_for`: how long the connection lasted; `None` if it never
    ///   started.
    ///
    /// lnd's stable-connection rule: a connection that never started or lasted
    /// less than [`stable`](Policy::stable) backs off further, as
    /// [`after_failure`](Policy::after_failure); a longer one relaxes that
    /// value by the time connected; where that falls to `min` or below, the
    /// result is [`first`](Policy::first) (`min`, spread upwards), so peers
    /// that all dropped at once do not all retry at once.
    ///
    /// ```
    /// use backoff::Policy;
    /// use core::time::Duration;
    ///
    /// let policy = Policy::default();
    /// let hour = Duration::from_secs(3600);
    /// // A peer that stayed up an hour comes back after about the minimum.
    /// let d = policy.after_disconnect(Some(Duration::from_secs(1)), Some(hour), 7);
    /// assert!(d >= policy.min() && d <= policy.first(u64::MAX));
    /// // A peer with no history starts there too.
    /// assert_eq!(policy.after_disconnect(None, None, 7), policy.first(7));
    /// ```
    pub fn after_disconnect(
        &self,
        current: Option<Duration>,
        connected_for: Option<Duration>,
        entropy: u64,
    ) -> Duration {
        let Some(current) = current else {
            return self.first(entropy);
        };
        let next = self.after_failure(current, entropy);
        match connected_for {
            Some(lasted) if lasted >= self.stable => {
                let relaxed = next.saturating_sub(lasted);
                if relaxed > self.min {
                    relaxed
                } else {
                    // Reuse the entropy's other half: `next` consumed it.
                    self.first(entropy.rotate_left(32))
                }
            }
            _ => next,
        }
    }

    /// Spreads `next` (already within `[min, max]`) over the jitter window,
    /// kept inside `[min, max]`.
    fn spread(&self, next: Duration, entropy: u64) -> Duration {
        let min = self.min.as_nanos();
        let max = self.max.as_nanos();
        let margin = self.jitter.margin_nanos(next);
        let mut lo = next.as_nanos().saturating_sub(margin / 2);
        let mut hi = lo + margin;
        if hi > max {
            hi = max;
            lo = max.saturating_sub(margin);
        }
        if lo < min {
            lo = min;
            hi = (min + margin).min(max);
        }
        from_nanos(lo + scale(hi - lo, entropy))
    }
}

impl Default for Policy {
    /// lnd's policy: 1 s to 1 h, stable after 10 minutes, ±5% jitter.
    fn default() -> Self {
        Policy {
            min: Self::DEFAULT_MIN,
            max: Self::DEFAULT_MAX,
            stable: Self::DEFAULT_STABLE,
            jitter: Jitter::LND,
        }
    }
}

/// `width * entropy / 2^64`, rounded down: uniform over `[0, width)` for a
/// uniform `entropy` (zero for a zero width). The width is split at 2^64 so
/// the products fit a `u128` for any `Duration`.
fn scale(width: u128, entropy: u64) -> u128 {
    let entropy = u128::from(entropy);
    let high = width >> 64;
    let low = width & u128::from(u64::MAX);
    high * entropy + ((low * entropy) >> 64)
}

/// Nanoseconds back to a `Duration`. Every value passed here lies within a
/// policy's `[min, max]`, so the seconds fit a `u64`.
fn from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits a u32.
    let sub = (nanos % NANOS_PER_SEC) as u32;
    Duration::new(secs, sub)
}
