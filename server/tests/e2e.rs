//! End to end on 127.0.0.1 with real brontide: the socket is the point.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::secp256k1::{PublicKey, SecretKey};
use brontide::{DialConfig, Listener, ListenerConfig, NodeKeyPair};
use common::Reader;
use conn_worker::{Policy, TokioClock};
use server::{BrontideDialer, Config, NodeAddr, Server, ServerEvent};

type Node = Server<BrontideDialer, TokioClock, Reader>;

fn keys(b: u8) -> NodeKeyPair {
    NodeKeyPair::new(SecretKey::from_slice(&[b; 32]).expect("valid scalar"))
}

fn node(key: &NodeKeyPair) -> Node {
    let mut config = Config::default();
    let policy =
        Policy::new(Duration::from_millis(50), Duration::from_millis(400)).expect("valid policy");
    config.worker = config.worker.with_policy(policy).with_seed(1);
    let dialer = BrontideDialer::new(key.clone(), DialConfig::default());
    Server::new(key.public_key(), config, dialer, TokioClock, Reader::HOLD)
}

async fn listen(node: &Node, key: &NodeKeyPair, addr: SocketAddr) -> SocketAddr {
    let config = ListenerConfig::default().with_filter(node.accept_filter());
    let listener = Listener::bind(addr, key.clone(), config)
        .await
        .expect("bind 127.0.0.1");
    node.serve(listener)
}

/// Waits for the next `Connected` event for `peer` (a hang guard, not a
/// timing assertion: the test fails only if it never comes).
async fn connected(
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent<brontide::Error>>,
    peer: PublicKey,
) {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(ServerEvent::Connected { peer: p, .. }) if p == peer => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("reconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_comes_back_after_the_listener_restarts() {
    let (ka, kb) = (keys(1), keys(2));
    let a = node(&ka);
    let b = node(&kb);
    let b_addr = listen(&b, &kb, "127.0.0.1:0".parse().expect("addr")).await;

    let mut events = a.events();
    a.connect(NodeAddr::new(kb.public_key(), b_addr), true)
        .await
        .expect("perm connect");
    connected(&mut events, kb.public_key()).await;
    assert!(a.is_connected(&kb.public_key()));

    // Kill B: its listener and connection go away; A notices and redials.
    b.shutdown().await;
    assert_eq!(b.tasks(), 0);
    drop(b);

    // B comes back on the same address.
    let b2 = node(&kb);
    let again = listen(&b2, &kb, b_addr).await;
    assert_eq!(again, b_addr);
    connected(&mut events, kb.public_key()).await;
    assert!(a.is_connected(&kb.public_key()));
    assert_eq!(a.status().len(), 1);

    a.shutdown().await;
    b2.shutdown().await;
    assert_eq!(a.tasks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_key_is_refused_at_accept() {
    let (ka, kb) = (keys(3), keys(4));
    let a = node(&ka);
    let b = node(&kb);
    b.ban(ka.public_key(), None).await.expect("no store");
    let b_addr = listen(&b, &kb, "127.0.0.1:0".parse().expect("addr")).await;
    // A's one-off dial completes its handshake, then B closes it.
    let mut events = a.events();
    a.connect(NodeAddr::new(kb.public_key(), b_addr), false)
        .await
        .expect("handshake completes");
    let closed = async {
        loop {
            if let Ok(ServerEvent::Disconnected { .. }) = events.recv().await {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), closed)
        .await
        .expect("closed by B");
    assert!(!b.is_connected(&ka.public_key()));
    a.shutdown().await;
    b.shutdown().await;
}
