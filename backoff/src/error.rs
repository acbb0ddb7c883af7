use core::fmt;
use core::time::Duration;

/// Why a [`Policy`](crate::Policy) could not be built.
///
/// Every rule is checked when the policy is built, so the functions that
/// compute delays have no failure mode and cannot panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The minimum delay is zero: a zero backoff redials a flapping peer in
    /// a tight loop (lnd PR #10640 lets one stick).
    ZeroMin,
    /// The minimum delay is above the maximum.
    MinAboveMax {
        /// The minimum that was asked for.
        min: Duration,
        /// The maximum that was asked for.
        max: Duration,
    },
    /// The reconnect phase's cap is zero (see
    /// [`Reconnect::new`](crate::Reconnect::new)).
    ZeroReconnectCap,
    /// The jitter window is wider than [`Jitter::MAX_PERMILLE`](crate::Jitter::MAX_PERMILLE).
    JitterOutOfRange {
        /// The width that was asked for, in thousandths of the delay.
        permille: u16,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroMin => f.write_str("minimum backoff is zero"),
            Self::MinAboveMax { min, max } => {
                write!(f, "minimum backoff {min:?} is above the maximum {max:?}")
            }
            Self::ZeroReconnectCap => f.write_str("reconnect cap is zero"),
            Self::JitterOutOfRange { permille } => write!(
                f,
                "jitter of {permille}\u{2030} is outside 0..={}\u{2030}",
                crate::Jitter::MAX_PERMILLE
            ),
        }
    }
}

impl core::error::Error for PolicyError {}
