//! Dialing: open a byte stream through a [`Transport`], then run the
//! handshake as initiator. Also [`handshake_outbound`] and [`accept`] for
//! streams the caller already holds.
//!
//! Cancellation ends the connect or the handshake at once. The stream is
//! owned by the dial's future and dropped (closed) exactly once, whichever way
//! it ends; no task is spawned.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::connection::Connection;
use crate::error::{ConnectError, Error};
use crate::io::{cancellable, initiate, respond, timeout_unless_ready};
use crate::keys::NodeSigner;
use crate::socket::{tcp_connect, Keepalive};

/// Default time allowed for the connect (lnd's, also over Tor).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// Default time allowed for each handshake act (lnd's read timeout).
pub const DEFAULT_ACT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a byte stream to a peer is opened: plain TCP to a socket address
/// ([`Tcp`]), a SOCKS5 proxy ([`Socks5`](crate::Socks5)), or a Lightning
/// address by whichever of DNS, TCP and the proxy it needs
/// ([`NetTransport`](crate::NetTransport)). Others can be written without
/// touching the handshake.
pub trait Transport: Send + Sync {
    /// The address type this transport dials.
    type Addr: Send + Sync;
    /// The byte stream it opens.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Opens a byte stream to `addr`. Dropping the future must abandon the
    /// attempt and release whatever it holds. The caller bounds the whole
    /// of it with one timeout.
    fn connect(
        &self,
        addr: &Self::Addr,
    ) -> impl Future<Output = Result<Self::Stream, ConnectError>> + Send;

    /// [`connect`](Self::connect), told the `timeout` the caller bounds it
    /// with, so a transport that tries several addresses in turn can give
    /// each a share of it instead of letting the first use it all
    /// ([`NetTransport`](crate::NetTransport) does). The caller still
    /// applies the timeout. [`dial_with`] calls this. By default, `connect`.
    fn connect_within(
        &self,
        addr: &Self::Addr,
        timeout: Duration,
    ) -> impl Future<Output = Result<Self::Stream, ConnectError>> + Send {
        let _ = timeout;
        self.connect(addr)
    }
}

/// Plain TCP, with `TCP_NODELAY` set (messages are written whole) and
/// [`Keepalive::default`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

impl Transport for Tcp {
    type Addr = SocketAddr;
    type Stream = TcpStream;

    async fn connect(&self, addr: &SocketAddr) -> Result<TcpStream, ConnectError> {
        tcp_connect(*addr, Some(Keepalive::default())).await
    }
}

/// Timeouts for [`dial`]: one for the whole connect, one for each act.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DialConfig {
    /// Time allowed for the connect: the DNS lookup, the TCP connect (to
    /// each address a name resolves to, in turn, each with a share of what
    /// remains: see [`NetTransport`](crate::NetTransport)) or the connect to
    /// the proxy and the SOCKS5 exchange, all together. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Time allowed for each handshake act. Default [`DEFAULT_ACT_TIMEOUT`].
    pub act_timeout: Duration,
}

impl Default for DialConfig {
    fn default() -> Self {
        DialConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            act_timeout: DEFAULT_ACT_TIMEOUT,
        }
    }
}

impl DialConfig {
    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-act handshake timeout.
    pub fn with_act_timeout(mut self, timeout: Duration) -> Self {
        self.act_timeout = timeout;
        self
    }
}

/// Connects to `addr` over TCP and runs the handshake as initiator with the
/// node `remote`.
///
/// # Errors
/// [`Error::Cancelled`] as soon as `cancel` fires; [`Error::ConnectTimedOut`],
/// [`Error::Connect`]; [`Error::HandshakeTimedOut`] naming the act;
/// [`Error::Handshake`] naming the act and the failure; [`Error::HandshakeIo`].
pub async fn dial<L: NodeSigner + Clone>(
    addr: SocketAddr,
    local: &L,
    remote: &PublicKey,
    config: &DialConfig,
    cancel: &CancellationToken,
) -> Result<Connection<TcpStream>, Error> {
    dial_with(&Tcp, &addr, local, remote, config, cancel).await
}

/// [`dial`] over any [`Transport`].
///
/// # Errors
/// As [`dial`].
pub async fn dial_with<T: Transport, L: NodeSigner + Clone>(
    transport: &T,
    addr: &T::Addr,
    local: &L,
    remote: &PublicKey,
    config: &DialConfig,
    cancel: &CancellationToken,
) -> Result<Connection<T::Stream>, Error> {
    // One wait for the cancellation around the connect and the handshake.
    cancellable(cancel, async {
        let connect = transport.connect_within(addr, config.connect_timeout);
        let mut stream = match timeout_unless_ready(config.connect_timeout, connect).await {
            Err(_) => return Err(Error::ConnectTimedOut),
            Ok(Err(e)) => return Err(Error::Connect(e)),
            Ok(Ok(stream)) => stream,
        };
        let session = initiate(&mut stream, local, remote, config.act_timeout).await?;
        Ok(Connection::new(stream, session))
    })
    .await
}

/// Runs the initiator's handshake on a stream that is already connected.
///
/// # Errors
/// As [`dial`], without the connect errors.
pub async fn handshake_outbound<S: AsyncRead + AsyncWrite + Unpin, L: NodeSigner + Clone>(
    mut stream: S,
    local: &L,
    remote: &PublicKey,
    act_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Connection<S>, Error> {
    let session = cancellable(cancel, initiate(&mut stream, local, remote, act_timeout)).await?;
    Ok(Connection::new(stream, session))
}

/// Runs the responder's handshake on a stream that is already connected (for
/// callers with their own listener).
///
/// # Errors
/// [`Error::Cancelled`], [`Error::HandshakeTimedOut`], [`Error::Handshake`],
/// [`Error::HandshakeIo`].
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin, L: NodeSigner + Clone>(
    mut stream: S,
    local: &L,
    act_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Connection<S>, Error> {
    let session = cancellable(cancel, respond(&mut stream, local, act_timeout)).await?;
    Ok(Connection::new(stream, session))
}
