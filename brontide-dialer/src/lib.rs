//! [`BrontideDialer`]: brontide as a `conn-worker` [`Dialer`], so a peer's
//! worker keeps it connected over BOLT 8 without the `server` registry.
//!
//! What it does: for a [`NodeAddr`] (`pubkey@address`), open a byte stream
//! through a [`NetTransport`] (DNS, direct TCP, or a SOCKS5 proxy for onion
//! addresses or for everything) and run the handshake as initiator, under
//! the [`DialConfig`]'s connect timeout (the whole connect) and act timeout
//! (each act). Errors are [`brontide::Error`]s, with their
//! [`category`](brontide::Error::category).
//!
//! What it does not do: choose or order addresses (the worker and whoever
//! feeds it do; [`BrontideDialer::reaches`] says which kinds can be
//! dialed), retry, or anything after the handshake.
//!
//! Why a crate and not a feature of `brontide` or `conn-worker`: each of
//! those must make sense without the other (brontide knows nothing of
//! workers, conn-worker nothing of Lightning), and a feature would put the
//! other crate in its manifest and, since features unify across a build,
//! into every user's build as soon as anything enabled it. This crate is the
//! one place that knows both.
//!
//! ```no_run
//! use brontide::{DialConfig, NetTransport, NodeKeyPair, ProxyScope, SecretKey, Socks5};
//! use brontide_dialer::BrontideDialer;
//! use conn_worker::{Config, EventKind, Spawner, TokioClock, When};
//! use lnaddr::NodeAddr;
//! use tokio_util::{sync::CancellationToken, task::TaskTracker};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let local = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
//! let tor = Socks5::new("127.0.0.1:9050".parse()?).with_stream_isolation();
//! let transport = NetTransport::new().with_proxy(tor, ProxyScope::OnionOnly);
//! let dialer = BrontideDialer::new(local, DialConfig::default()).with_transport(transport);
//!
//! let (root, tracker) = (CancellationToken::new(), TaskTracker::new());
//! let (spawner, mut events) = Spawner::new(TokioClock, Config::default(), root, tracker);
//! let peer: NodeAddr =
//!     "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7@node.example".parse()?;
//! let worker = spawner.spawn(peer.pubkey, dialer);
//! worker.connect(Some(vec![peer]), When::Now)?;
//! while let Some(event) = events.recv().await {
//!     if let EventKind::Connected { conn, .. } = event.kind {
//!         println!("connected to {}", conn.remote_pubkey());
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use brontide::{Connection, DialConfig, NetTransport, NodeKeyPair, NodeSigner};
use conn_worker::{Dialer, FailureClass};
use lnaddr::{AddressKind, NodeAddr};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A [`Dialer`] that connects to a [`NodeAddr`] through a [`NetTransport`]
/// and completes the BOLT 8 handshake as initiator.
///
/// Generic over the node's [`NodeSigner`] ([`NodeKeyPair`] by default).
#[derive(Debug, Clone)]
pub struct BrontideDialer<L = NodeKeyPair> {
    local: L,
    config: DialConfig,
    transport: NetTransport,
}

impl<L: NodeSigner + Clone> BrontideDialer<L> {
    /// A dialer for our node `local` with these timeouts, connecting
    /// directly (no proxy: onion addresses are not reached).
    pub fn new(local: L, config: DialConfig) -> Self {
        Self {
            local,
            config,
            transport: NetTransport::new(),
        }
    }

    /// Dials through `transport` (a proxy, keepalive).
    #[must_use]
    pub fn with_transport(mut self, transport: NetTransport) -> Self {
        self.transport = transport;
        self
    }

    /// The transport.
    pub fn transport(&self) -> &NetTransport {
        &self.transport
    }

    /// The timeouts.
    pub fn config(&self) -> &DialConfig {
        &self.config
    }

    /// Whether addresses of this kind can be dialed (onion addresses need a
    /// proxy).
    pub fn reaches(&self, kind: AddressKind) -> bool {
        self.transport.reaches(kind)
    }
}

impl<L: NodeSigner + Clone> Dialer for BrontideDialer<L> {
    type Addr = NodeAddr;
    type Conn = Connection<TcpStream>;
    type Error = brontide::Error;

    async fn dial(
        &self,
        node: &NodeAddr,
        cancel: CancellationToken,
    ) -> Result<Self::Conn, brontide::Error> {
        brontide::dial_with(
            &self.transport,
            &node.addr,
            &self.local,
            &node.pubkey,
            &self.config,
            &cancel,
        )
        .await
    }

    /// brontide's own category: a peer fault, the network, a timeout, or
    /// ours (a cancellation counts as ours).
    fn classify(&self, error: &brontide::Error) -> FailureClass {
        match error.category() {
            brontide::Category::Peer => FailureClass::Peer,
            brontide::Category::Network => FailureClass::Network,
            brontide::Category::Timeout => FailureClass::Timeout,
            _ => FailureClass::Local,
        }
    }
}
