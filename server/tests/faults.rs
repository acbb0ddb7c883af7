//! The registry against user code that misbehaves where it meets it, and
//! against operations that interleave with a store write: handlers that
//! ignore their cancellation after their connection left the registry,
//! connections whose `Drop` calls the server or panics, calls from threads
//! outside the runtime, a store write that never returns, and a prune that
//! races a channel's close. On the manual clock with mock dialers.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use common::*;
use peer_store::{Change, MemoryStore, PeerStore, Snapshot, StoreError};
use server::{Config, DuplicateRule, NetAddress, PublicKey, Server, ServerError, StartupPeer};
use testkit::{run, settle, Behavior, ManualClock, MockDialer};
use tokio::sync::Semaphore;

const US: u8 = 0xFE;

/// A memory store whose writes each wait for a permit the test gives (none
/// to begin with), so a test decides when each write completes.
#[derive(Clone)]
struct GateStore {
    inner: MemoryStore<NetAddress>,
    gate: Arc<Semaphore>,
    /// While `false`, writes pass without a permit.
    gated: Arc<AtomicBool>,
}

impl GateStore {
    fn new() -> Self {
        GateStore {
            inner: MemoryStore::new(),
            gate: Arc::new(Semaphore::new(0)),
            gated: Arc::new(AtomicBool::new(false)),
        }
    }

    fn gate(&self, on: bool) {
        self.gated.store(on, Ordering::SeqCst);
    }

    /// Lets `n` more writes complete.
    fn pass(&self, n: usize) {
        self.gate.add_permits(n);
    }

    async fn stored(&self, peer: &PublicKey) -> bool {
        let snap: Snapshot<NetAddress> = self.inner.load().await.expect("loads");
        snap.peers.iter().any(|r| r.id == *peer)
    }
}

impl PeerStore for GateStore {
    type Addr = NetAddress;
    type Error = StoreError;

    async fn load(&self) -> Result<Snapshot<NetAddress>, StoreError> {
        self.inner.load().await
    }

    async fn apply(&self, changes: Vec<Change<NetAddress>>) -> Result<(), StoreError> {
        if self.gated.load(Ordering::SeqCst) {
            // The semaphore lives in `self`: acquiring cannot fail.
            self.gate.acquire().await.expect("open gate").forget();
        }
        self.inner.apply(changes).await
    }
}

type StoreServer = Server<Mock, ManualClock, Handler>;

async fn open(
    local: PublicKey,
    store: &GateStore,
) -> (
    StoreServer,
    ManualClock,
    Handler,
    MockDialer<PublicKey, server::NodeAddr>,
) {
    let clock = ManualClock::new();
    let dialer = MockDialer::new(clock.clone());
    dialer.set_fallback(Behavior::Hang);
    let handler = Handler::default();
    let server = Server::open(
        local,
        config(),
        Mock(dialer.clone()),
        clock.clone(),
        handler.clone(),
        store.clone(),
    )
    .await
    .expect("opens");
    (server, clock, handler, dialer)
}

/// Shutdown's grace ends a handler that ignores its cancellation even when
/// its connection had already left the registry: disconnected, or replaced
/// by a newer connection in the same direction.
#[test]
fn shutdown_aborts_stubborn_handlers_of_connections_already_gone() {
    for replaced in [false, true] {
        run(async move {
            let f = Fixture::new(key(US));
            f.handler.ignore_cancellation();
            let peer = key(1);
            let first = Conn::lone();
            let first_closed = first.watch();
            assert!(f.server.inbound(peer, first, None));
            let second = Conn::lone();
            let second_closed = second.watch();
            if replaced {
                assert!(f.server.inbound(peer, second, None));
            } else {
                f.server.disconnect(&peer).await.expect("connected");
                drop(second);
            }
            settle().await;
            assert!(!first_closed.is_cancelled(), "its handler still runs");
            let server = f.server.clone();
            let shutdown = tokio::spawn(async move { server.shutdown().await });
            settle().await;
            assert!(!shutdown.is_finished(), "the handlers ignore cancellation");
            f.clock.advance(Config::DEFAULT_SHUTDOWN_GRACE).await;
            shutdown.await.expect("shutdown returns after its grace");
            assert_eq!(f.server.tasks(), 0);
            assert!(
                first_closed.is_cancelled(),
                "aborted, its connection closed"
            );
            assert!(second_closed.is_cancelled());
        });
    }
}

/// The synchronous calls work from a thread outside any runtime (a
/// listener of the user's on a thread of its own): what they start runs on
/// the server's runtime.
#[test]
fn sync_calls_from_a_thread_outside_the_runtime() {
    run(async {
        let f = Fixture::new(key(US));
        let (inbound_peer, channel_peer) = (key(1), key(2));
        let server = f.server.clone();
        let kept = std::thread::spawn(move || {
            let kept = server.inbound(inbound_peer, Conn::lone(), None);
            server.channel_opened(channel_peer);
            server.startup([StartupPeer::new(key(3), vec![addr(3)], false)]);
            kept
        })
        .join()
        .expect("no panic off the runtime");
        assert!(kept);
        settle().await;
        assert!(f.server.is_connected(&inbound_peer));
        assert_eq!(f.handler.runs().len(), 1, "its handler runs");
        assert_eq!(f.server.persistence(&channel_peer), Some(false));
        assert_eq!(f.server.persistence(&key(3)), Some(false));
        f.server.shutdown().await;
        assert_eq!(f.server.tasks(), 0);
    });
}

/// A connection's `Drop` is user code: the server drops connections
/// outside its lock, so a `Drop` that calls the server does not deadlock
/// it, whichever way the connection leaves: lost to the duplicate rule
/// (parking or not), a parked one replaced by a newer one, dropped at a
/// disconnect, or at the end of its grace.
#[test]
fn a_connection_dropped_by_the_server_may_call_it() {
    run(async {
        let peer = key(9);
        for rule in [DuplicateRule::LndEffective, DuplicateRule::default()] {
            let mut c = config();
            c.duplicate_rule = rule;
            // Our key is the smaller: under our rule, our outbound wins.
            let f = Fixture::with_config(key_below(peer), c);
            let (seen, saw) = mpsc::channel();
            let calling = || {
                let (server, seen) = (f.server.clone(), seen.clone());
                Conn::lone_dropping(move || {
                    let _ = seen.send((server.is_connected(&peer), server.status().len()));
                })
            };
            assert!(f.server.outbound(node(peer, 1), Conn::lone()));
            // Lost (and parked under our rule), then replaced by a newer
            // loser, which is parked in turn.
            assert!(!f.server.inbound(peer, calling(), None));
            assert!(!f.server.inbound(peer, calling(), None));
            settle().await;
            if rule == DuplicateRule::default() {
                // The parked one ends with its grace; a new one at the
                // disconnect.
                f.clock.advance(5 * SECOND).await;
                assert!(!f.server.inbound(peer, calling(), None));
                f.server.disconnect(&peer).await.expect("connected");
            }
            settle().await;
            let calls: Vec<_> = saw.try_iter().collect();
            let expected = if rule == DuplicateRule::default() {
                3
            } else {
                2
            };
            assert_eq!(
                calls.len(),
                expected,
                "{rule:?}: each drop called the server"
            );
            assert!(calls[0].0, "{rule:?}: it saw the winner connected");
            f.server.shutdown().await;
        }
    });
}

/// A connection whose `Drop` panics, dropped by the store's writer (a
/// parked connection at a disconnect), costs nothing else: the writer
/// lives, and the operations after it are written and applied.
#[test]
fn a_connection_whose_drop_panics_stops_nothing() {
    run(async {
        let peer = key(9);
        let store = GateStore::new();
        let (server, _clock, handler, _dialer) = open(key_below(peer), &store).await;
        assert!(server.outbound(node(peer, 1), Conn::lone()));
        let panicking = Conn::lone_dropping(|| panic!("a buggy connection type"));
        assert!(!server.inbound(peer, panicking, None), "lost and parked");
        settle().await;
        assert_eq!(server.status()[0].parked, Some(server::Direction::Inbound));
        server.disconnect(&peer).await.expect("connected");
        let other = key(10);
        server
            .connect(node(other, 1), true)
            .await
            .expect("the writer lives");
        assert!(store.stored(&other).await);
        assert_eq!(server.persistence(&other), Some(true));
        // One refused by `inbound` itself (the peer is banned), with the
        // same `Drop`: the caller is not hurt either.
        server.ban(peer, None).await.expect("written");
        let refused = Conn::lone_dropping(|| panic!("a buggy connection type"));
        assert!(!server.inbound(peer, refused, None));
        assert_eq!(handler.runs().len(), 1);
        server.shutdown().await;
        assert_eq!(server.tasks(), 0);
    });
}

/// Shutdown's grace bounds a store write that never returns: the writer is
/// ended, and the caller waiting for it is told `ShutDown`.
#[test]
fn shutdown_ends_a_store_write_that_never_returns() {
    run(async {
        let store = GateStore::new();
        let (server, clock, _handler, _dialer) = open(key(US), &store).await;
        store.gate(true);
        let s = server.clone();
        let waiting = tokio::spawn(async move { s.connect(node(key(1), 1), true).await });
        settle().await;
        assert!(!waiting.is_finished(), "its write waits");
        let s = server.clone();
        let shutdown = tokio::spawn(async move { s.shutdown().await });
        settle().await;
        assert!(!shutdown.is_finished(), "the store has not returned");
        clock.advance(Config::DEFAULT_SHUTDOWN_GRACE).await;
        shutdown.await.expect("shutdown returns after its grace");
        assert_eq!(server.tasks(), 0);
        let answer = waiting.await.expect("the caller returns");
        assert!(matches!(answer, Err(ServerError::ShutDown)), "{answer:?}");
    });
}

/// A prune is decided once, when the store's writer plans it, and the
/// registry follows that decision: a channel closed (or opened) while the
/// prune's write is under way does not make the registry stop a worker
/// whose record the store kept, or keep one whose record it removed.
#[test]
fn a_prune_racing_a_channel_close_leaves_store_and_registry_agreeing() {
    run(async {
        let store = GateStore::new();
        let (server, _clock, _handler, _dialer) = open(key(US), &store).await;
        let (p, q) = (key(1), key(2));
        server.channel_opened(p);
        server.channel_opened(q);
        settle().await;
        assert!(store.stored(&p).await && store.stored(&q).await);
        server.channel_closed(&q);
        store.gate(true);
        // A write under way holds the writer, so the prunes and a write
        // behind them are planned together, as one batch, when it is done.
        let s = server.clone();
        let first = tokio::spawn(async move { s.connect(node(key(3), 1), true).await });
        settle().await;
        // P has a channel when its prune is planned; Q has none.
        assert!(!server.prune(&p), "P has a channel");
        assert!(server.prune(&q));
        let s = server.clone();
        let behind = tokio::spawn(async move { s.connect(node(key(4), 1), true).await });
        settle().await;
        store.pass(1);
        settle().await;
        first.await.expect("returns").expect("written");
        // The batch of the prunes is planned and its write is held: now P's
        // channel closes and Q's opens.
        server.channel_closed(&p);
        server.channel_opened(q);
        store.pass(1);
        settle().await;
        behind.await.expect("returns").expect("written");
        store.gate(false);
        store.pass(1);
        // Q's opening is written after the prune.
        server
            .unban(&key(5))
            .await
            .expect("a write after all of them");
        for peer in [p, q] {
            assert_eq!(
                store.stored(&peer).await,
                server.persistence(&peer).is_some(),
                "store and registry agree on {peer}"
            );
        }
        assert_eq!(
            server.persistence(&p),
            Some(false),
            "kept, as the store kept it"
        );
        assert_eq!(
            server.persistence(&q),
            Some(false),
            "back for its new channel"
        );
        server.shutdown().await;
    });
}

/// Our own key is never a peer: a connection with it (a node connected to
/// itself) is refused, and a channel "with ourselves" makes no worker.
#[test]
fn our_own_key_is_never_a_peer() {
    run(async {
        let f = Fixture::new(key(US));
        let us = key(US);
        let conn = Conn::lone();
        let closed = conn.watch();
        assert!(!f.server.inbound(us, conn, None));
        assert!(closed.is_cancelled(), "closed");
        assert!(!f.server.outbound(node(us, 1), Conn::lone()));
        f.server.channel_opened(us);
        settle().await;
        assert_eq!(f.server.persistence(&us), None);
        assert!(f.server.status().is_empty());
        assert!(f.handler.runs().is_empty());
        f.server.shutdown().await;
    });
}

/// A memory store whose writes fail once `writes_left` reaches 0.
#[derive(Clone)]
struct FailingStore {
    inner: MemoryStore<NetAddress>,
    writes_left: Arc<std::sync::atomic::AtomicUsize>,
}

impl PeerStore for FailingStore {
    type Addr = NetAddress;
    type Error = StoreError;

    async fn load(&self) -> Result<Snapshot<NetAddress>, StoreError> {
        self.inner.load().await
    }

    async fn apply(&self, changes: Vec<Change<NetAddress>>) -> Result<(), StoreError> {
        let left = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left.is_err() {
            return Err(StoreError::Io(std::io::Error::other("disk full")));
        }
        self.inner.apply(changes).await
    }
}

/// `unban_ended` returns the bans it lifted before the store failed (they
/// are lifted, in the store and the registry), and leaves the rest for
/// the next call.
#[test]
fn unban_ended_says_what_it_lifted_before_the_store_failed() {
    run(async {
        let store = FailingStore {
            inner: MemoryStore::new(),
            writes_left: Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
        };
        let clock = ManualClock::new();
        let server = Server::open(
            key(US),
            config(),
            Mock(MockDialer::new(clock.clone())),
            clock,
            Handler::default(),
            store.clone(),
        )
        .await
        .expect("opens");
        let ended = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let (a, b) = (key(1), key(2));
        server.ban(a, Some(ended)).await.expect("written");
        server.ban(b, Some(ended)).await.expect("written");
        store.writes_left.store(1, Ordering::SeqCst);
        let first = server.unban_ended().await.expect("one was lifted");
        assert_eq!(first.len(), 1, "{first:?}");
        let second = server.unban_ended().await;
        assert!(matches!(second, Err(ServerError::Store(_))), "{second:?}");
        store.writes_left.store(usize::MAX, Ordering::SeqCst);
        let rest = server.unban_ended().await.expect("written");
        let mut all = [first, rest].concat();
        all.sort();
        assert_eq!(all, {
            let mut both = vec![a, b];
            both.sort();
            both
        });
        let snap = store.inner.load().await.expect("loads");
        assert!(snap.bans.is_empty(), "both lifted in the store");
        server.shutdown().await;
    });
}

/// Shutdown raced with every operation, from four threads and from threads
/// outside the runtime, while connections' `Drop`s call the server or
/// panic, dialers panic or hang, and (on odd seeds) every handler ignores
/// its cancellation: shutdown returns (its grace is run out on the manual
/// clock), no task is left, and every connection reported established is
/// reported ended exactly once.
#[test]
fn shutdown_raced_with_every_operation_leaves_nothing() {
    for seed in 0..8u64 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let f = Arc::new(Fixture::new(key(US)));
            let peers: Vec<_> = (1..=8u8).map(key).collect();
            for (i, p) in peers.iter().enumerate() {
                let b = [
                    Behavior::Succeed,
                    Behavior::Fail,
                    Behavior::Hang,
                    Behavior::Panic,
                ][i % 4];
                f.dialer.set(node(*p, 1), b);
            }
            if seed % 2 == 1 {
                f.handler.ignore_cancellation();
            }
            // The server as a connection's `Drop` sees it; emptied at the
            // end, so no connection keeps it alive.
            let slot = Arc::new(std::sync::Mutex::new(Some(f.server.clone())));
            let mut events = f.server.events();
            let counter = tokio::spawn(async move {
                let (mut up, mut down) = (0usize, 0usize);
                loop {
                    match events.recv().await {
                        Ok(server::ServerEvent::Connected { .. }) => up += 1,
                        Ok(server::ServerEvent::Disconnected { .. }) => down += 1,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                (up, down)
            });
            let mut tasks = Vec::new();
            for t in 0..4u64 {
                let (f, peers, slot) = (Arc::clone(&f), peers.clone(), Arc::clone(&slot));
                tasks.push(tokio::spawn(async move {
                    let mut rng = backoff::SplitMix64::new(seed * 31 + t);
                    for _ in 0..200 {
                        let r = rng.next_u64();
                        let p = peers[(r % peers.len() as u64) as usize];
                        let s = &f.server;
                        match (r >> 8) % 14 {
                            0 => drop(s.connect(node(p, 1), true).await),
                            1 => drop(s.disconnect(&p).await),
                            2 => drop(s.forget(&p).await),
                            3 => {
                                let _ = s.inbound(p, Conn::lone(), None);
                            }
                            4 => {
                                let slot = Arc::clone(&slot);
                                let conn = Conn::lone_dropping(move || {
                                    let server = slot.lock().expect("test lock").clone();
                                    if let Some(server) = server {
                                        let _ = (server.is_connected(&p), server.status());
                                    }
                                });
                                let _ = s.inbound(p, conn, None);
                            }
                            5 => {
                                let conn = Conn::lone_dropping(|| panic!("a buggy Drop"));
                                let _ = s.inbound(p, conn, None);
                            }
                            6 => {
                                let _ = s.outbound(node(p, 2), Conn::lone());
                            }
                            7 => {
                                let server = s.clone();
                                std::thread::spawn(move || server.inbound(p, Conn::lone(), None))
                                    .join()
                                    .expect("no panic off the runtime");
                            }
                            8 => s.channel_opened(p),
                            9 => s.channel_closed(&p),
                            10 => drop(s.prune(&p)),
                            11 => s.startup([StartupPeer::new(p, vec![addr(1)], false)]),
                            12 => drop(s.ban(p, None).await.and(s.unban(&p).await)),
                            _ => f.handler.close(&p),
                        }
                        if (r >> 40) % 4 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            let mut rng = backoff::SplitMix64::new(seed);
            for _ in 0..rng.next_u64() % 300 {
                tokio::task::yield_now().await;
            }
            let server = f.server.clone();
            let shutdown = tokio::spawn(async move { server.shutdown().await });
            // Runs out shutdown's grace, and the dials hanging meanwhile.
            let clock = f.clock.clone();
            let advancer = tokio::spawn(async move {
                loop {
                    clock.advance(Config::DEFAULT_SHUTDOWN_GRACE).await;
                    tokio::task::yield_now().await;
                }
            });
            shutdown.await.expect("shutdown returns");
            for t in tasks {
                t.await.expect("no operation panics");
            }
            advancer.abort();
            // Operations after shutdown start nothing.
            f.server.shutdown().await;
            assert_eq!(f.server.tasks(), 0, "seed {seed}");
            slot.lock().expect("test lock").take();
            let fx = Arc::try_unwrap(f).ok().expect("nothing else holds it");
            drop(fx);
            let (up, down) = counter.await.expect("counter");
            assert_eq!(up, down, "seed {seed}: each connection ends exactly once");
        });
    }
}
