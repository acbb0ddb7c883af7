//! [`LdkDialer`]: a conn-worker [`Dialer`] whose connections LDK runs.

use std::fmt;
use std::ops::Deref;

use brontide::{NetTransport, Transport};
use conn_worker::{Dialer, FailureClass};
use lightning::ln::peer_handler::APeerManager;
use lightning_net_tokio::SocketDescriptor;
use lnaddr::{AddressKind, NodeAddr};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::setup::{setup, Side};
use crate::{Config, Error, LdkConnection};

/// Dials a [`NodeAddr`] through a [`NetTransport`] (DNS, TCP, or a SOCKS5
/// proxy for onion addresses or everything) and hands the stream to LDK's
/// `PeerManager` with `lightning_net_tokio::setup_outbound`; LDK runs its
/// own noise handshake and `init`.
///
/// A dial succeeds when LDK reports the peer connected, with a
/// [`LdkConnection`] whose life is LDK's connection. It fails with a typed
/// [`Error`]: the transport's, a connect or setup timeout, LDK closing the
/// connection during setup (or keeping an earlier one to the same peer).
/// It is cancellable at every point: before the stream is open the connect
/// is dropped; after, the connection is closed and LDK forgets it.
///
/// `PM` is how the application holds its `PeerManager` (an `Arc`, as in
/// LDK's `SimpleArcPeerManager`). Also accepts inbound streams:
/// [`accept`](Self::accept).
pub struct LdkDialer<PM> {
    peer_manager: PM,
    transport: NetTransport,
    config: Config,
}

impl<PM: Clone> Clone for LdkDialer<PM> {
    fn clone(&self) -> Self {
        Self {
            peer_manager: self.peer_manager.clone(),
            transport: self.transport.clone(),
            config: self.config,
        }
    }
}

impl<PM> fmt::Debug for LdkDialer<PM> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdkDialer")
            .field("transport", &self.transport)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<PM> LdkDialer<PM>
where
    PM: Deref + Clone + Send + Sync + 'static,
    PM::Target: APeerManager<Descriptor = SocketDescriptor>,
{
    /// A dialer for `peer_manager`, connecting directly (no proxy: onion
    /// addresses are not reached) with these timeouts.
    pub fn new(peer_manager: PM, config: Config) -> Self {
        Self {
            peer_manager,
            transport: NetTransport::new(),
            config,
        }
    }

    /// Opens streams through `transport` (a SOCKS5 proxy, keepalive).
    #[must_use]
    pub fn with_transport(mut self, transport: NetTransport) -> Self {
        self.transport = transport;
        self
    }

    /// The transport.
    pub fn transport(&self) -> &NetTransport {
        &self.transport
    }

    /// Whether addresses of this kind can be dialed (onion addresses need a
    /// proxy). Give it to the server's address policy so the proxy is
    /// configured once:
    /// `AddressPolicy::default().with_reach(|k| dialer.reaches(k))`
    /// ([`server::AddressPolicy::with_reach`]).
    pub fn reaches(&self, kind: AddressKind) -> bool {
        self.transport.reaches(kind)
    }

    /// Hands an accepted stream to LDK (`setup_inbound`) and waits until
    /// LDK reports the peer connected, under the setup timeout; returns the
    /// live connection (its [`peer`](LdkConnection::peer) is the id LDK
    /// learnt in the handshake). See [`accept_into`](crate::accept_into) to
    /// hand it to the server at once.
    pub async fn accept(
        &self,
        stream: TcpStream,
        cancel: &CancellationToken,
    ) -> Result<LdkConnection, Error> {
        let (peer, link) = setup(
            &self.peer_manager,
            Side::Inbound,
            stream,
            &self.config,
            cancel,
        )
        .await?;
        Ok(link.into_connection(peer, true))
    }
}

impl<PM> Dialer for LdkDialer<PM>
where
    PM: Deref + Clone + Send + Sync + 'static,
    PM::Target: APeerManager<Descriptor = SocketDescriptor>,
{
    type Addr = NodeAddr;
    type Conn = LdkConnection;
    type Error = Error;

    async fn dial(
        &self,
        node: &NodeAddr,
        cancel: CancellationToken,
    ) -> Result<LdkConnection, Error> {
        // The transport shares the timeout among a host name's addresses;
        // the outer one bounds it all the same.
        let timeout = self.config.connect_timeout();
        let connect =
            tokio::time::timeout(timeout, self.transport.connect_within(&node.addr, timeout));
        let stream = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Error::Cancelled),
            r = connect => match r {
                Err(_) => return Err(Error::ConnectTimeout),
                Ok(r) => r?,
            },
        };
        let (peer, link) = setup(
            &self.peer_manager,
            Side::Outbound(node.pubkey),
            stream,
            &self.config,
            &cancel,
        )
        .await?;
        Ok(link.into_connection(peer, false))
    }

    fn classify(&self, error: &Error) -> FailureClass {
        error.class()
    }
}
