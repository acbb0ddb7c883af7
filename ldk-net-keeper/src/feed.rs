//! Facts from LDK for the server: accepted streams, announced addresses,
//! channels opened and closed.

use std::ops::Deref;

use bitcoin::secp256k1::PublicKey;
use conn_worker::Clock;
use lightning::events::Event;
use lightning::ln::msgs::SocketAddress;
use lightning::ln::peer_handler::APeerManager;
use lightning::routing::gossip::{NetworkGraph, NodeId};
use lightning::util::logger::Logger;
use lightning::util::ser::Writeable;
use lightning_net_tokio::SocketDescriptor;
use lnaddr::NetAddress;
use server::{PeerHandler, Server};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::{Error, LdkConnection, LdkDialer};

/// LDK's socket address as ours, through its BOLT 7 encoding (the one
/// format both sides define). `None` for what we do not dial: Tor v2
/// onions, which BOLT 7 deprecated.
pub fn net_address(addr: &SocketAddress) -> Option<NetAddress> {
    let bytes = addr.encode();
    match NetAddress::read_from(&bytes) {
        Ok((net, used)) if used == bytes.len() => Some(net),
        _ => None,
    }
}

/// The addresses `peer` announced in LDK's network graph, converted
/// ([`net_address`]); `None` if the graph has no announcement from it.
pub fn announced_addresses<L>(graph: &NetworkGraph<L>, peer: &PublicKey) -> Option<Vec<NetAddress>>
where
    L: Deref,
    L::Target: Logger,
{
    let graph = graph.read_only();
    let info = graph.node(&NodeId::from_pubkey(peer))?;
    let announcement = info.announcement_info.as_ref()?;
    Some(
        announcement
            .addresses()
            .iter()
            .filter_map(net_address)
            .collect(),
    )
}

/// Gives the server each of `peers`' announced addresses from LDK's
/// network graph ([`Server::node_announcement`]), so a peer that moved is
/// dialed at its new address. Call it for your persistent peers after
/// gossip sync, and whenever LDK's gossip handler has processed new
/// announcements (for example on a timer). Returns how many peers had an
/// announcement.
pub fn announce_from_graph<D, K, H, L>(
    server: &Server<D, K, H>,
    graph: &NetworkGraph<L>,
    peers: impl IntoIterator<Item = PublicKey>,
) -> usize
where
    D: conn_worker::Dialer<Addr = lnaddr::NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
    L: Deref,
    L::Target: Logger,
{
    let mut announced = 0;
    for peer in peers {
        if let Some(addrs) = announced_addresses(graph, &peer) {
            server.node_announcement(peer, addrs);
            announced += 1;
        }
    }
    announced
}

/// Feeds one LDK event to the server: [`Event::ChannelReady`] makes the
/// counterparty persistent ([`Server::channel_opened`]);
/// [`Event::ChannelClosed`] counts the channel closed and prunes the peer
/// if it was persistent only for its channels and has none left (as lnd's
/// server does; a peer the user connected with `perm` stays). Other events
/// are ignored. Call it from your event handler beside your own handling.
/// Returns whether the event was one of those two.
pub fn handle_event<D, K, H>(server: &Server<D, K, H>, event: &Event) -> bool
where
    D: conn_worker::Dialer<Addr = lnaddr::NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    match event {
        Event::ChannelReady {
            counterparty_node_id,
            ..
        } => {
            server.channel_opened(*counterparty_node_id);
            true
        }
        Event::ChannelClosed {
            counterparty_node_id: Some(peer),
            ..
        } => {
            server.channel_closed(peer);
            server.prune(peer);
            true
        }
        _ => false,
    }
}

/// Runs an accepted stream through LDK ([`LdkDialer::accept`]) and, once
/// LDK reports the peer connected, hands it to the server
/// ([`Server::inbound`]: the duplicate rule, the peer's worker stands down).
/// Returns whether the server kept it; spawn one call per accepted stream.
pub async fn accept_into<PM, K, H>(
    server: &Server<LdkDialer<PM>, K, H>,
    dialer: &LdkDialer<PM>,
    stream: TcpStream,
    cancel: &CancellationToken,
) -> Result<bool, Error>
where
    PM: Deref + Clone + Send + Sync + 'static,
    PM::Target: APeerManager<Descriptor = SocketDescriptor>,
    K: Clock,
    H: PeerHandler<LdkConnection>,
{
    let conn = dialer.accept(stream, cancel).await?;
    let source = conn.remote();
    Ok(server.inbound(conn.peer(), conn, source))
}
