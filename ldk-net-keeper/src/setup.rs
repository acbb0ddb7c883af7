//! Handing a stream to LDK and waiting until LDK reports the peer
//! connected.

use std::net::SocketAddr;
use std::ops::Deref;

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::SocketAddress;
use lightning::ln::peer_handler::{APeerManager, PeerDetails};
use lightning_net_tokio::SocketDescriptor;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::connection::{Ended, Link};
use crate::{Config, Error};

/// Which way a stream goes to LDK.
pub(crate) enum Side {
    /// We dialed this peer.
    Outbound(PublicKey),
    /// The peer dialed us; LDK learns its id in the handshake.
    Inbound,
}

/// LDK's form of a socket address, as `lightning-net-tokio` records it.
fn ldk_addr(addr: SocketAddr) -> SocketAddress {
    match addr {
        SocketAddr::V4(a) => SocketAddress::TcpIpV4 {
            addr: a.ip().octets(),
            port: a.port(),
        },
        SocketAddr::V6(a) => SocketAddress::TcpIpV6 {
            addr: a.ip().octets(),
            port: a.port(),
        },
    }
}

/// Hands `stream` to LDK and waits until LDK reports this connection's
/// peer connected (noise handshake and `init` done), the connection ends,
/// `cancel` fires or the setup timeout passes. Returns the peer's id and
/// the live link; on every error the connection is closed.
///
/// LDK has no "peer connected" callback outside its message handlers, so
/// the `PeerManager` is read every [`Config::poll_interval`] while the
/// setup runs (and never after). This connection is told from another one
/// to the same peer by its direction and its remote socket address.
pub(crate) async fn setup<PM>(
    peer_manager: &PM,
    side: Side,
    stream: TcpStream,
    config: &Config,
    cancel: &CancellationToken,
) -> Result<(PublicKey, Link), Error>
where
    PM: Deref + Clone + Send + Sync + 'static,
    PM::Target: APeerManager<Descriptor = SocketDescriptor>,
{
    let deadline = tokio::time::Instant::now() + config.setup_timeout();
    let std = stream.into_std().map_err(Error::Socket)?;
    let remote = std.peer_addr().ok();
    let closer = std.try_clone().map_err(Error::Socket)?;
    let wanted = remote.map(ldk_addr);
    let (inbound, expected) = match side {
        Side::Outbound(id) => (false, Some(id)),
        Side::Inbound => (true, None),
    };
    let ended: Ended = match expected {
        Some(id) => Box::pin(lightning_net_tokio::setup_outbound(
            peer_manager.clone(),
            id,
            std,
        )),
        None => Box::pin(lightning_net_tokio::setup_inbound(
            peer_manager.clone(),
            std,
        )),
    };
    // From here on, dropping `link` closes the connection.
    let mut link = Link::new(remote, closer, ended);
    let ours = |d: &PeerDetails| {
        d.is_inbound_connection == inbound
            && wanted.is_some()
            && d.socket_address == wanted
            && expected.is_none_or(|id| d.counterparty_node_id == id)
    };
    let find = || -> Option<PublicKey> {
        let pm = peer_manager.as_ref();
        match expected {
            Some(id) => pm.peer_by_node_id(&id).filter(ours).map(|_| id),
            None => pm
                .list_peers()
                .into_iter()
                .find(ours)
                .map(|d| d.counterparty_node_id),
        }
    };
    let mut tick = tokio::time::interval(config.poll_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(peer) = find() {
            return Ok((peer, link));
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Error::Cancelled),
            () = link.closed() => {
                // LDK dropped it: a duplicate if it still has this peer.
                let duplicate = expected
                    .is_some_and(|id| peer_manager.as_ref().peer_by_node_id(&id).is_some());
                return Err(if duplicate { Error::AlreadyConnected } else { Error::Disconnected });
            }
            () = tokio::time::sleep_until(deadline) => return Err(Error::SetupTimeout),
            _ = tick.tick() => {}
        }
    }
}
