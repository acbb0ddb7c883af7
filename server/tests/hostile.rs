//! Hostile peers against a whole server on 127.0.0.1: inbound through its
//! brontide listener (`serve`), and outbound as the remote end of its
//! workers' dials.
//!
//! What each test proves: every hostile peer ends with a typed error (a
//! handshake failure the listener or the dialer names, or a disconnect
//! reason the peer handler reports) within its timeout; nothing panics; the
//! server keeps serving good peers meanwhile; and afterwards its task count
//! and the process's open file descriptors return to where they started.
//! Timeouts are short to keep the tests fast; none is asserted as a figure.

mod common;

#[path = "../../brontide/tests/support/hostile_peers.rs"]
mod peers;

use common::{settle_on, Reader};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use brontide::{dial, DialConfig, Listener, ListenerConfig, Responder};
use conn_worker::{Policy, TokioClock};
use futures::{SinkExt, StreamExt};
use peers::*;
use server::{BrontideDialer, Config, DisconnectReason, NodeAddr, Server, ServerEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

const ACT_TIMEOUT: Duration = Duration::from_millis(200);
const DRIP: Duration = Duration::from_millis(100);
const SERVER: u8 = 0x21;

type Node = Server<BrontideDialer, TokioClock, Reader>;

fn node(cut: Option<watch::Receiver<bool>>) -> Node {
    let mut config = Config::default();
    let policy =
        Policy::new(Duration::from_millis(50), Duration::from_millis(400)).expect("valid policy");
    config.worker = config.worker.with_policy(policy).with_seed(8);
    let dial = DialConfig::default()
        .with_act_timeout(ACT_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(5));
    let dialer = BrontideDialer::new(keys(SERVER), dial);
    Server::new(
        keys(SERVER).public_key(),
        config,
        dialer,
        TokioClock,
        Reader { cut },
    )
}

async fn listen(server: &Node) -> SocketAddr {
    let config = ListenerConfig::default()
        .with_act_timeout(ACT_TIMEOUT)
        .with_filter(server.accept_filter());
    let listener = Listener::bind("127.0.0.1:0", keys(SERVER), config)
        .await
        .expect("bind 127.0.0.1");
    server.serve(listener)
}

/// Every event of a server, as recorded so far.
struct Log {
    events: Mutex<Vec<ServerEvent<brontide::Error>>>,
    /// Woken after each event is recorded.
    changed: Notify,
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ServerEvent<brontide::Error>>> {
        self.events.lock().expect("log")
    }

    /// Waits until `done` holds of the events recorded, re-checked after
    /// each new one (a hang guard, not a timing assertion).
    async fn until(&self, what: &str, done: impl Fn(&[ServerEvent<brontide::Error>]) -> bool) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if done(&self.lock()) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(HANG_GUARD, wait)
            .await
            .unwrap_or_else(|_| panic!("never: {what}"));
    }
}

/// Records every event of `server` until it shuts down.
fn record(server: &Node) -> Arc<Log> {
    let log = Arc::new(Log {
        events: Mutex::new(Vec::new()),
        changed: Notify::new(),
    });
    let mut events = server.events();
    let out = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => out.lock().push(e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
            out.changed.notify_waiters();
        }
    });
    log
}

fn disconnect_reason(
    log: &[ServerEvent<brontide::Error>],
    peer: PublicKey,
) -> Option<DisconnectReason> {
    log.iter().find_map(|e| match e {
        ServerEvent::Disconnected {
            peer: p, reason, ..
        } if *p == peer => Some(reason.clone()),
        _ => None,
    })
}

fn connected(log: &[ServerEvent<brontide::Error>], peer: PublicKey) -> usize {
    log.iter()
        .filter(|e| matches!(e, ServerEvent::Connected { peer: p, .. } if *p == peer))
        .count()
}

/// A good client: handshake with the server, one message each way, close.
async fn good_client(addr: SocketAddr, local: u8) {
    let config = DialConfig::default().with_act_timeout(Duration::from_secs(5));
    let conn = tokio::time::timeout(
        HANG_GUARD,
        dial(
            addr,
            &keys(local),
            &keys(SERVER).public_key(),
            &config,
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("the good handshake ends")
    .expect("the good handshake completes");
    let mut framed = conn.into_framed();
    framed.send(b"ping".as_slice()).await.expect("send");
    let reply = tokio::time::timeout(HANG_GUARD, framed.next())
        .await
        .expect("a reply");
    assert_eq!(&reply.expect("an item").expect("a message")[..], b"pong");
}

#[test]
fn hostile_inbound_peers_end_with_typed_reasons_and_the_server_keeps_serving() {
    serial(async {
        let fds = open_fds();
        // The application's idle cut-off, fired by the test once the
        // stallers are in.
        let (cut, cutting) = watch::channel(false);
        let server = node(Some(cutting));
        let log = record(&server);
        let addr = listen(&server).await;
        let tasks = server.tasks();
        let pk = keys(SERVER).public_key();

        let mut hostile = tokio::task::JoinSet::new();
        for i in 0..2u8 {
            hostile.spawn(slowloris(addr, pk, DRIP));
            hostile.spawn(silent(addr));
            hostile.spawn(async move {
                close_mid_act(addr, pk, 10 + usize::from(i)).await;
                Seen::ClosedAfter(0)
            });
            hostile.spawn(garbage_after_handshake(addr, pk, 0x30 + i));
        }
        for kind in 0..BAD_ACT_KINDS {
            hostile.spawn(send_bad_act(addr, pk, kind));
        }
        let mut stallers = Vec::new();
        for i in 0..2u8 {
            stallers.push(announce_and_stall(addr, pk, 0x40 + i).await);
        }
        good_client(addr, 1).await;

        while let Some(seen) = hostile.join_next().await {
            let seen = seen.expect("hostile task");
            assert!(matches!(seen, Seen::ClosedAfter(_)), "{seen:?}");
        }
        // The stallers have sent nothing since their handshake: cut off as
        // idle, while no honest peer is connected.
        cut.send_replace(true);
        for mut s in stallers {
            assert!(
                wait_closed(&mut s, HANG_GUARD).await,
                "a staller was never cut off"
            );
        }
        cut.send_replace(false);
        good_client(addr, 2).await;

        // The peers that got through the handshake were disconnected with
        // the typed reason their behaviour deserves.
        for i in 0..2u8 {
            let garbage = keys(0x30 + i).public_key();
            let staller = keys(0x40 + i).public_key();
            log.until("both hostile kinds disconnected", |log| {
                disconnect_reason(log, garbage).is_some()
                    && disconnect_reason(log, staller).is_some()
            })
            .await;
            let log = log.lock();
            match disconnect_reason(&log, garbage) {
                Some(DisconnectReason::Remote(why)) => {
                    assert!(why.contains("decrypt failed"), "{why}")
                }
                other => panic!("garbage peer: {other:?}"),
            }
            assert_eq!(
                disconnect_reason(&log, staller),
                Some(DisconnectReason::Local("idle".into()))
            );
        }
        {
            let log = log.lock();
            assert_eq!(connected(&log, keys(1).public_key()), 1);
            assert_eq!(connected(&log, keys(2).public_key()), 1);
        }
        // Every handler has ended: only the server's own tasks are left.
        // Both good peers' ends reported: their handler tasks end with them.
        log.until("the good peers' ends", |log| {
            [1, 2]
                .iter()
                .all(|&k| disconnect_reason(log, keys(k).public_key()).is_some())
        })
        .await;
        settle_on("handler tasks end", || server.tasks() == tasks).await;
        assert!(server.status().is_empty(), "no peer left registered");

        server.shutdown().await;
        assert_eq!(server.tasks(), 0);
        drop(server);
        let now = fds_back_to(fds).await;
        assert_eq!(now, fds, "open file descriptors");
        drop(log);
    });
}

/// A hostile responder on 127.0.0.1 that treats every connection with
/// `behave`; returns its address. Ends with `stop`.
async fn hostile_responder<F, Fut>(stop: CancellationToken, behave: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => {
                    if let Ok((s, _)) = accepted {
                        conns.spawn(behave(s));
                    }
                }
            }
        }
    });
    addr
}

/// Reads act one (addressed to `key`) and returns a real act two.
async fn answer(stream: &mut TcpStream, key: u8) -> Option<[u8; 50]> {
    let mut act_one = [0u8; 50];
    stream.read_exact(&mut act_one).await.ok()?;
    Responder::new(&keys(key))
        .and_then(|r| r.read_act_one(&act_one))
        .ok()
        .map(|(act_two, _)| act_two)
}

#[test]
fn hostile_remote_peers_fail_dials_with_typed_errors_and_are_retried() {
    serial(async {
        let fds = open_fds();
        let server = node(None);
        let log = record(&server);
        let tasks = server.tasks();
        let stop = CancellationToken::new();

        // Four hostile remote nodes, each answering every dial its way.
        let silent = hostile_responder(stop.clone(), |mut s| async move {
            let _ = wait_closed(&mut s, HANG_GUARD).await;
        })
        .await;
        let drip = hostile_responder(stop.clone(), |mut s| async move {
            if let Some(act_two) = answer(&mut s, 0x52).await {
                for b in act_two {
                    if s.write_all(&[b]).await.is_err() || wait_closed(&mut s, DRIP).await {
                        return;
                    }
                }
            }
        })
        .await;
        let bad_version = hostile_responder(stop.clone(), |mut s| async move {
            if let Some(mut act_two) = answer(&mut s, 0x53).await {
                act_two[0] = 1;
                let _ = s.write_all(&act_two).await;
                let _ = wait_closed(&mut s, HANG_GUARD).await;
            }
        })
        .await;
        let half = hostile_responder(stop.clone(), |mut s| async move {
            if let Some(act_two) = answer(&mut s, 0x54).await {
                let _ = s.write_all(&act_two[..25]).await;
            }
        })
        .await;
        let hostile = [
            (0x51, silent, "handshake timed out in act two"),
            (0x52, drip, "handshake timed out in act two"),
            (
                0x53,
                bad_version,
                "handshake failed: act two: bad version 1",
            ),
            (
                0x54,
                half,
                "handshake failed: act two: expected 50 bytes, got 25",
            ),
        ];
        for (key, addr, _) in hostile {
            let peer = NodeAddr::new(keys(key).public_key(), addr);
            server.connect(peer, true).await.expect("perm connect");
        }

        // A good remote node, dialed meanwhile.
        let good = keys(0x60);
        let mut good_listener =
            Listener::bind("127.0.0.1:0", good.clone(), ListenerConfig::default())
                .await
                .expect("bind");
        let good_addr = good_listener.local_addr();
        let held = tokio::spawn(async move {
            let accepted = good_listener.accept().await.expect("the server dials in");
            (accepted, good_listener)
        });
        server
            .connect(NodeAddr::new(good.public_key(), good_addr), true)
            .await
            .expect("perm connect");
        let (accepted, good_listener) = tokio::time::timeout(HANG_GUARD, held)
            .await
            .expect("the good node is dialed")
            .expect("accept task");
        log.until("connected to the good node", |_| {
            server.is_connected(&good.public_key())
        })
        .await;

        // Every hostile node failed at least twice (retried with backoff),
        // each time with the error its behaviour deserves.
        let failures = |log: &[ServerEvent<brontide::Error>], peer: PublicKey| -> Vec<String> {
            log.iter()
                .filter_map(|e| match e {
                    ServerEvent::DialFailed {
                        peer: p, failure, ..
                    } if *p == peer => Some(failure.to_string()),
                    _ => None,
                })
                .collect()
        };
        for (key, _, want) in hostile {
            let peer = keys(key).public_key();
            log.until("two failed dials", |log| failures(log, peer).len() >= 2)
                .await;
            for error in failures(&log.lock(), peer) {
                assert_eq!(error, want, "peer {key:#x}");
            }
            assert!(!server.is_connected(&peer));
        }
        assert!(
            server.is_connected(&good.public_key()),
            "the good node stayed"
        );

        // Stop persisting the hostile nodes: their workers end.
        for (key, _, _) in hostile {
            assert!(server
                .forget(&keys(key).public_key())
                .await
                .expect("no store"));
        }
        log.until("hostile workers stopped", |log| {
            hostile.iter().all(|(key, _, _)| {
                let peer = keys(*key).public_key();
                log.iter()
                    .any(|e| matches!(e, ServerEvent::WorkerStopped { peer: p } if *p == peer))
            })
        })
        .await;
        settle_on("hostile workers end", || server.tasks() == tasks + 2).await;

        server.shutdown().await;
        assert_eq!(server.tasks(), 0);
        stop.cancel();
        drop((accepted, server));
        good_listener.shutdown().await;
        let now = fds_back_to(fds).await;
        assert_eq!(now, fds, "open file descriptors");
        drop(log);
    });
}

#[test]
fn hostile_flood_of_1000_bad_acts_leaves_the_server_serving() {
    serial(async {
        let fds = open_fds();
        let server = node(None);
        let log = record(&server);
        let addr = listen(&server).await;
        let tasks = server.tasks();
        let pk = keys(SERVER).public_key();

        let flooding = CancellationToken::new();
        let good = {
            let flooding = flooding.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                loop {
                    // 100 good peers, none with the server's own key (it
                    // refuses itself).
                    let k = 1 + (n % 100) as u8;
                    good_client(addr, if k == SERVER { 101 } else { k }).await;
                    n += 1;
                    if flooding.is_cancelled() {
                        return n;
                    }
                }
            })
        };
        let start = Instant::now();
        let closed = flood(addr, pk, 1000, 32, Duration::from_millis(1)).await;
        let took = start.elapsed();
        flooding.cancel();
        let good = good.await.expect("good clients");
        eprintln!(
            "server flood: 1000 bad-act connections in {took:?} ({:.0}/s), {good} good peers connected meanwhile",
            1000.0 / took.as_secs_f64()
        );
        assert_eq!(closed, 1000);
        assert!(good >= 1);
        log.until("every good peer's end reported", |log| {
            let ended = log
                .iter()
                .filter(|e| matches!(e, ServerEvent::Disconnected { .. }))
                .count();
            ended >= good
        })
        .await;
        settle_on("every good peer's connection ended", || {
            server.tasks() == tasks
        })
        .await;
        let connects = log
            .lock()
            .iter()
            .filter(|e| matches!(e, ServerEvent::Connected { .. }))
            .count();
        assert_eq!(connects, good, "only the good peers got through");

        server.shutdown().await;
        assert_eq!(server.tasks(), 0);
        drop(server);
        let now = fds_back_to(fds).await;
        assert_eq!(now, fds, "open file descriptors");
        drop(log);
    });
}
