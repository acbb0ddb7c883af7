//! SOCKS5 (RFC 1928, with RFC 1929 username/password) as a [`Transport`]:
//! the way to Tor's onion services, and to anything else a proxy should
//! carry.
//!
//! The SOCKS5 client is the `tokio-socks` crate's (widely used, tokio
//! native, and small: in this workspace it adds itself and `thiserror` 1 to
//! the lock file, its other dependencies being there already); this module
//! adds the target type, stream isolation and typed errors. It has no
//! timeout of its own: the dial's connect timeout
//! ([`DialConfig::connect_timeout`](crate::DialConfig::connect_timeout))
//! bounds the connect to the proxy and the whole SOCKS5 exchange. The proxied stream is the plain `TcpStream` to the proxy once
//! the exchange is done, so connections through a proxy and direct ones
//! have the same type.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_socks::tcp::Socks5Stream;

use crate::dial::Transport;
use crate::error::{Category, ConnectError};

/// Where a SOCKS5 proxy should connect: a host (a DNS name, an onion name or
/// an IP literal) and a port. Names are sent to the proxy as names (address
/// type 3), so the proxy resolves them: an onion name reaches Tor intact and
/// a DNS name is never resolved locally. IP literals are sent as addresses.
///
/// ```
/// use brontide::SocksTarget;
///
/// let t = SocksTarget::new("abc.onion", 9735)?;
/// assert_eq!(t.to_string(), "abc.onion:9735");
/// let ip = SocksTarget::from("[::1]:9735".parse::<std::net::SocketAddr>()?);
/// assert_eq!((ip.host(), ip.to_string().as_str()), ("::1", "[::1]:9735"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SocksTarget {
    host: String,
    port: u16,
}

impl SocksTarget {
    /// A target host and port.
    ///
    /// # Errors
    /// [`SocksError::BadTarget`] if `host` is empty or longer than the 255
    /// bytes SOCKS5 can carry.
    pub fn new(host: impl Into<String>, port: u16) -> Result<Self, SocksError> {
        let host = host.into();
        if host.is_empty() || host.len() > 255 {
            return Err(SocksError::BadTarget(host));
        }
        Ok(Self { host, port })
    }

    /// The host: a name, or an IP address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl From<SocketAddr> for SocksTarget {
    fn from(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl fmt::Display for SocksTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What a [`Socks5`] transport tells the proxy about who it is.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocksAuth {
    /// No authentication (SOCKS5 method 0). The default.
    None,
    /// The same username and password on every connection (RFC 1929).
    Password {
        /// The username, 1 to 255 bytes.
        username: String,
        /// The password, 1 to 255 bytes.
        password: String,
    },
    /// Stream isolation: a username and password never used before, on
    /// each connection. Tor (whose `IsolateSOCKSAuth` is on by default)
    /// then puts each connection on a circuit of its own, so two peers
    /// cannot be linked by sharing one.
    IsolatePerConnection,
}

impl fmt::Debug for SocksAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            // Never print a password.
            Self::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::IsolatePerConnection => f.write_str("IsolatePerConnection"),
        }
    }
}

/// A SOCKS5 proxy as a [`Transport`]: [`dial_with`](crate::dial_with) over
/// it reaches a [`SocksTarget`] through the proxy, then runs BOLT 8 over the
/// proxied stream (a plain [`TcpStream`] to the proxy, once the SOCKS5
/// exchange is done).
///
/// [`DialConfig::connect_timeout`](crate::DialConfig::connect_timeout)
/// (120 s by default, as lnd, also over Tor: Tor builds a circuit, and for an
/// onion service fetches its descriptor and meets it at a rendezvous point,
/// which often takes tens of seconds) bounds the TCP connect to the proxy and
/// the SOCKS5 exchange. To dial [`NetAddress`](lnaddr::NetAddress)es, some
/// through the proxy and some directly, use [`NetTransport`](crate::NetTransport).
///
/// Clones share the counter that makes isolation credentials unique.
///
/// ```no_run
/// use brontide::{dial_with, DialConfig, NodeKeyPair, PublicKey, SecretKey, Socks5, SocksTarget};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn run(remote: PublicKey) -> Result<(), Box<dyn std::error::Error>> {
/// let local = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
/// let tor = Socks5::new("127.0.0.1:9050".parse()?).with_stream_isolation();
/// let target = SocksTarget::new(
///     "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
///     9735,
/// )?;
/// let config = DialConfig::default();
/// let conn = dial_with(&tor, &target, &local, &remote, &config, &CancellationToken::new()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Socks5 {
    proxy: SocketAddr,
    auth: SocksAuth,
    isolation: Arc<IsolationCounter>,
}

#[derive(Debug)]
struct IsolationCounter {
    /// Differs between processes (and between `Socks5` values), so a
    /// restarted node does not reuse its credentials with the same Tor.
    prefix: u64,
    next: AtomicU64,
}

impl Socks5 {
    /// A proxy at `proxy` (Tor's default is `127.0.0.1:9050`), without
    /// authentication.
    pub fn new(proxy: SocketAddr) -> Self {
        use std::hash::{BuildHasher, RandomState};
        Self {
            proxy,
            auth: SocksAuth::None,
            isolation: Arc::new(IsolationCounter {
                prefix: RandomState::new().hash_one(proxy),
                next: AtomicU64::new(0),
            }),
        }
    }

    /// Sets what to tell the proxy.
    ///
    /// # Errors
    /// [`SocksError::BadCredentials`] if a username or password is empty or
    /// longer than 255 bytes.
    pub fn with_auth(mut self, auth: SocksAuth) -> Result<Self, SocksError> {
        if let SocksAuth::Password { username, password } = &auth {
            let ok = |s: &str| (1..=255).contains(&s.len());
            if !ok(username) || !ok(password) {
                return Err(SocksError::BadCredentials);
            }
        }
        self.auth = auth;
        Ok(self)
    }

    /// Turns on stream isolation ([`SocksAuth::IsolatePerConnection`]).
    pub fn with_stream_isolation(mut self) -> Self {
        self.auth = SocksAuth::IsolatePerConnection;
        self
    }

    /// The proxy's address.
    pub fn proxy(&self) -> SocketAddr {
        self.proxy
    }

    /// What is told to the proxy.
    pub fn auth(&self) -> &SocksAuth {
        &self.auth
    }

    /// Connects to `target` through the proxy (no timeout: the caller
    /// bounds it, as [`dial_with`](crate::dial_with) does).
    ///
    /// # Errors
    /// Every [`SocksError`] but the two about bad input.
    pub async fn connect_target(&self, target: &SocksTarget) -> Result<TcpStream, SocksError> {
        let tcp = TcpStream::connect(self.proxy).await.map_err(|source| {
            SocksError::ProxyUnreachable {
                proxy: self.proxy,
                source,
            }
        })?;
        tcp.set_nodelay(true).map_err(SocksError::ProxyIo)?;
        let mut tcp = Counted {
            inner: tcp,
            read: 0,
        };
        let to = (target.host.as_str(), target.port);
        let stream = match &self.auth {
            SocksAuth::None => Socks5Stream::connect_with_socket(&mut tcp, to)
                .await
                .map(drop),
            SocksAuth::Password { username, password } => {
                Socks5Stream::connect_with_password_and_socket(&mut tcp, to, username, password)
                    .await
                    .map(drop)
            }
            SocksAuth::IsolatePerConnection => {
                let n = self.isolation.next.fetch_add(1, Ordering::Relaxed);
                let username = format!("lnconn-{:016x}-{n}", self.isolation.prefix);
                Socks5Stream::connect_with_password_and_socket(&mut tcp, to, &username, "lnconn")
                    .await
                    .map(drop)
            }
        };
        match stream {
            Ok(()) => Ok(tcp.inner),
            // tokio-socks gives one error for a method we did not offer (in
            // the 2-byte method selection, the first bytes the proxy sends)
            // and for an unknown reply code (after it).
            Err(tokio_socks::Error::UnknownAuthMethod) if tcp.read <= METHOD_SELECTION_LEN => {
                Err(SocksError::Protocol(
                    "proxy chose an authentication method we did not offer".to_owned(),
                ))
            }
            Err(e) => Err(SocksError::from_socks(e, target)),
        }
    }
}

/// The proxy's answer to the client's greeting: version and method.
const METHOD_SELECTION_LEN: usize = 2;

/// The stream to the proxy during the SOCKS5 exchange, counting the bytes
/// the proxy sent, to tell which step an error came from.
struct Counted {
    inner: TcpStream,
    read: usize,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read += buf.filled().len() - before;
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Transport for Socks5 {
    type Addr = SocksTarget;
    type Stream = TcpStream;

    /// [`Socks5::connect_target`]; its error is [`ConnectError::Socks`].
    async fn connect(&self, target: &SocksTarget) -> Result<TcpStream, ConnectError> {
        Ok(self.connect_target(target).await?)
    }
}

/// Why a SOCKS5 proxy did not connect us.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocksError {
    /// The TCP connect to the proxy failed (is Tor running?).
    #[error("socks5 proxy {proxy} unreachable")]
    ProxyUnreachable {
        /// The proxy.
        proxy: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The connection to the proxy failed during the SOCKS5 exchange.
    #[error("socks5 proxy connection failed")]
    ProxyIo(#[source] io::Error),
    /// The proxy wants credentials we did not offer, or refused ours.
    #[error("socks5 proxy refused authentication")]
    AuthRefused,
    /// The proxy answered, but could not connect to the target.
    #[error("socks5 proxy could not connect to {target}: {reply}")]
    Refused {
        /// The target.
        target: SocksTarget,
        /// The proxy's reply.
        reply: SocksReply,
    },
    /// The proxy broke the SOCKS5 protocol.
    #[error("socks5 proxy protocol error: {0}")]
    Protocol(String),
    /// A target host SOCKS5 cannot carry (empty or over 255 bytes).
    #[error("bad socks5 target host {0:?}")]
    BadTarget(String),
    /// A username or password SOCKS5 cannot carry (each must be 1 to 255
    /// bytes).
    #[error("socks5 username and password must be 1 to 255 bytes each")]
    BadCredentials,
}

/// A SOCKS5 proxy's reply when it could not connect (RFC 1928 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SocksReply {
    /// 1: general failure.
    #[error("general failure")]
    GeneralFailure,
    /// 2: connection not allowed by the proxy's rules.
    #[error("connection not allowed by ruleset")]
    NotAllowed,
    /// 3: network unreachable.
    #[error("network unreachable")]
    NetworkUnreachable,
    /// 4: host unreachable (Tor's answer when an onion service cannot be
    /// reached).
    #[error("host unreachable")]
    HostUnreachable,
    /// 5: connection refused.
    #[error("connection refused")]
    ConnectionRefused,
    /// 6: TTL expired.
    #[error("ttl expired")]
    TtlExpired,
    /// 7: command not supported.
    #[error("command not supported")]
    CommandNotSupported,
    /// 8: address type not supported.
    #[error("address type not supported")]
    AddressTypeNotSupported,
    /// Any other code (Tor has extended ones).
    #[error("unknown reply code")]
    Other,
}

impl SocksError {
    fn from_socks(e: tokio_socks::Error, target: &SocksTarget) -> Self {
        use tokio_socks::Error as E;
        let refused = |reply| SocksError::Refused {
            target: target.clone(),
            reply,
        };
        match e {
            E::Io(e) => SocksError::ProxyIo(e),
            E::NoAcceptableAuthMethods
            | E::AuthorizationRequired
            | E::PasswordAuthFailure(_)
            | E::InvalidAuthValues(_) => SocksError::AuthRefused,
            E::GeneralSocksServerFailure => refused(SocksReply::GeneralFailure),
            E::ConnectionNotAllowedByRuleset => refused(SocksReply::NotAllowed),
            E::NetworkUnreachable => refused(SocksReply::NetworkUnreachable),
            E::HostUnreachable => refused(SocksReply::HostUnreachable),
            E::ConnectionRefused => refused(SocksReply::ConnectionRefused),
            E::TtlExpired => refused(SocksReply::TtlExpired),
            E::CommandNotSupported => refused(SocksReply::CommandNotSupported),
            E::AddressTypeNotSupported => refused(SocksReply::AddressTypeNotSupported),
            // tokio-socks reports an unknown reply code this way (and a
            // method we did not offer, told apart by `connect_target`).
            E::UnknownAuthMethod => refused(SocksReply::Other),
            // Our targets are checked when built (1 to 255 bytes), so
            // tokio-socks finds nothing wrong with them: this is the
            // proxy's reply, a bound address that is no name (not UTF-8).
            E::InvalidTargetAddress(why) => {
                SocksError::Protocol(format!("bad bound address in the reply: {why}"))
            }
            other => SocksError::Protocol(other.to_string()),
        }
    }

    /// Who or what is to blame: a proxy that is down, refuses our
    /// credentials or breaks the protocol is a local fault (it is ours to
    /// configure); a target the proxy cannot reach is the network's.
    pub fn category(&self) -> Category {
        match self {
            Self::Refused { .. } => Category::Network,
            Self::ProxyUnreachable { .. }
            | Self::ProxyIo(_)
            | Self::AuthRefused
            | Self::Protocol(_)
            | Self::BadTarget(_)
            | Self::BadCredentials => Category::Local,
        }
    }

    /// The [`io::ErrorKind`] closest to this error.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::ProxyUnreachable { source, .. } | Self::ProxyIo(source) => source.kind(),
            Self::AuthRefused => io::ErrorKind::PermissionDenied,
            Self::Refused { reply, .. } => match reply {
                SocksReply::ConnectionRefused => io::ErrorKind::ConnectionRefused,
                SocksReply::HostUnreachable => io::ErrorKind::HostUnreachable,
                SocksReply::NetworkUnreachable => io::ErrorKind::NetworkUnreachable,
                _ => io::ErrorKind::Other,
            },
            Self::Protocol(_) => io::ErrorKind::InvalidData,
            Self::BadTarget(_) | Self::BadCredentials => io::ErrorKind::InvalidInput,
        }
    }
}

impl From<SocksError> for io::Error {
    fn from(e: SocksError) -> Self {
        io::Error::new(e.kind(), e)
    }
}
