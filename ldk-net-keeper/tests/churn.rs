//! An LDK node with 20 LDK peers kept connected by the server while peers
//! restart, move to new ports (announced) and go dark: real
//! `PeerManager`s on both sides, 127.0.0.1, a short backoff policy.

use std::sync::Arc;
use std::time::Duration;

use backoff::Policy;
use ldk_net_keeper::{net_address, Config, LdkDialer, LdkPeerHandler, LdkServer, TokioClock};
use lightning::ln::msgs::SocketAddress;
use lnaddr::NodeAddr;
use server::{Direction, Server, ServerEvent};
use testkit::ldk::{LdkNode, LdkPeer, Manager};

const PEERS: u8 = 20;
/// How long a test waits for anything before failing (a hang guard).
const CAP: Duration = Duration::from_secs(60);

fn server_config() -> server::Config {
    let policy = Policy::new(Duration::from_millis(20), Duration::from_millis(400))
        .expect("valid policy")
        .with_stable(Duration::from_millis(500));
    let worker = conn_worker::Config::default()
        .with_policy(policy)
        .with_stagger(Duration::from_millis(50))
        .with_attempt_timeout(Duration::from_secs(5))
        .expect("valid worker config")
        .with_seed(7);
    let mut config = server::Config::default();
    config.worker = worker;
    config
}

fn dialer_config() -> Config {
    Config::default()
        .with_connect_timeout(Duration::from_secs(2))
        .and_then(|c| c.with_setup_timeout(Duration::from_secs(2)))
        .and_then(|c| c.with_poll_interval(Duration::from_millis(5)))
        .expect("valid config")
}

/// Waits until `done` holds, re-checking on each server event and at
/// least every 20 ms (LDK's side has no event to wait on); `false` after
/// [`CAP`].
async fn wait_until<E: Clone>(
    events: &mut tokio::sync::broadcast::Receiver<E>,
    mut done: impl FnMut() -> bool,
) -> bool {
    let wait = async {
        while !done() {
            tokio::select! {
                r = events.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        return false;
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        true
    };
    tokio::time::timeout(CAP, wait).await.unwrap_or(false)
}

/// Connected in the server and in LDK, on both ends.
fn connected(
    server: &LdkServer<Arc<Manager>>,
    hub: &LdkNode,
    hub_id: &bitcoin::secp256k1::PublicKey,
    peer: &LdkPeer,
) -> bool {
    server.is_connected(&peer.id())
        && hub.manager.peer_by_node_id(&peer.id()).is_some()
        && peer.has(hub_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_ldk_peers_stay_connected_through_restarts_moves_and_dark_peers() {
    let hub = LdkNode::new(100);
    let hub_id = hub.node_id;
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), dialer_config());
    let server: LdkServer<Arc<Manager>> =
        Server::new(hub_id, server_config(), dialer, TokioClock, LdkPeerHandler);
    let mut events = server.events();

    let mut peers = Vec::new();
    for seed in 1..=PEERS {
        let peer = LdkPeer::start(seed, 0).await.expect("peer listens");
        server
            .connect(NodeAddr::new(peer.id(), peer.addr()), true)
            .await
            .expect("connect");
        peers.push(peer);
    }
    assert!(
        wait_until(&mut events, || peers
            .iter()
            .all(|p| connected(&server, &hub, &hub_id, p)))
        .await,
        "all {PEERS} peers connected"
    );
    assert_eq!(hub.manager.list_peers().len(), usize::from(PEERS));

    // Restart peers 0..5 on the same port: a new PeerManager, same key.
    for i in 0..5 {
        let old = peers.remove(i);
        let (seed, port, id) = (i as u8 + 1, old.addr().port(), old.id());
        old.stop().await;
        assert!(
            wait_until(&mut events, || !server.is_connected(&id)).await,
            "drop seen"
        );
        peers.insert(
            i,
            LdkPeer::start(seed, port)
                .await
                .expect("restart on the same port"),
        );
    }
    assert!(
        wait_until(&mut events, || peers
            .iter()
            .all(|p| connected(&server, &hub, &hub_id, p)))
        .await,
        "restarted peers reconnected"
    );

    // Move peers 5..10 to new ports and announce them (as LDK's
    // SocketAddress, converted).
    for i in 5..10 {
        let old = peers.remove(i);
        let (seed, id) = (i as u8 + 1, old.id());
        old.stop().await;
        assert!(
            wait_until(&mut events, || !server.is_connected(&id)).await,
            "drop seen"
        );
        let moved = LdkPeer::start(seed, 0)
            .await
            .expect("restart on a new port");
        let announced = SocketAddress::TcpIpV4 {
            addr: [127, 0, 0, 1],
            port: moved.addr().port(),
        };
        let addr = net_address(&announced).expect("an ip address converts");
        server.node_announcement(moved.id(), vec![addr]);
        peers.insert(i, moved);
    }
    assert!(
        wait_until(&mut events, || peers
            .iter()
            .all(|p| connected(&server, &hub, &hub_id, p)))
        .await,
        "moved peers reconnected at their announced ports"
    );

    // Peers 10..15 go dark; the other 15 stay connected, and the dark ones'
    // workers back off (each wait longer than the last, up to the cap).
    let dark: Vec<LdkPeer> = peers.drain(10..15).collect();
    let dark_ids: Vec<_> = dark.iter().map(|p| p.id()).collect();
    for p in dark {
        p.stop().await;
    }
    let mut waits: std::collections::HashMap<_, Vec<Duration>> = Default::default();
    let backed_off = tokio::time::timeout(CAP, async {
        loop {
            match events.recv().await {
                Ok(ServerEvent::Waiting { peer, wait, .. }) if dark_ids.contains(&peer) => {
                    waits.entry(peer).or_default().push(wait);
                    if dark_ids
                        .iter()
                        .all(|id| waits.get(id).is_some_and(|w| w.len() >= 4))
                    {
                        return true;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(backed_off, "every dark peer's worker waited four times");
    for (peer, w) in &waits {
        assert!(
            w.windows(2).all(|p| p[1] >= p[0]),
            "{peer}: waits never shrink: {w:?}"
        );
        assert!(w[3] > w[0], "{peer}: waits grow: {w:?}");
    }
    assert!(dark_ids.iter().all(|id| !server.is_connected(id)));
    assert!(
        peers.iter().all(|p| connected(&server, &hub, &hub_id, p)),
        "the live 15 stayed up"
    );
    assert_eq!(hub.manager.list_peers().len(), peers.len());

    // An inbound connection from a dark peer that comes back stands its
    // worker down, and the server sees it inbound.
    let back = LdkPeer::start(11, 0).await.expect("peer 11 back");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hub_addr = listener.local_addr().expect("addr");
    let m = Arc::clone(&back.node.manager);
    tokio::spawn(async move {
        if let Some(running) = lightning_net_tokio::connect_outbound(m, hub_id, hub_addr).await {
            running.await;
        }
    });
    let (stream, _) = listener.accept().await.expect("accepted");
    let inbound_dialer = LdkDialer::new(Arc::clone(&hub.manager), dialer_config());
    let kept = ldk_net_keeper::accept_into(&server, &inbound_dialer, stream, &Default::default())
        .await
        .expect("ldk connects the inbound peer");
    assert!(kept);
    let direction = server
        .status()
        .into_iter()
        .find(|s| s.pubkey == back.id())
        .and_then(|s| s.connection)
        .map(|c| c.direction);
    assert_eq!(direction, Some(Direction::Inbound));
    assert_eq!(
        hub.manager
            .peer_by_node_id(&back.id())
            .map(|d| d.is_inbound_connection),
        Some(true)
    );

    server.shutdown().await;
    let closed = async {
        while !hub.manager.list_peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(CAP, closed)
        .await
        .expect("shutdown closes every ldk connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_disconnect_closes_the_ldk_connection_and_does_not_redial() {
    let hub = LdkNode::new(120);
    let hub_id = hub.node_id;
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), dialer_config());
    let server: LdkServer<Arc<Manager>> =
        Server::new(hub_id, server_config(), dialer, TokioClock, LdkPeerHandler);
    let mut events = server.events();
    let peer = LdkPeer::start(121, 0).await.expect("peer listens");
    server
        .connect(NodeAddr::new(peer.id(), peer.addr()), true)
        .await
        .expect("connect");
    assert!(wait_until(&mut events, || connected(&server, &hub, &hub_id, &peer)).await);

    server.disconnect(&peer.id()).await.expect("connected");
    let ended = tokio::time::timeout(CAP, async {
        loop {
            match events.recv().await {
                Ok(ServerEvent::Disconnected {
                    peer: p,
                    reason,
                    reconnecting,
                    ..
                }) if p == peer.id() => {
                    return Some((reason, reconnecting));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                _ => {}
            }
        }
    })
    .await
    .ok()
    .flatten();
    assert_eq!(ended, Some((server::DisconnectReason::Cancelled, false)));
    assert!(
        wait_until(&mut events, || hub
            .manager
            .peer_by_node_id(&peer.id())
            .is_none()
            && !peer.has(&hub_id))
        .await,
        "both ends' LDK let go"
    );
    assert_eq!(
        server.persistence(&peer.id()),
        None,
        "no worker left to redial"
    );
    server.shutdown().await;
}
