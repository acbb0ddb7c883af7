use core::time::Duration;

use crate::PolicyError;

/// How widely a delay is spread so that peers do not retry in lockstep.
///
/// The width of the window is a fraction of the delay, in thousandths
/// ("permille"). lnd uses a margin of a tenth of the delay, centred on it
/// (about ±5%): that is [`Jitter::LND`], the default.
///
/// ```
/// use backoff::Jitter;
///
/// assert_eq!(Jitter::default(), Jitter::LND);
/// assert_eq!(Jitter::from_permille(100).unwrap(), Jitter::LND);
/// assert!(Jitter::from_permille(501).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Jitter {
    permille: u16,
}

impl Jitter {
    /// The widest window accepted: half the delay.
    pub const MAX_PERMILLE: u16 = 500;

    /// lnd's jitter: a window a tenth of the delay wide (`margin = next / 10`).
    pub const LND: Jitter = Jitter { permille: 100 };

    /// No jitter at all: every delay is exact. Useful in tests; in a node it
    /// makes peers that failed together retry together.
    pub const NONE: Jitter = Jitter { permille: 0 };

    /// A window `permille` thousandths of the delay wide.
    ///
    /// Refuses anything wider than [`Jitter::MAX_PERMILLE`].
    pub const fn from_permille(permille: u16) -> Result<Jitter, PolicyError> {
        if permille > Self::MAX_PERMILLE {
            return Err(PolicyError::JitterOutOfRange { permille });
        }
        Ok(Jitter { permille })
    }

    /// The width of the window, in thousandths of the delay.
    pub const fn permille(self) -> u16 {
        self.permille
    }

    /// The width of the window around `delay`, in nanoseconds.
    pub(crate) fn margin_nanos(self, delay: Duration) -> u128 {
        delay.as_nanos() * u128::from(self.permille) / 1000
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::LND
    }
}
