//! The facts fed from LDK: addresses converted from LDK's `SocketAddress`,
//! and channel events making a peer persistent or prunable.

use std::sync::Arc;
use std::time::Duration;

use ldk_net_keeper::{
    handle_event, net_address, Config, LdkDialer, LdkPeerHandler, LdkServer, TokioClock,
};
use lightning::events::{ClosureReason, Event};
use lightning::ln::msgs::SocketAddress;
use lightning::ln::types::ChannelId;
use lightning::types::features::ChannelTypeFeatures;
use lightning::util::ser::Hostname;
use lnaddr::{NetAddress, NodeAddr, OnionV3};
use server::Server;
use testkit::ldk::{LdkNode, LdkPeer, Manager, QuietLogger};

/// How long a test waits for anything before failing (a hang guard).
const CAP: Duration = Duration::from_secs(60);

#[test]
fn ip_addresses_convert() {
    let v4 = SocketAddress::TcpIpV4 {
        addr: [127, 0, 0, 1],
        port: 9735,
    };
    assert_eq!(
        net_address(&v4),
        Some(NetAddress::Ip("127.0.0.1:9735".parse().unwrap()))
    );
    let mut v6 = [0u8; 16];
    v6[15] = 1;
    let v6 = SocketAddress::TcpIpV6 {
        addr: v6,
        port: 9736,
    };
    assert_eq!(
        net_address(&v6),
        Some(NetAddress::Ip("[::1]:9736".parse().unwrap()))
    );
}

#[test]
fn host_names_convert() {
    let name = Hostname::try_from("node.example".to_string()).expect("valid name");
    let host = SocketAddress::Hostname {
        hostname: name,
        port: 9735,
    };
    assert_eq!(
        net_address(&host),
        Some(NetAddress::Host {
            name: "node.example".into(),
            port: 9735
        })
    );
}

#[test]
fn onion_v3_converts_and_v2_is_left_out() {
    let onion = OnionV3::from_pubkey([7; 32]);
    let ours = NetAddress::Onion { onion, port: 9735 };
    let ldk = SocketAddress::OnionV3 {
        ed25519_pubkey: [7; 32],
        checksum: u16::from_be_bytes(onion.checksum()),
        version: 3,
        port: 9735,
    };
    assert_eq!(net_address(&ldk), Some(ours));
    assert_eq!(net_address(&SocketAddress::OnionV2([1; 12])), None);
}

fn ready(peer: bitcoin::secp256k1::PublicKey) -> Event {
    Event::ChannelReady {
        channel_id: ChannelId::from_bytes([1; 32]),
        user_channel_id: 1,
        counterparty_node_id: peer,
        funding_txo: None,
        channel_type: ChannelTypeFeatures::empty(),
    }
}

fn closed(peer: bitcoin::secp256k1::PublicKey) -> Event {
    Event::ChannelClosed {
        channel_id: ChannelId::from_bytes([1; 32]),
        user_channel_id: 1,
        reason: ClosureReason::LocallyInitiatedCooperativeClosure,
        counterparty_node_id: Some(peer),
        channel_capacity_sats: None,
        channel_funding_txo: None,
        last_local_balance_msat: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_ready_makes_a_peer_persistent_and_its_close_prunes_it() {
    let hub = LdkNode::new(50);
    let hub_id = hub.node_id;
    let server: LdkServer<Arc<Manager>> = Server::new(
        hub_id,
        server::Config::default(),
        LdkDialer::new(Arc::clone(&hub.manager), Config::default()),
        TokioClock,
        LdkPeerHandler,
    );
    let peer = LdkNode::new(51).node_id;
    assert!(handle_event(&server, &ready(peer)));
    assert_eq!(server.persistence(&peer), Some(false));
    assert!(handle_event(&server, &closed(peer)));
    assert_eq!(server.persistence(&peer), None, "no channels left: pruned");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_perm_peer_outlives_its_last_channel() {
    let hub = LdkNode::new(52);
    let hub_id = hub.node_id;
    let server: LdkServer<Arc<Manager>> = Server::new(
        hub_id,
        server::Config::default(),
        LdkDialer::new(Arc::clone(&hub.manager), Config::default()),
        TokioClock,
        LdkPeerHandler,
    );
    let peer = LdkNode::new(53).node_id;
    // A closed port: the worker's dials fail, which this test ignores.
    let addr = "127.0.0.1:9"
        .parse::<std::net::SocketAddr>()
        .expect("address");
    server
        .connect(NodeAddr::new(peer, addr), true)
        .await
        .expect("connect");
    handle_event(&server, &ready(peer));
    handle_event(&server, &closed(peer));
    assert_eq!(server.persistence(&peer), Some(true));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_announced_in_ldks_network_graph_is_dialed() {
    use bitcoin::constants::ChainHash;
    use bitcoin::Network;
    use lightning::ln::msgs::{UnsignedChannelAnnouncement, UnsignedNodeAnnouncement};
    use lightning::routing::gossip::{NetworkGraph, NodeAlias, NodeId};
    use lightning::routing::utxo::UtxoLookup;
    use lightning::types::features::{ChannelFeatures, NodeFeatures};

    let hub = LdkNode::new(54);
    let hub_id = hub.node_id;
    let server: LdkServer<Arc<Manager>> = Server::new(
        hub_id,
        server::Config::default(),
        LdkDialer::new(Arc::clone(&hub.manager), Config::default()),
        TokioClock,
        LdkPeerHandler,
    );
    // Connected once (a one-off dial), then a channel makes it persistent.
    let old = LdkPeer::start(55, 0).await.expect("peer listens");
    server
        .connect(NodeAddr::new(old.id(), old.addr()), false)
        .await
        .expect("one-off dial");
    handle_event(&server, &ready(old.id()));
    // The peer restarts on another port; the drop is seen.
    let mut events = server.events();
    let id = old.id();
    old.stop().await;
    let dropped = tokio::time::timeout(CAP, async {
        while server.is_connected(&id) {
            if events.recv().await.is_err() {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    assert!(dropped);
    let peer = LdkPeer::start(55, 0).await.expect("peer listens again");
    // The graph knows the peer (a channel with us) and its new address.
    let graph = NetworkGraph::new(Network::Testnet, Arc::new(QuietLogger));
    let channel = UnsignedChannelAnnouncement {
        features: ChannelFeatures::empty(),
        chain_hash: ChainHash::using_genesis_block(Network::Testnet),
        short_channel_id: 1,
        node_id_1: NodeId::from_pubkey(&hub_id),
        node_id_2: NodeId::from_pubkey(&peer.id()),
        bitcoin_key_1: NodeId::from_pubkey(&hub_id),
        bitcoin_key_2: NodeId::from_pubkey(&peer.id()),
        excess_data: Vec::new(),
    };
    graph
        .update_channel_from_unsigned_announcement(&channel, &None::<&dyn UtxoLookup>)
        .expect("channel added");
    let port = peer.addr().port();
    let node = UnsignedNodeAnnouncement {
        features: NodeFeatures::empty(),
        timestamp: 1,
        node_id: NodeId::from_pubkey(&peer.id()),
        rgb: [0; 3],
        alias: NodeAlias([0; 32]),
        addresses: vec![SocketAddress::TcpIpV4 {
            addr: [127, 0, 0, 1],
            port,
        }],
        excess_address_data: Vec::new(),
        excess_data: Vec::new(),
    };
    graph
        .update_node_from_unsigned_announcement(&node)
        .expect("announcement added");
    assert_eq!(
        ldk_net_keeper::announced_addresses(&graph, &peer.id()),
        Some(vec![NetAddress::Ip(peer.addr())])
    );

    // A channel made the peer persistent; it has no address until the
    // graph gives one, then its worker dials it.
    handle_event(&server, &ready(peer.id()));
    assert_eq!(
        ldk_net_keeper::announce_from_graph(&server, &graph, [peer.id(), hub_id]),
        1
    );
    let mut events = server.events();
    let connected = tokio::time::timeout(CAP, async {
        while !server.is_connected(&peer.id()) {
            if events.recv().await.is_err() {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    assert!(connected, "the worker dialed the announced address");
    assert!(hub.manager.peer_by_node_id(&peer.id()).is_some());
    server.shutdown().await;
}
