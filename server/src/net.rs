//! The real network: feeding a brontide listener's connections to the
//! server. (Dialing is `brontide-dialer`'s [`BrontideDialer`](crate::BrontideDialer).)

use std::net::SocketAddr;

use brontide::{Connection, Listener};
use conn_worker::{Clock, Dialer};
use tokio::net::TcpStream;

use crate::{NodeAddr, PeerHandler, Server};

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
