//! A tiny seeded generator for backoff jitter (no dependency needed).

use std::hash::{BuildHasher, RandomState};

/// splitmix64: fast, seedable, good enough to spread retry times.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A seed drawn from the process's hash randomness.
    pub(crate) fn random_seed() -> u64 {
        RandomState::new().hash_one(0x5eed_u64)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
