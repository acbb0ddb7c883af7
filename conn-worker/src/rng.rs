//! Entropy for backoff jitter: the backoff crate's seeded generator, and a
//! seed from the process when the config sets none.

use std::hash::{BuildHasher, RandomState};

pub(crate) use backoff::SplitMix64;

/// A seed drawn from the process's hash randomness.
pub(crate) fn random_seed() -> u64 {
    RandomState::new().hash_one(0x5eed_u64)
}
