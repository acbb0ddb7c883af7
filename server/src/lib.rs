//! The registry of a Lightning node's peers and lnd's peer lifecycle.
//!
//! A [`Server`] owns which peers are persistent (one
//! [`conn_worker`] worker each, which owns that peer's whole dial / retry /
//! backoff life) and which are connected. On top of them it runs lnd's
//! operations: connect (perm or one-off), disconnect, inbound and outbound
//! connections with a duplicate-connection rule both ends agree on,
//! reconnect after a disconnect with the backoff for how long it lasted,
//! node announcements, channels, prune, ban, startup and shutdown.
//!
//! What it does not do: speak any protocol above the transport. The
//! application hands it a [`PeerHandler`] that runs each established
//! connection and returns when it ends; the server learns every disconnect
//! that way. The dialer (how a `pubkey@address` becomes a connection) and the
//! clock are also supplied, so the whole lifecycle runs deterministically in
//! tests on a manual clock and mock dialers.
//!
//! Addresses are BOLT 7's, from the `lnaddr` crate (re-exported here:
//! [`NetAddress`]: IPv4, IPv6, Tor v3 onion, DNS name; [`NodeAddr`],
//! `pubkey@address`). Before a worker sees a peer's addresses, the
//! server orders them by [`Config::addresses`] (IPv6, IPv4, DNS, then onion;
//! the worker puts the last one that worked first) and leaves out those the
//! dialer cannot reach (onion addresses without a proxy), reporting each as
//! [`ServerEvent::AddressSkipped`] and in [`PeerStatus::skipped`]; build the
//! policy from the dialer ([`AddressPolicy::for_dialer`]) so the proxy is
//! configured once. [`BrontideDialer`] (from the `brontide-dialer` crate)
//! dials through a [`brontide::NetTransport`]: over TCP, resolving DNS names
//! itself, or through a SOCKS5 proxy for onion addresses or for everything.
//!
//! Persistence: [`Server::new`] keeps everything in memory;
//! [`Server::open`] takes a [`peer_store::PeerStore`] (SQLite, in memory,
//! or your node's own database), starts every stored persistent peer from
//! it, and writes every change of who is persistent and every ban through
//! it before the change takes effect, in one order shared by the store and
//! the registry.
//!
//! Lock discipline: the registry is behind one mutex that is never held
//! across an `.await` or a blocking send; workers report to the server
//! through a channel the server drains on its own task, so a worker never
//! waits for the server.
//!
//! ```
//! use std::convert::Infallible;
//! use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
//! use conn_worker::{dial_fn, TokioClock};
//! use server::{Config, Direction, DisconnectReason, NodeAddr, PeerHandler, Server};
//! use tokio_util::sync::CancellationToken;
//!
//! /// A trivial application: holds each connection until told to stop.
//! struct Hold;
//! impl PeerHandler<String> for Hold {
//!     async fn run(&self, _: PublicKey, _: String, _: Direction, cancel: CancellationToken)
//!         -> DisconnectReason {
//!         cancel.cancelled().await;
//!         DisconnectReason::Cancelled
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secp = Secp256k1::new();
//! let key = |b| PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[b; 32]).unwrap());
//! // A dialer that "connects" by naming the address (a real node uses brontide).
//! let dialer = dial_fn(|addr: NodeAddr, _cancel| async move {
//!     Ok::<_, Infallible>(addr.to_string())
//! });
//! let server = Server::new(key(1), Config::default(), dialer, TokioClock, Hold);
//! let peer = NodeAddr::new(key(2), "127.0.0.1:9735".parse::<std::net::SocketAddr>()?);
//! server.connect(peer.clone(), true).await?; // persistent: its worker dials
//! let mut events = server.events();
//! while !server.is_connected(&peer.pubkey) {
//!     events.recv().await?;
//! }
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod accept;
mod config;
mod duplicate;
mod durable;
mod error;
mod event;
mod events;
mod handler;
mod net;
mod ops;
mod preference;
mod registry;
mod server;
mod startup;
mod status;

pub use brontide::ProxyScope;
pub use brontide_dialer::BrontideDialer;
pub use config::Config;
pub use duplicate::{Direction, DuplicateRule};
pub use durable::permanent_ban_end;
pub use error::ServerError;
pub use event::ServerEvent;
pub use handler::{DisconnectReason, PeerHandler};
pub use lnaddr::{
    AddressError, AddressKind, NetAddress, NodeAddr, OnionV3, DEFAULT_PORT, MAX_DESCRIPTOR_LEN,
};
pub use peer_store;
pub use preference::{AddressPolicy, SkipReason, SkippedAddr};
pub use server::{Health, Server};
pub use startup::StartupPeer;
pub use status::{ConnectionInfo, PeerStatus};

pub use bitcoin::secp256k1::PublicKey;
pub use conn_worker::{DialFailure, FailureClass, State, Status, When};
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// The server of a node that dials with brontide over TCP (or SOCKS5) on
/// tokio's clock: the common case, as LDK's `SimpleArcPeerManager`.
pub type BrontideServer<H> = Server<BrontideDialer, conn_worker::TokioClock, H>;
