//! Whole nodes on 127.0.0.1 for the liveness and chaos tests: `lnconnd`'s
//! own peer handler (its `src/peer.rs`, included by path at each test's
//! root with `wire.rs` and `output.rs`) on a `server::Server` with the real
//! brontide dialer and listener, and waits on the server's events.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use brontide::{DialConfig, Listener, ListenerConfig, NodeKeyPair, PublicKey, SecretKey};
use conn_worker::TokioClock;
use server::{BrontideDialer, Config, Server, ServerEvent};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::peer::{App, SessionOpts};

/// A guard against a hung test, never a timing margin: every wait in
/// these tests ends on an event long before it.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// What these tests run: lnconnd's node type.
pub type Node = Server<BrontideDialer, TokioClock, App>;

/// A node key from a number (distinct numbers, distinct keys).
pub fn keys(n: u32) -> NodeKeyPair {
    let mut bytes = [0u8; 32];
    bytes[0] = 0x01;
    bytes[28..].copy_from_slice(&n.to_be_bytes());
    NodeKeyPair::new(SecretKey::from_slice(&bytes).expect("a valid scalar"))
}

/// A node with `config` and `dial` that runs lnconnd's session with `opts`.
pub fn node(key: &NodeKeyPair, config: Config, dial: DialConfig, opts: SessionOpts) -> Node {
    Server::new(
        key.public_key(),
        config,
        BrontideDialer::new(key.clone(), dial),
        TokioClock,
        App::new(opts),
    )
}

/// Serves `node` on a fresh port of 127.0.0.1 (banned keys refused at
/// the listener, as lnconnd does); returns the address.
pub async fn serve(node: &Node, key: &NodeKeyPair) -> SocketAddr {
    let config = ListenerConfig::default().with_filter(node.accept_filter());
    let listener = Listener::bind("127.0.0.1:0", key.clone(), config)
        .await
        .expect("bind 127.0.0.1");
    node.serve(listener)
}

/// The next event that `pick` maps to `Some`, within [`HANG_GUARD`].
///
/// # Panics
/// If none comes (a hung test), or if events were lost (the wait could
/// not be trusted).
pub async fn next<T>(
    events: &mut broadcast::Receiver<ServerEvent<brontide::Error>>,
    what: &str,
    mut pick: impl FnMut(&ServerEvent<brontide::Error>) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(&e) {
                        return t;
                    }
                }
                Err(RecvError::Lagged(n)) => panic!("{n} events lost waiting for {what}"),
                Err(RecvError::Closed) => panic!("events closed waiting for {what}"),
            }
        }
    };
    tokio::time::timeout(HANG_GUARD, wait)
        .await
        .unwrap_or_else(|_| panic!("hung: no {what} within {HANG_GUARD:?}"))
}

/// Whether `e` is about `peer`.
pub fn about(e: &ServerEvent<brontide::Error>, peer: &PublicKey) -> bool {
    match e {
        ServerEvent::Connected { peer: p, .. }
        | ServerEvent::Disconnected { peer: p, .. }
        | ServerEvent::DialStarted { peer: p, .. }
        | ServerEvent::DialFailed { peer: p, .. }
        | ServerEvent::Waiting { peer: p, .. }
        | ServerEvent::AwaitingAddrs { peer: p }
        | ServerEvent::Idle { peer: p }
        | ServerEvent::WorkerStopped { peer: p }
        | ServerEvent::DuplicateResolved { peer: p, .. }
        | ServerEvent::RefusedBanned { peer: p }
        | ServerEvent::AddressSkipped { peer: p, .. } => p == peer,
        _ => false,
    }
}
