//! Shutdown under load: while 1,000 dials hang (a mock dialer that only
//! ever ends when cancelled), handshakes are mid-act on the server's real
//! listener (silent and half-sent act ones) and 40 peers are connected over
//! 127.0.0.1 (20 dialed out, 20 dialed in), `shutdown()` returns with
//! nothing left: no task (`tasks() == 0`), no dial in flight, every
//! hanging dial cancelled, every socket the server held closed (the other
//! ends all see it), and the process's open file descriptors back where
//! they started.
//!
//! The time shutdown takes is printed (`-- --nocapture`) and recorded in
//! RELIABILITY.md, not asserted.

mod common;

#[path = "../../brontide/tests/support/hostile_peers.rs"]
mod peers;

use common::{settle_on, until_event, Reader};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use brontide::{dial, Connection, DialConfig, Listener, ListenerConfig, NodeKeyPair, SecretKey};
use conn_worker::{Dialer, TokioClock};
use futures::StreamExt;
use peers::*;
use server::{BrontideDialer, Config, NetAddress, NodeAddr, Server};
use testkit::{Behavior, ManualClock, MockDialer, MockError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const SERVER: u8 = 0x21;

/// Host-name addresses go to the mock (every dial hangs until cancelled;
/// nothing is resolved or dialed), IP addresses to the real dialer.
struct Hybrid {
    mock: MockDialer<PublicKey, NodeAddr>,
    real: BrontideDialer,
}

#[derive(Debug, thiserror::Error)]
enum HybridError {
    #[error(transparent)]
    Mock(#[from] MockError),
    #[error(transparent)]
    Real(#[from] brontide::Error),
    #[error("the mock never connects here")]
    Unexpected,
}

impl Dialer for Hybrid {
    type Addr = NodeAddr;
    type Conn = Connection<TcpStream>;
    type Error = HybridError;

    async fn dial(
        &self,
        addr: &NodeAddr,
        cancel: CancellationToken,
    ) -> Result<Connection<TcpStream>, HybridError> {
        match addr.addr {
            NetAddress::Ip(_) => Ok(self.real.dial(addr, cancel).await?),
            _ => match self.mock.dial(addr, cancel).await {
                Ok(_) => Err(HybridError::Unexpected),
                Err(e) => Err(e.into()),
            },
        }
    }
}

fn keys_n(i: u32) -> NodeKeyPair {
    let mut bytes = [0u8; 32];
    bytes[0] = 0x02;
    bytes[28..].copy_from_slice(&i.to_be_bytes());
    NodeKeyPair::new(SecretKey::from_slice(&bytes).expect("a valid scalar"))
}

/// Holds a connection until the other end closes it; true if it did.
async fn held_until_closed(conn: Connection<TcpStream>) -> bool {
    let mut framed = conn.into_framed();
    tokio::time::timeout(HANG_GUARD, async {
        while let Some(Ok(_)) = framed.next().await {}
    })
    .await
    .is_ok()
}

const HANGING: usize = 1000;
const SILENT: usize = 40;
const HALF_SENT: usize = 5;
const OUT: u32 = 20;
const IN: u32 = 20;

/// Builds the load, shuts down, checks nothing is left. `max_dials` is the
/// global limit: above `HANGING` every hanging dial is in flight; below,
/// most workers are queued for a dial slot instead.
async fn shutdown_under_load(max_dials: usize) {
    let fds = open_fds();
    let mock = MockDialer::new(ManualClock::new());
    mock.set_fallback(Behavior::Hang);
    let local = keys(SERVER);
    let mut config = Config::default();
    config.worker = config
        .worker
        .with_seed(0x5d)
        .with_max_dials_in_flight(NonZeroUsize::new(max_dials).expect("non-zero"));
    let dialer = Hybrid {
        mock: mock.clone(),
        real: BrontideDialer::new(local.clone(), DialConfig::default()),
    };
    let server = Server::new(local.public_key(), config, dialer, TokioClock, Reader::HOLD);
    let mut events = server.events();
    // A long act timeout: the silent clients stay mid-act until shutdown.
    let listener_config = ListenerConfig::default()
        .with_act_timeout(Duration::from_secs(600))
        .with_filter(server.accept_filter());
    let addr: SocketAddr = server.serve(
        Listener::bind("127.0.0.1:0", local.clone(), listener_config)
            .await
            .expect("bind"),
    );

    // Peers the server dials (each a listener of the test's that holds
    // what it accepts until the server closes it).
    let mut remote_ends = tokio::task::JoinSet::new();
    let mut remotes = Vec::new();
    for i in 0..OUT {
        let key = keys_n(i);
        let mut listener = Listener::bind("127.0.0.1:0", key.clone(), ListenerConfig::default())
            .await
            .expect("bind");
        let at = listener.local_addr();
        remote_ends.spawn(async move {
            let accepted = listener.accept().await.expect("the server dials in");
            let closed = held_until_closed(accepted.connection).await;
            listener.shutdown().await;
            closed
        });
        server
            .connect(NodeAddr::new(key.public_key(), at), true)
            .await
            .expect("perm connect");
        remotes.push(key.public_key());
    }
    // Peers that dial the server.
    for i in 0..IN {
        let key = keys_n(1000 + i);
        let conn = dial(
            addr,
            &key,
            &local.public_key(),
            &DialConfig::default(),
            &CancellationToken::new(),
        )
        .await
        .expect("inbound handshake");
        remote_ends.spawn(held_until_closed(conn));
        remotes.push(key.public_key());
    }
    // Handshakes stuck mid-act on the server's listener.
    let mut stuck = Vec::new();
    for _ in 0..SILENT {
        stuck.push(TcpStream::connect(addr).await.expect("connect"));
    }
    for _ in 0..HALF_SENT {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(&valid_act_one(&local.public_key())[..25])
            .await
            .expect("half an act");
        stuck.push(s);
    }
    // 1,000 persistent peers whose every dial hangs.
    for i in 0..HANGING {
        let name: NetAddress = format!("hang-{i}.invalid:9735")
            .parse()
            .expect("a host name");
        let peer = keys_n(10_000 + i as u32).public_key();
        server
            .connect(NodeAddr::new(peer, name), true)
            .await
            .expect("perm connect");
    }

    let hanging_in_flight = HANGING.min(max_dials);
    until_event(&mut events, "every peer connected", || {
        remotes.iter().all(|p| server.is_connected(p))
    })
    .await;
    settle_on("the hanging dials in flight", || {
        mock.in_flight() == hanging_in_flight
    })
    .await;
    let workers = HANGING + OUT as usize;
    let handlers = (OUT + IN) as usize;
    // Drain task + serve task + workers + one handler per connection.
    assert_eq!(server.tasks(), 2 + workers + handlers);
    let open_before = open_fds();

    let start = Instant::now();
    server.shutdown().await;
    let took = start.elapsed();

    assert_eq!(server.tasks(), 0, "a task outlived shutdown");
    assert_eq!(server.dials_in_flight(), 0);
    assert_eq!(mock.in_flight(), 0, "a hanging dial outlived shutdown");
    let attempts = mock.attempts();
    assert_eq!(
        attempts.len(),
        hanging_in_flight,
        "no dial started during shutdown"
    );
    assert!(
        attempts.iter().all(|a| a.cancelled),
        "every hanging dial was cancelled"
    );
    // Every socket the server held is closed: the mid-act clients and
    // every connected peer see the close.
    for mut s in stuck {
        assert!(
            wait_closed(&mut s, HANG_GUARD).await,
            "a mid-act handshake was left open"
        );
    }
    while let Some(closed) = remote_ends.join_next().await {
        assert!(
            closed.expect("remote end task"),
            "a connection was left open"
        );
    }
    eprintln!(
        "shutdown under load (global dial limit {max_dials}): {hanging_in_flight} hanging dials in \
         flight, {} workers, {handlers} connections, {} handshakes mid-act, {open_before} fds \
         open: shutdown() returned in {took:?}",
        workers,
        SILENT + HALF_SENT,
    );
    drop((server, mock, remotes));
    let now = fds_back_to(fds).await;
    assert_eq!(now, fds, "open file descriptors");
}

#[test]
fn shutdown_under_load_ends_1000_hanging_dials_mid_act_handshakes_and_connections() {
    serial(shutdown_under_load(1100));
}

#[test]
fn shutdown_under_load_ends_workers_queued_for_a_dial_slot() {
    serial(shutdown_under_load(10));
}
