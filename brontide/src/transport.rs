//! [`NetTransport`]: dials a Lightning [`NetAddress`] by whatever it needs,
//! DNS, direct TCP or a SOCKS5 proxy.

use std::net::SocketAddr;

use lnaddr::{AddressKind, NetAddress};
use tokio::net::TcpStream;

use crate::dial::Transport;
use crate::error::ConnectError;
use crate::socket::{configure, tcp_connect, Keepalive};
use crate::socks::{Socks5, SocksTarget};

/// Which addresses a [`NetTransport`] sends through its proxy.
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

/// The [`Transport`] for Lightning addresses ([`NetAddress`]).
///
/// Directly: IP addresses over TCP; a host name is resolved when dialed and
/// each address it resolves to is tried in turn. Through a SOCKS5 proxy
/// ([`with_proxy`](Self::with_proxy)): onion addresses, and every address
/// with [`ProxyScope::All`]. Without a proxy an onion address fails at once
/// with [`ConnectError::Unreachable`]; [`reaches`](Self::reaches) says so
/// beforehand, so whoever orders a peer's addresses can leave them out.
///
/// All of a connect (the lookup, every address tried, the proxy's exchange)
/// is bounded by one timeout, the dial's
/// [`connect_timeout`](crate::DialConfig::connect_timeout). Every socket gets
/// `TCP_NODELAY` and the configured [`Keepalive`] (the default unless set).
///
/// ```no_run
/// use brontide::{dial_with, DialConfig, NetTransport, NodeKeyPair, ProxyScope, SecretKey, Socks5};
/// use lnaddr::{AddressKind, NodeAddr};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let local = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
/// let tor = Socks5::new("127.0.0.1:9050".parse()?).with_stream_isolation();
/// let transport = NetTransport::new().with_proxy(tor, ProxyScope::OnionOnly);
/// assert!(transport.reaches(AddressKind::Onion));
///
/// let node: NodeAddr = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7@node.example:9735".parse()?;
/// let cancel = CancellationToken::new();
/// let conn = dial_with(&transport, &node.addr, &local, &node.pubkey, &DialConfig::default(), &cancel).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NetTransport {
    proxy: Option<(Socks5, ProxyScope)>,
    keepalive: Option<Keepalive>,
}

impl Default for NetTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl NetTransport {
    /// Direct connections only, with [`Keepalive::default`].
    pub fn new() -> Self {
        Self {
            proxy: None,
            keepalive: Some(Keepalive::default()),
        }
    }

    /// Sends the addresses in `scope` through `proxy` (for Tor,
    /// `127.0.0.1:9050`).
    #[must_use]
    pub fn with_proxy(mut self, proxy: Socks5, scope: ProxyScope) -> Self {
        self.proxy = Some((proxy, scope));
        self
    }

    /// Sets TCP keepalive on every socket (`None`: off).
    #[must_use]
    pub fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// The proxy and what goes through it, if any.
    pub fn proxy(&self) -> Option<(&Socks5, ProxyScope)> {
        self.proxy.as_ref().map(|(p, s)| (p, *s))
    }

    /// The keepalive set on every socket.
    pub fn keepalive(&self) -> Option<Keepalive> {
        self.keepalive
    }

    /// Whether addresses of this kind can be dialed (onion addresses need a
    /// proxy).
    pub fn reaches(&self, kind: AddressKind) -> bool {
        kind != AddressKind::Onion || self.proxy.is_some()
    }

    async fn direct(&self, addr: &NetAddress) -> Result<TcpStream, ConnectError> {
        let keepalive = self.keepalive();
        match addr {
            NetAddress::Ip(addr) => tcp_connect(*addr, keepalive).await,
            NetAddress::Host { name, port } => {
                let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|source| ConnectError::Resolve {
                        host: name.clone(),
                        source,
                    })?
                    .collect();
                let mut last = None;
                for addr in resolved {
                    match tcp_connect(addr, keepalive).await {
                        Ok(stream) => return Ok(stream),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| ConnectError::NoAddress { host: name.clone() }))
            }
            other => Err(ConnectError::Unreachable(other.kind())),
        }
    }
}

impl Transport for NetTransport {
    type Addr = NetAddress;
    type Stream = TcpStream;

    async fn connect(&self, addr: &NetAddress) -> Result<TcpStream, ConnectError> {
        match &self.proxy {
            Some((proxy, scope))
                if *scope == ProxyScope::All || addr.kind() == AddressKind::Onion =>
            {
                let target = SocksTarget::new(addr.host(), addr.port())?;
                let stream = proxy.connect_target(&target).await?;
                configure(&stream, self.keepalive()).map_err(ConnectError::SocketOption)?;
                Ok(stream)
            }
            _ => self.direct(addr).await,
        }
    }
}
