//! Keeps an LDK node connected to its peers with the `server` registry:
//! `lightning-net-tokio` behind a `conn-worker` dialer.
//!
//! LDK's `PeerManager` runs the Lightning protocol but never redials; the
//! application must keep connections up. This crate hands that job to a
//! [`Server`]: one worker per persistent peer with per-peer exponential
//! backoff and jitter, addresses from gossip, a global dial limit, lnd's
//! duplicate rule and channel-driven persistence.
//!
//! - [`LdkDialer`] is the [`Dialer`](conn_worker::Dialer): it opens the
//!   stream through brontide's [`NetTransport`] (DNS, TCP, SOCKS5 for Tor:
//!   proxies configured once), hands it to
//!   `lightning_net_tokio::setup_outbound`, and succeeds when LDK reports
//!   the peer connected (noise handshake and `init` done). Typed
//!   [`Error`]s; cancellable at every point.
//! - [`LdkConnection`] is the connection the server holds: its life is LDK's
//!   connection. [`LdkPeerHandler`] waits for its end and returns a
//!   [`DisconnectReason`](server::DisconnectReason), so the server
//!   reconnects with backoff.
//! - [`accept_into`] runs an accepted stream through `setup_inbound` and
//!   tells the server ([`Server::inbound`]).
//! - [`announce_from_graph`] feeds announced addresses from LDK's
//!   `NetworkGraph` ([`Server::node_announcement`]); [`handle_event`] feeds
//!   `ChannelReady` and `ChannelClosed` ([`Server::channel_opened`],
//!   [`Server::channel_closed`], [`Server::prune`]).
//!
//! What it does not do: anything of LDK's protocol (LDK runs the noise
//! handshake, pings and messages; brontide's handshake is not used), nor
//! call `PeerManager::timer_tick_occurred` or `process_events` (keep your
//! background processor). LDK has no callback for "peer connected" outside
//! its message handlers, so a pending connection's state is read from the
//! `PeerManager` every [`Config::poll_interval`] (10 ms) until it is
//! connected, ends or times out; an established connection costs no polling.
//! A link that died without a FIN is found by LDK's own pings (your
//! `timer_tick_occurred` calls): LDK closes it, and the server redials.
//!
//! The name: it keeps `lightning-net-tokio`'s connections (the "net" of
//! LDK) up, and is not a network stack of its own.
//!
//! # Duplicates
//!
//! LDK keeps the first connection to a peer and closes a second one at the
//! end of the noise handshake. Such a second connection never reaches the
//! server: the dial fails with [`Error::AlreadyConnected`], an inbound one
//! with [`Error::Disconnected`]. Closing a connection (the server's
//! cancellation, or dropping an [`LdkConnection`]) shuts down that
//! connection's own socket, never LDK's other connection to the same peer
//! (`PeerManager::disconnect_by_node_id` could not tell them apart).
//!
//! # Moving from ldk-node's reconnect loop
//!
//! Remove the task that every 60 s walks your stored peers and calls
//! `connect_outbound` for each one not in `list_peers()`, and the
//! `connect_outbound` calls of your "connect" command. Instead:
//!
//! 1. build a [`LdkServer`] with an [`LdkDialer`] over your `PeerManager`;
//! 2. `server.connect(node, true)` for each peer you want kept (at startup,
//!    or [`Server::startup`] with your stored peers; or open the server on
//!    a `PeerStore` with [`Server::open`], which keeps them, their
//!    addresses and backoff across restarts);
//! 3. send accepted streams to [`accept_into`] instead of `setup_inbound`;
//! 4. in your event handler call [`handle_event`]; after gossip updates
//!    call [`announce_from_graph`] for your peers;
//! 5. `server.disconnect(&id).await` instead of `disconnect_by_node_id` for a peer
//!    you no longer want (otherwise its worker redials it).
//!
//! Measured against that loop (criterion bench `reconnect`, 20 LDK
//! peers, the default worker config on a clock scaled 60×): a
//! dropped connection is back in 1.2 s (p50; the loop: 27 s), a restarted
//! peer in 5 s (p50; p99 9.7 s, within min backoff plus stagger, thanks to
//! the backoff policy's reconnect phase; the loop: 32 s and 60 s), and a
//! dead peer gets 12 dials in the first hour, then one an hour, instead of
//! 60 an hour (BENCHMARKS.md).
//!
//! ```no_run
//! use std::ops::Deref;
//! use ldk_net_keeper::{accept_into, Config, LdkDialer, LdkPeerHandler, LdkServer, TokioClock};
//! use lightning::ln::peer_handler::APeerManager;
//! use lightning_net_tokio::SocketDescriptor;
//! use server::{NodeAddr, PublicKey, Server};
//! use tokio_util::sync::CancellationToken;
//!
//! /// `peer_manager`: your `Arc<PeerManager>` (for example an
//! /// `Arc<SimpleArcPeerManager<..>>`); `local`: your node id.
//! async fn keep_connected<PM>(peer_manager: PM, local: PublicKey, peers: Vec<NodeAddr>)
//!     -> Result<(), Box<dyn std::error::Error>>
//! where
//!     PM: Deref + Clone + Send + Sync + 'static,
//!     PM::Target: APeerManager<Descriptor = SocketDescriptor>,
//! {
//!     let dialer = LdkDialer::new(peer_manager, Config::default());
//!     let server: LdkServer<PM> =
//!         Server::new(local, server::Config::default(), dialer.clone(), TokioClock, LdkPeerHandler);
//!     for peer in peers {
//!         server.connect(peer, true).await?; // kept connected from now on
//!     }
//!     // Accepted streams go through the server instead of `setup_inbound`.
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:9735").await?;
//!     let cancel = CancellationToken::new();
//!     loop {
//!         let (stream, _) = listener.accept().await?;
//!         let (server, dialer, cancel) = (server.clone(), dialer.clone(), cancel.clone());
//!         tokio::spawn(async move { accept_into(&server, &dialer, stream, &cancel).await });
//!     }
//! }
//! ```

mod config;
mod connection;
mod dialer;
mod error;
mod feed;
mod handler;
mod setup;

pub use brontide::NetTransport;
pub use config::{Config, ConfigError};
pub use conn_worker::TokioClock;
pub use connection::LdkConnection;
pub use dialer::LdkDialer;
pub use error::Error;
pub use feed::{accept_into, announce_from_graph, announced_addresses, handle_event, net_address};
pub use handler::LdkPeerHandler;
use server::Server;

/// The server of an LDK node: dials with [`LdkDialer`] on tokio's clock and
/// lets LDK run each connection ([`LdkPeerHandler`]).
pub type LdkServer<PM> = Server<LdkDialer<PM>, conn_worker::TokioClock, LdkPeerHandler>;
