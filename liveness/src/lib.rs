//! BOLT 1 liveness: find a connection whose far end vanished without a
//! FIN (a host that lost power, a NAT that dropped its mapping), so it can
//! be closed and redialed.
//!
//! [`Liveness`] is a sans-IO state machine (quinn-proto's shape): it never
//! reads a clock or touches a socket. Tell it each message that arrives
//! ([`Liveness::on_message_received`], [`Liveness::on_pong`],
//! [`Liveness::on_ping`]), and [`Liveness::poll`] it at
//! [`Liveness::next_deadline`]: it asks for a `ping` after
//! [`Config::ping_interval`] with nothing heard, and says the peer is dead
//! ([`Action::Disconnect`] with a typed [`Error`]) when nothing at all
//! arrives within [`Config::pong_timeout`] of that ping, or when a pong
//! does not carry the length asked for. A dead link is found within
//! [`Config::detection_bound`] of its last byte. The defaults are lnd's.
//!
//! [`Ping`] and [`Pong`] encode and decode the two messages with BOLT 1's
//! rules: answer a ping only if it asks for fewer than 65532 bytes, a pong
//! carries exactly what was asked, the ping's ignored bytes are never
//! copied or echoed, and [`Liveness::on_ping`] bounds the pong bytes a
//! peer can make us send per interval.
//!
//! What it does not do: any I/O, BOLT 8, `init`, or other message types.
//! With the `tokio` feature, `next_action` waits for the next action on
//! tokio's timer (and `now` reads tokio's clock), so a session can
//! `select!` on it beside its reads.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use liveness::{Action, Config, Error, Liveness, Ping, Pong};
//!
//! let config = Config::new(Duration::from_secs(60), Duration::from_secs(30))?;
//! let start = Instant::now();
//! let mut link = Liveness::new(config, start);
//!
//! // A minute of silence: ping.
//! let at = link.next_deadline().expect("a ping is due");
//! let Some(Action::SendPing(ping)) = link.poll(at) else { panic!() };
//! let bytes = ping.encode(); // send these to the peer
//!
//! // The peer answers as BOLT 1 says: the link is alive.
//! let pong = Ping::decode(&bytes)?.pong().expect("answered");
//! link.on_pong(at + Duration::from_millis(80), Pong::decode(&pong.encode())?.len());
//! assert!(!link.is_awaiting_pong());
//!
//! // Then silence: a ping, and 30 s later the peer is dead.
//! let at = link.next_deadline().expect("a ping is due");
//! assert!(matches!(link.poll(at), Some(Action::SendPing(_))));
//! let at = link.next_deadline().expect("a pong is due");
//! assert_eq!(
//!     link.poll(at),
//!     Some(Action::Disconnect(Error::PongTimeout { timeout: Duration::from_secs(30) })),
//! );
//! # Ok::<(), Error>(())
//! ```

mod config;
#[cfg(feature = "tokio")]
mod driver;
mod error;
mod machine;
mod wire;

pub use config::Config;
#[cfg(feature = "tokio")]
pub use driver::{next_action, now};
pub use error::Error;
pub use machine::{Action, Liveness};
pub use wire::{Ping, Pong, MAX_ANSWERED_PONG_BYTES, PING_TYPE, PONG_TYPE};
