//! The real network: dialing over brontide (BOLT 8 over TCP) and feeding a
//! brontide listener's connections to the server.

use std::io;
use std::net::SocketAddr;

use brontide::{Connection, DialConfig, Listener, NodeKeyPair, Socks5, SocksTarget};
use conn_worker::{Clock, Dialer};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::{AddressKind, NetAddress, NodeAddr, PeerHandler, Server, SkipReason};

/// Which addresses a [`BrontideDialer`] sends through its proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProxyScope {
    /// Only onion addresses (the default); the others are dialed directly.
    #[default]
    OnionOnly,
    /// Every address: IP addresses are sent to the proxy as addresses, DNS
    /// names as names (the proxy resolves them, so no DNS query leaves this
    /// host).
    All,
}

/// A [`Dialer`] that connects and completes the BOLT 8 handshake as
/// initiator.
///
/// Directly: IP addresses over TCP; host names are resolved when dialed and
/// each resolved address is tried in turn. Through a SOCKS5 proxy (see
/// [`with_proxy`](BrontideDialer::with_proxy)): onion addresses, and every
/// address with [`ProxyScope::All`]. Without a proxy, dialing an onion
/// address fails at once with [`SkipReason::NoProxy`] inside
/// [`brontide::Error::Connect`].
#[derive(Debug, Clone)]
pub struct BrontideDialer {
    local: NodeKeyPair,
    config: DialConfig,
    proxy: Option<(Socks5, ProxyScope)>,
}

impl BrontideDialer {
    /// A dialer for our node `local` with these timeouts.
    pub fn new(local: NodeKeyPair, config: DialConfig) -> Self {
        Self {
            local,
            config,
            proxy: None,
        }
    }

    /// Dials through `proxy` (for Tor, `127.0.0.1:9050`) the addresses in
    /// `scope`. Dials through the proxy use its connect timeout
    /// ([`Socks5::connect_timeout`], 120 s by default) in place of
    /// [`DialConfig::connect_timeout`].
    ///
    /// Also tell the server that onion addresses can now be dialed:
    /// [`AddressPolicy::onion`](crate::AddressPolicy::onion) (see
    /// [`reaches`](BrontideDialer::reaches)).
    #[must_use]
    pub fn with_proxy(mut self, proxy: Socks5, scope: ProxyScope) -> Self {
        self.proxy = Some((proxy, scope));
        self
    }

    /// The proxy and what goes through it, if any.
    pub fn proxy(&self) -> Option<(&Socks5, ProxyScope)> {
        self.proxy.as_ref().map(|(p, s)| (p, *s))
    }

    /// Whether addresses of this kind can be dialed (onion addresses need a
    /// proxy).
    pub fn reaches(&self, kind: AddressKind) -> bool {
        kind != AddressKind::Onion || self.proxy.is_some()
    }

    async fn dial_direct(
        &self,
        addr: &NetAddress,
        remote: &bitcoin::secp256k1::PublicKey,
        cancel: &CancellationToken,
    ) -> Result<Connection<TcpStream>, brontide::Error> {
        match addr {
            NetAddress::Ip(addr) => {
                brontide::dial(*addr, &self.local, remote, &self.config, cancel).await
            }
            NetAddress::Host { name, port } => {
                let resolved = tokio::select! {
                    r = tokio::net::lookup_host((name.as_str(), *port)) => r,
                    () = cancel.cancelled() => return Err(brontide::Error::Cancelled),
                };
                let mut last =
                    io::Error::new(io::ErrorKind::NotFound, "host name resolved to nothing");
                for addr in resolved.map_err(brontide::Error::Connect)? {
                    match brontide::dial(addr, &self.local, remote, &self.config, cancel).await {
                        Ok(conn) => return Ok(conn),
                        Err(brontide::Error::Connect(e)) => last = e,
                        Err(e) => return Err(e),
                    }
                }
                Err(brontide::Error::Connect(last))
            }
            NetAddress::Onion { .. } => Err(brontide::Error::Connect(io::Error::new(
                io::ErrorKind::Unsupported,
                SkipReason::NoProxy,
            ))),
        }
    }
}

impl Dialer for BrontideDialer {
    type Addr = NodeAddr;
    type Conn = Connection<TcpStream>;
    type Error = brontide::Error;

    async fn dial(
        &self,
        node: &NodeAddr,
        cancel: CancellationToken,
    ) -> Result<Self::Conn, brontide::Error> {
        let remote = &node.pubkey;
        let addr = &node.addr;
        match &self.proxy {
            Some((proxy, scope))
                if *scope == ProxyScope::All || addr.kind() == AddressKind::Onion =>
            {
                let target = SocksTarget::new(addr.host(), addr.port())
                    .map_err(|e| brontide::Error::Connect(e.into()))?;
                let config = self
                    .config
                    .clone()
                    .with_connect_timeout(proxy.connect_timeout());
                brontide::dial_with(proxy, &target, &self.local, remote, &config, &cancel).await
            }
            _ => self.dial_direct(addr, remote, &cancel).await,
        }
    }
}

impl<D, K, H> Server<D, K, H>
where
    D: Dialer<Addr = NodeAddr, Conn = Connection<TcpStream>>,
    K: Clock,
    H: PeerHandler<Connection<TcpStream>>,
{
    /// Feeds every connection `listener` accepts to [`inbound`](Server::inbound)
    /// (which refuses banned peers and applies the duplicate rule), on a task
    /// of the server's until the server shuts down. Returns the address the
    /// listener is bound to.
    ///
    /// To refuse banned keys before they cost a task, also build the
    /// listener with [`Server::accept_filter`] as its
    /// [`ListenerConfig::with_filter`](brontide::ListenerConfig::with_filter).
    pub fn serve(&self, mut listener: Listener) -> SocketAddr {
        let local_addr = listener.local_addr();
        let server = self.downgrade();
        let shutdown = self.root_token();
        self.spawn_task(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = shutdown.cancelled() => None,
                };
                let Some(accepted) = accepted else { break };
                let Some(server) = server.upgrade() else {
                    break;
                };
                let peer = accepted.remote_pubkey();
                server.inbound(peer, accepted.connection, Some(accepted.remote_addr));
            }
            listener.shutdown().await;
        });
        local_addr
    }
}
