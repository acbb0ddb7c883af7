//! The real network: dialing over brontide (BOLT 8 over TCP) and feeding a
//! brontide listener's connections to the server.

use std::io;
use std::net::SocketAddr;

use brontide::{Connection, DialConfig, Listener, NodeKeyPair};
use conn_worker::{Clock, Dialer};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::{NetAddress, NodeAddr, PeerHandler, Server};

/// A [`Dialer`] that connects over TCP and completes the BOLT 8 handshake as
/// initiator. Host names are resolved when dialed and each resolved address
/// is tried in turn.
#[derive(Debug, Clone)]
pub struct BrontideDialer {
    local: NodeKeyPair,
    config: DialConfig,
}

impl BrontideDialer {
    /// A dialer for our node `local` with these timeouts.
    pub fn new(local: NodeKeyPair, config: DialConfig) -> Self {
        Self { local, config }
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
        match &node.addr {
            NetAddress::Ip(addr) => {
                brontide::dial(*addr, &self.local, remote, &self.config, &cancel).await
            }
            NetAddress::Host { name, port } => {
                let resolved = tokio::select! {
                    r = tokio::net::lookup_host((name.as_str(), *port)) => r,
                    () = cancel.cancelled() => return Err(brontide::Error::Cancelled),
                };
                let mut last =
                    io::Error::new(io::ErrorKind::NotFound, "host name resolved to nothing");
                for addr in resolved.map_err(brontide::Error::Connect)? {
                    match brontide::dial(addr, &self.local, remote, &self.config, &cancel).await {
                        Ok(conn) => return Ok(conn),
                        Err(brontide::Error::Connect(e)) => last = e,
                        Err(e) => return Err(e),
                    }
                }
                Err(brontide::Error::Connect(last))
            }
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
