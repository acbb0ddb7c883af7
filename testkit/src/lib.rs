//! Test doubles for the workspace's crates: a [`ManualClock`] whose time
//! moves only when a test advances it, a scripted [`MockDialer`] that
//! records every attempt, and helpers ([`settle`], [`run`], [`Harness`]) that
//! run workers step by step so a test reads as a script. Behind features:
//! `ldk`, real Lightning peers (LDK nodes, also ones that restart on
//! their port), in the module `ldk`; `socks`, SOCKS5 proxies on 127.0.0.1 (a
//! fake one that records requests and routes onion names to a local
//! listener, and the real `microsocks`), in the module `socks`; `faults`,
//! a fault-injecting TCP proxy on 127.0.0.1 (black hole, latency, stall,
//! reset, half-close), in the module `faults`.
//!
//! Only ever a dev-dependency. Tests that use it live in each crate's
//! `tests/` folder.
//!
//! ```
//! use conn_worker::When;
//! use std::time::Duration;
//! use testkit::{Behavior, Harness, Seen};
//!
//! testkit::run(async {
//!     let mut h: Harness<u32, &str> = Harness::new(Harness::<u32, &str>::pr10640_config());
//!     h.dialer.set("a", Behavior::SucceedAfter(Duration::from_millis(30)));
//!     let worker = h.spawn(1);
//!     worker.connect(Some(vec!["a"]), When::After(Duration::from_millis(100))).unwrap();
//!     h.settle().await; // the worker has read the command and sleeps
//!     assert_eq!(h.clock.next_wake(), Some(Duration::from_millis(100)));
//!     h.advance(Duration::from_millis(130)).await;
//!     assert!(h.seen().await.contains(&Seen::Connected("a")));
//! });
//! ```

use std::fmt::Debug;
use std::hash::Hash;

mod clock;
mod corpus;
mod dialer;
#[cfg(feature = "faults")]
pub mod faults;
mod harness;
#[cfg(feature = "ldk")]
pub mod ldk;
#[cfg(feature = "socks")]
pub mod socks;

pub use clock::ManualClock;
pub use corpus::corpus;
pub use dialer::{Attempt, Behavior, MockConn, MockDialer, MockError, Outcome};
pub use harness::{run, settle, Harness, MockHandle, MockSpawner, Seen};

/// What the mocks need of peer ids and addresses (any such type has it).
pub trait Key: Clone + Eq + Hash + Debug + Send + Sync + 'static {}

impl<T: Clone + Eq + Hash + Debug + Send + Sync + 'static> Key for T {}
