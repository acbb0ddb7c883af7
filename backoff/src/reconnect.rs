use core::time::Duration;

use crate::PolicyError;

/// The reconnect phase: right after a *stable* connection ends, retries stay
/// at most [`cap`](Reconnect::cap) apart for the first
/// [`rounds`](Reconnect::rounds) failed rounds, then grow as usual.
///
/// Why: a peer that was connected for a long time and then dropped is most
/// likely restarting (an upgrade, a reboot) and will be back in seconds to a
/// minute or two. With plain doubling (1, 2, 4, 8, 16, 32 s, …) a peer that
/// comes back between two dials waits for the next one, up to about as long
/// as it was down: measured, 34–36 s for restarts of 5–60 s (issue 18). With
/// the phase, a peer back at any time `t` of the phase is dialed by
/// `t + cap` (plus the rest of a dial already under way at `t`: a refused
/// dial ends at once, one to a host that is off ends at its timeout).
///
/// Which peers get it: only the end of a connection that lasted at least the
/// policy's [`stable`](crate::Policy::stable) duration starts a phase
/// ([`Policy::reconnect_rounds`](crate::Policy::reconnect_rounds)). A peer
/// that never connected, and a flapping one (connections shorter than
/// `stable`), never get one, so they back off exactly as without it.
///
/// Why it converges: the phase is entered only by a stable connection's end,
/// never by a failure, and lasts a bounded number of rounds. A peer that
/// went dark for good after a long connection is dialed `rounds + 1` times
/// within the phase (the first retry after the drop and one after each
/// capped round), then its delay doubles from the cap to the policy's `max`
/// as before. With the defaults that is 13 dials in the first 95–105 s and
/// 20 in its first hour instead of 11–12 (then one an hour, as before). A peer
/// that keeps connecting for `stable` and dropping costs at most
/// `rounds + 1` dials per such connection, so at most 13 per 10 minutes of
/// being connected.
///
/// The cap is used clamped into the policy's `[min, max]`: a cap at or
/// above `max` changes nothing, and a cap below `min` means "every `min`".
///
/// ```
/// use backoff::{Policy, Reconnect};
/// use core::time::Duration;
///
/// let policy = Policy::default(); // the phase is on: 10 s for 12 rounds
/// assert_eq!(policy.reconnect(), Reconnect::DEFAULT);
/// // Off, as lnd: `Policy::LND`, or any policy `.with_reconnect(Reconnect::OFF)`.
/// assert!(Policy::LND.reconnect().is_off());
/// assert!(Reconnect::new(Duration::ZERO, 3).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reconnect {
    cap: Duration,
    rounds: u16,
}

impl Reconnect {
    /// The default cap: 10 s, lnd's stagger between a peer's addresses, so a
    /// restarted peer is reconnected within about the policy's minimum plus
    /// one stagger (issue 18's goal).
    pub const DEFAULT_CAP: Duration = Duration::from_secs(10);

    /// The default length: 12 failed rounds. With the default policy (1 s
    /// to 1 h, ±5% jitter) the phase then covers the first 95–105 s after
    /// the drop: a restart of up to about a minute and a half.
    pub const DEFAULT_ROUNDS: u16 = 12;

    /// The default phase: [`DEFAULT_CAP`](Self::DEFAULT_CAP) for
    /// [`DEFAULT_ROUNDS`](Self::DEFAULT_ROUNDS).
    pub const DEFAULT: Reconnect = Reconnect {
        cap: Self::DEFAULT_CAP,
        rounds: Self::DEFAULT_ROUNDS,
    };

    /// No phase at all: lnd's behaviour.
    pub const OFF: Reconnect = Reconnect {
        cap: Self::DEFAULT_CAP,
        rounds: 0,
    };

    /// A phase that keeps retries at most `cap` apart for `rounds` failed
    /// rounds after a stable connection ends (`rounds` 0: no phase).
    ///
    /// Refuses a zero `cap`, which can only be a mistake (a phase that
    /// retries as fast as possible is a cap at the policy's `min`: say so).
    pub const fn new(cap: Duration, rounds: u16) -> Result<Reconnect, PolicyError> {
        if cap.is_zero() {
            return Err(PolicyError::ZeroReconnectCap);
        }
        Ok(Reconnect { cap, rounds })
    }

    /// The longest delay in the phase, before clamping into the policy's
    /// `[min, max]` (see [`Policy::reconnect_cap`](crate::Policy::reconnect_cap)).
    pub const fn cap(self) -> Duration {
        self.cap
    }

    /// How many failed rounds after a stable connection's end keep their
    /// delay under the cap.
    pub const fn rounds(self) -> u16 {
        self.rounds
    }

    /// Whether there is no phase.
    pub const fn is_off(self) -> bool {
        self.rounds == 0
    }
}

impl Default for Reconnect {
    fn default() -> Self {
        Self::DEFAULT
    }
}
