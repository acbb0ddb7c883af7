/// A small seeded generator of the `entropy` arguments the delay functions
/// take (splitmix64: fast, well spread, and the same sequence for the same
/// seed).
///
/// The crate still draws no randomness: the caller picks the seed (from the
/// system for a node, fixed for a reproducible test) and owns the state.
///
/// ```
/// use backoff::{Policy, SplitMix64};
/// use core::time::Duration;
///
/// let policy = Policy::default();
/// let mut entropy = SplitMix64::new(42);
/// let next = policy.after_failure(Duration::from_secs(1), entropy.next_u64());
/// assert_eq!(next, policy.after_failure(Duration::from_secs(1), SplitMix64::new(42).next_u64()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next value of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
