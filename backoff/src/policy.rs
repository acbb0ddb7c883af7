use core::time::Duration;

use crate::{Jitter, PolicyError, Reconnect};

/// A validated backoff policy: the bounds, the stable-connection duration,
/// the jitter and the [reconnect phase](Reconnect).
///
/// Built once with [`Policy::new`] (or [`Policy::default`]: lnd's values
/// plus the reconnect phase; [`Policy::LND`]: lnd's values alone); every
/// rule is checked then, so the delay functions cannot fail or panic.
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
    reconnect: Reconnect,
}

impl Policy {
    /// lnd's minimum backoff: 1 second.
    pub const DEFAULT_MIN: Duration = Duration::from_secs(1);
    /// lnd's maximum backoff: 1 hour.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(60 * 60);
    /// lnd's stable-connection duration: 10 minutes. A connection that lasted
    /// at least this long relaxes the backoff instead of growing it.
    pub const DEFAULT_STABLE: Duration = Duration::from_secs(10 * 60);

    /// lnd's policy: 1 s to 1 h, stable after 10 minutes, ±5% jitter, and
    /// no reconnect phase (this crate's fixes of lnd's rule still apply).
    /// The numbers `shared/REFERENCE.md` gives for lnd are this policy's.
    pub const LND: Policy = Policy {
        min: Self::DEFAULT_MIN,
        max: Self::DEFAULT_MAX,
        stable: Self::DEFAULT_STABLE,
        jitter: Jitter::LND,
        reconnect: Reconnect::OFF,
    };

    /// A policy with delays between `min` and `max` (both inclusive), the
    /// default stable duration, lnd's jitter and the default reconnect phase
    /// ([`Reconnect::DEFAULT`]; its cap is clamped into `[min, max]`, so
    /// with `max` at or below 10 s it changes nothing).
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
            reconnect: Reconnect::DEFAULT,
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

    /// The same policy with another reconnect phase ([`Reconnect::OFF`]:
    /// none, as lnd).
    pub const fn with_reconnect(self, reconnect: Reconnect) -> Policy {
        Policy { reconnect, ..self }
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

    /// The reconnect phase, as given.
    pub const fn reconnect(&self) -> Reconnect {
        self.reconnect
    }

    /// The longest delay of the reconnect phase: its cap clamped into
    /// `[min, max]`.
    pub fn reconnect_cap(&self) -> Duration {
        self.reconnect.cap().clamp(self.min, self.max)
    }

    /// How many failed rounds after this disconnect are in the reconnect
    /// phase: [`Reconnect::rounds`] if the connection lasted at least
    /// [`stable`](Policy::stable), else 0 (it never started, or it flapped).
    ///
    /// The caller keeps this count for the peer (it replaces any count
    /// left from before) and, while it is above zero, computes the delay
    /// after a failed round with
    /// [`after_failure_reconnecting`](Policy::after_failure_reconnecting)
    /// and takes one off; at zero, with [`after_failure`](Policy::after_failure).
    ///
    /// ```
    /// use backoff::{Policy, SplitMix64};
    /// use core::time::Duration;
    ///
    /// let policy = Policy::default();
    /// let mut entropy = SplitMix64::new(1);
    /// // A peer connected for an hour drops and stays dark.
    /// let lasted = Some(Duration::from_secs(3600));
    /// let mut left = policy.reconnect_rounds(lasted);
    /// let mut delay = policy.after_disconnect(Some(Duration::from_secs(4)), lasted, entropy.next_u64());
    /// let mut waits = vec![delay];
    /// for _ in 0..16 {
    ///     delay = if left > 0 {
    ///         left -= 1;
    ///         policy.after_failure_reconnecting(delay, entropy.next_u64())
    ///     } else {
    ///         policy.after_failure(delay, entropy.next_u64())
    ///     };
    ///     waits.push(delay);
    /// }
    /// // The first retry and 12 more are at most 10 s apart, then doubling resumes.
    /// assert!(waits[..13].iter().all(|w| *w <= policy.reconnect_cap()));
    /// assert!(waits[13] > Duration::from_secs(15));
    /// assert_eq!(policy.reconnect_rounds(Some(Duration::from_secs(60))), 0); // flapped
    /// assert_eq!(policy.reconnect_rounds(None), 0); // never connected
    /// ```
    pub const fn reconnect_rounds(&self, connected_for: Option<Duration>) -> u16 {
        match connected_for {
            Some(lasted) if lasted.as_nanos() >= self.stable.as_nanos() => self.reconnect.rounds(),
            _ => 0,
        }
    }

    /// The delay after a failed round in the reconnect phase: as
    /// [`after_failure`](Policy::after_failure), with
    /// [`reconnect_cap`](Policy::reconnect_cap) in place of `max` (so the
    /// jitter spreads delays at the cap below it, never above).
    ///
    /// ```
    /// use backoff::Policy;
    /// use core::time::Duration;
    ///
    /// let policy = Policy::default();
    /// let d = policy.after_failure_reconnecting(Duration::from_secs(8), u64::MAX);
    /// assert!(d <= Duration::from_secs(10) && d >= Duration::from_secs(9));
    /// ```
    pub fn after_failure_reconnecting(&self, current: Duration, entropy: u64) -> Duration {
        self.capped().after_failure(current, entropy)
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
    /// With a [reconnect phase](Reconnect), the end of a stable connection
    /// also caps the result at [`reconnect_cap`](Policy::reconnect_cap)
    /// (spread below it): the first retry of the phase.
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
        let d = self.after_disconnect_uncapped(current, connected_for, entropy);
        if self.reconnect_rounds(connected_for) > 0 && d > self.reconnect_cap() {
            // The entropy's other quarter: the two above used halves.
            self.capped()
                .spread(self.reconnect_cap(), entropy.rotate_left(16))
        } else {
            d
        }
    }

    /// lnd's rule for [`after_disconnect`](Policy::after_disconnect).
    fn after_disconnect_uncapped(
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

    /// This policy with the reconnect cap as its `max`.
    fn capped(&self) -> Policy {
        Policy {
            max: self.reconnect_cap(),
            ..*self
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
    /// lnd's numbers ([`Policy::LND`]: 1 s to 1 h, stable after 10 minutes,
    /// ±5% jitter) with the default reconnect phase ([`Reconnect::DEFAULT`]:
    /// retries at most 10 s apart for 12 rounds after a stable connection
    /// ends).
    fn default() -> Self {
        Self::LND.with_reconnect(Reconnect::DEFAULT)
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
