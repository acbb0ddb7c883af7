//! [`LdkConnection`]: a handle whose life is one LDK connection's.

use std::fmt;
use std::future::Future;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::pin::Pin;

use bitcoin::secp256k1::PublicKey;

pub(crate) type Ended = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One connection that LDK's `PeerManager` runs (through
/// `lightning-net-tokio`), as the server holds it.
///
/// [`closed`](Self::closed) completes when LDK's connection ends.
/// [`close`](Self::close), and dropping the handle, close exactly this
/// connection (its socket is shut down, so LDK sees it end), never another
/// connection LDK may have to the same peer.
#[derive(Debug)]
pub struct LdkConnection {
    peer: PublicKey,
    inbound: bool,
    link: Link,
}

/// A stream handed to LDK: our clone of its socket and LDK's end future.
/// Dropping it closes the connection.
pub(crate) struct Link {
    remote: Option<SocketAddr>,
    socket: TcpStream,
    ended: Option<Ended>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("remote", &self.remote)
            .field("ended", &self.ended.is_none())
            .finish()
    }
}

impl Link {
    /// `socket` is a clone of the stream LDK owns; `ended` is the future
    /// `setup_inbound` or `setup_outbound` returned.
    pub(crate) fn new(remote: Option<SocketAddr>, socket: TcpStream, ended: Ended) -> Self {
        Self {
            remote,
            socket,
            ended: Some(ended),
        }
    }

    pub(crate) fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    pub(crate) async fn closed(&mut self) {
        if let Some(ended) = self.ended.as_mut() {
            ended.await;
            self.ended = None;
        }
    }

    pub(crate) fn close(&self) {
        // NotConnected once the peer or LDK has closed it: nothing to do.
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    pub(crate) fn into_connection(self, peer: PublicKey, inbound: bool) -> LdkConnection {
        LdkConnection {
            peer,
            inbound,
            link: self,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
    }
}

impl LdkConnection {
    /// The peer's node id.
    pub fn peer(&self) -> PublicKey {
        self.peer
    }

    /// Whether the peer dialed us.
    pub fn is_inbound(&self) -> bool {
        self.inbound
    }

    /// The far end's socket address (for an inbound connection an
    /// ephemeral port: never dial it).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.link.remote()
    }

    /// Completes when LDK's connection has ended (at once if it already
    /// has).
    pub async fn closed(&mut self) {
        self.link.closed().await;
    }

    /// Closes this connection: shuts its socket down, so LDK's read loop
    /// ends and LDK reports the peer disconnected. Await
    /// [`closed`](Self::closed) to know LDK is done with it.
    pub fn close(&self) {
        self.link.close();
    }
}
