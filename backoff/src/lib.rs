//! Retry delays for reconnecting to peers, as pure functions.
//!
//! This crate computes how long a node should wait before dialing a peer
//! again. It follows lnd's rules (double after each failed round, up to a
//! cap, with jitter; relax after a connection that was stable) and fixes
//! their defects:
//!
//! - a current backoff below the minimum, zero included, counts as the
//!   minimum, so a zero delay can never stick and redial a flapping peer in a
//!   tight loop (lnd PR #10640);
//! - every result lies in `[min, max]`, and at the cap the jitter spreads
//!   delays below `max` instead of overshooting it by 5% (lnd);
//! - an invalid policy (`min == 0`, `min > max`, an absurd jitter) is refused
//!   with a [`PolicyError`] when it is built, instead of panicking later
//!   (lnd panics on a zero jitter margin);
//! - a peer whose long connection just ended (most likely a restart) is
//!   retried at most 10 s apart for its first 12 rounds, the
//!   [reconnect phase](Reconnect), instead of doubling away while it is
//!   down: a restarted peer is back within seconds, not after about as
//!   long again as it was down. Peers that never connected or that flap
//!   never get the phase, so they decay as lnd's do; [`Policy::LND`] (or
//!   [`Reconnect::OFF`]) turns it off. [`Reconnect`] says why it converges
//!   and what it costs in dials.
//!
//! What it does not do: it reads no clock, draws no randomness (the caller
//! passes a `u64` of entropy, so every result is reproducible; [`SplitMix64`]
//! turns a seed the caller chooses into such values), allocates nothing and
//! needs no `std`. Keeping the current backoff of each peer is
//! the caller's job.
//!
//! ```
//! use backoff::{Jitter, Policy};
//! use core::time::Duration;
//!
//! let policy = Policy::new(Duration::from_millis(100), Duration::from_secs(2))?
//!     .with_jitter(Jitter::LND);
//!
//! // Each failed round doubles the delay, spread by about ±5%.
//! let mut delay = policy.first(0); // min, spread upwards by up to the margin
//! for entropy in [1u64, 2, 3] {
//!     delay = policy.after_failure(delay, entropy.wrapping_mul(0x9e37_79b9_7f4a_7c15));
//!     println!("wait {delay:?}");
//! }
//! assert!(delay >= Duration::from_millis(760) && delay <= Duration::from_millis(840));
//! # Ok::<(), backoff::PolicyError>(())
//! ```
#![no_std]

mod entropy;
mod error;
mod jitter;
mod policy;
mod reconnect;

pub use entropy::SplitMix64;
pub use error::PolicyError;
pub use jitter::Jitter;
pub use policy::Policy;
pub use reconnect::Reconnect;
