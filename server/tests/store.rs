//! The server writing through a `PeerStore` (issue 16): what `open` starts
//! from, what each operation writes, that a failed write changes nothing,
//! that writes are shared, and that store and registry agree whatever
//! operations race. On the manual clock with mock dialers; one test on a
//! real SQLite file.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{addr, key, node, Handler, Mock, SECOND};
use peer_store::{Change, MemoryStore, PeerStore, Reason, Snapshot, StoreError};
use server::{Config, NetAddress, PublicKey, Server, ServerError};
use testkit::{run, settle, Behavior, ManualClock, MockDialer};
use tokio::sync::watch;

const US: u8 = 200;

/// A `MemoryStore` the test can make fail, panic or hold, counting writes.
#[derive(Clone)]
struct TestStore {
    inner: MemoryStore<NetAddress>,
    fail: Arc<AtomicBool>,
    panic: Arc<AtomicBool>,
    applies: Arc<AtomicUsize>,
    /// Announced addresses written (`SetAdvertisedAddrs` changes applied).
    advertised: Arc<AtomicUsize>,
    /// A write that carries this address is refused (as a store refuses
    /// what it cannot represent).
    refuse: Option<NetAddress>,
    /// While `true`, `apply` waits.
    held: watch::Sender<bool>,
    /// Peers a failed write would have recorded as persistent for their
    /// channels alone (a `channel_opened` nobody awaits: the server keeps
    /// such a peer connected all the same, unrecorded).
    channel_only_failed: Arc<std::sync::Mutex<BTreeSet<PublicKey>>>,
}

impl TestStore {
    fn new() -> Self {
        TestStore {
            inner: MemoryStore::new(),
            fail: Arc::default(),
            panic: Arc::default(),
            applies: Arc::default(),
            advertised: Arc::default(),
            refuse: None,
            held: watch::Sender::new(false),
            channel_only_failed: Arc::default(),
        }
    }

    fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }

    async fn snapshot(&self) -> Snapshot<NetAddress> {
        self.inner.load().await.expect("memory store loads")
    }
}

impl PeerStore for TestStore {
    type Addr = NetAddress;
    type Error = StoreError;

    async fn load(&self) -> Result<Snapshot<NetAddress>, StoreError> {
        self.inner.load().await
    }

    async fn apply(&self, changes: Vec<Change<NetAddress>>) -> Result<(), StoreError> {
        let mut held = self.held.subscribe();
        // The sender lives in `self`: waiting cannot fail.
        let _ = held.wait_for(|h| !*h).await;
        self.applies.fetch_add(1, Ordering::SeqCst);
        if self.panic.load(Ordering::SeqCst) {
            panic!("a buggy store");
        }
        if self.fail.load(Ordering::SeqCst) {
            let mut failed = self.channel_only_failed.lock().expect("test lock");
            for c in &changes {
                if let Change::Persist { peer, reason } = c {
                    if reason.has_channels && !reason.user_asked {
                        failed.insert(*peer);
                    }
                }
            }
            return Err(StoreError::Io(std::io::Error::other("disk full")));
        }
        let refused = |c: &Change<NetAddress>| match c {
            Change::SetUserAddrs { addrs, .. } => {
                addrs.iter().any(|a| Some(a) == self.refuse.as_ref())
            }
            _ => false,
        };
        if changes.iter().any(refused) {
            return Err(StoreError::Unstorable("refused by the test"));
        }
        let advertised = changes
            .iter()
            .filter(|c| matches!(c, Change::SetAdvertisedAddrs { .. }))
            .count();
        self.inner.apply(changes).await?;
        self.advertised.fetch_add(advertised, Ordering::SeqCst);
        Ok(())
    }
}

type StoreServer = Server<Mock, ManualClock, Handler>;

struct Node {
    clock: ManualClock,
    dialer: MockDialer<PublicKey, server::NodeAddr>,
    handler: Handler,
    server: StoreServer,
}

async fn open(store: &TestStore) -> Result<Node, ServerError> {
    let clock = ManualClock::new();
    let dialer = MockDialer::new(clock.clone());
    let mut config = Config::default();
    config.worker = config.worker.with_seed(7);
    let handler = Handler::default();
    let server = Server::open(
        key(US),
        config,
        Mock(dialer.clone()),
        clock.clone(),
        handler.clone(),
        store.clone(),
    )
    .await?;
    Ok(Node {
        clock,
        dialer,
        handler,
        server,
    })
}

/// A server with default settings on `store`, a mock dialer and `clock`.
fn open_on<S: PeerStore<Addr = NetAddress>>(
    clock: &ManualClock,
    store: S,
) -> impl std::future::Future<Output = Result<StoreServer, ServerError>> {
    Server::open(
        key(US),
        Config::default(),
        Mock(MockDialer::new(clock.clone())),
        clock.clone(),
        Handler::default(),
        store,
    )
}

fn later(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

/// Every field written by the operations and facts is there after a
/// restart, and the restarted server starts from it: the perm peer is
/// dialed first at its last good address, the channel peer is persistent
/// but not perm, the ban in force holds and the expired one is gone.
#[test]
fn what_a_server_writes_is_what_the_next_one_starts_from() {
    run(async {
        let store = TestStore::new();
        let n = open(&store).await.expect("empty store opens");
        let (perm, chan, banned, expired) = (key(1), key(2), key(3), key(4));
        n.server.node_announcement(perm, vec![addr(3)]);
        n.dialer.set(node(perm, 2), Behavior::Succeed);
        n.server.connect(node(perm, 1), true).await.expect("perm");
        n.server.connect(node(perm, 2), true).await.expect("perm");
        n.server.channel_opened(chan);
        n.server.ban(banned, Some(later(3600))).await.expect("ban");
        n.server.ban(expired, None).await.expect("ban");
        let past = SystemTime::now() - Duration::from_secs(1);
        n.server.ban(expired, Some(past)).await.expect("ban");
        assert!(!n.server.is_banned(&expired), "a ban that has ended");
        settle().await;
        n.clock.advance(SECOND).await;
        assert!(n.server.is_connected(&perm), "dialed at :2");
        let status = n.server.peer_status(&perm).expect("known");
        assert_eq!(status.persistent, Some(true));
        assert!(n.server.peer_status(&key(9)).is_none(), "unknown");
        n.server
            .unban(&key(9))
            .await
            .expect("a write after the facts");

        let snap = store.snapshot().await;
        let p = snap
            .peers
            .iter()
            .find(|r| r.id == perm)
            .expect("perm stored");
        assert_eq!(
            p.reason,
            Reason {
                user_asked: true,
                has_channels: false
            }
        );
        assert_eq!(p.user_addrs, vec![addr(2), addr(1)], "latest first");
        assert_eq!(p.advertised_addrs, vec![addr(3)]);
        let last = p.last_connection.as_ref().expect("connection recorded");
        assert_eq!((last.addr.clone(), last.lasted), (addr(2), None));
        let c = snap.peers.iter().find(|r| r.id == chan).expect("stored");
        assert!(c.reason.has_channels && !c.reason.user_asked);
        assert_eq!(snap.bans.len(), 2);
        n.server.shutdown().await;

        let n = open(&store).await.expect("reopens");
        assert_eq!(n.server.persistence(&perm), Some(true));
        assert_eq!(n.server.persistence(&chan), Some(false));
        assert!(n.server.is_banned(&banned));
        assert!(!n.server.is_banned(&expired));
        assert_eq!(store.snapshot().await.bans.len(), 1, "expired ban removed");
        settle().await;
        let first = n.dialer.dialed().into_iter().find(|a| a.pubkey == perm);
        assert_eq!(first, Some(node(perm, 2)), "last good address first");
        n.server.shutdown().await;
    });
}

/// A failed write changes nothing: neither the store nor the registry,
/// and nothing is dialed; once the store works again, so does the server.
#[test]
fn a_failed_write_changes_nothing() {
    run(async {
        let store = TestStore::new();
        let n = open(&store).await.expect("opens");
        let (kept, new) = (key(1), key(2));
        n.dialer.set_fallback(Behavior::Succeed);
        n.server.connect(node(kept, 1), true).await.expect("perm");
        settle().await;
        assert!(n.server.is_connected(&kept));
        let before = store.snapshot().await;
        let dials = n.dialer.dialed().len();

        store.fail.store(true, Ordering::SeqCst);
        let err = n
            .server
            .connect(node(new, 1), true)
            .await
            .expect_err("fails");
        assert!(matches!(err, ServerError::Store(_)), "{err:?}");
        assert!(matches!(
            n.server.disconnect(&kept).await,
            Err(ServerError::Store(_))
        ));
        assert!(n.server.forget(&kept).await.is_err());
        assert!(n.server.ban(new, None).await.is_err());
        n.server.channel_opened(key(3));
        assert!(n.server.unban(&new).await.is_err(), "and after the post");
        settle().await;
        n.clock.advance(10 * SECOND).await;
        assert_eq!(n.server.persistence(&new), None);
        // But for a channel's opening, which nobody waits on: its peer is
        // kept connected for the channel all the same, only not recorded.
        assert_eq!(n.server.persistence(&key(3)), Some(false));
        assert_eq!(n.server.persistence(&kept), Some(true));
        assert!(n.server.is_connected(&kept));
        assert!(!n.server.is_banned(&new));
        assert_eq!(n.dialer.dialed().len(), dials, "nothing dialed");
        assert_eq!(store.snapshot().await, before);

        store.fail.store(false, Ordering::SeqCst);
        n.server.disconnect(&kept).await.expect("works again");
        assert_eq!(n.server.persistence(&kept), None);
        assert!(store.snapshot().await.peers.is_empty());
        n.server.shutdown().await;
    });
}

/// A store that panics in `apply` fails that write like an error; the
/// server goes on.
#[test]
fn a_panicking_store_fails_the_write_and_the_server_goes_on() {
    run(async {
        let store = TestStore::new();
        let n = open(&store).await.expect("opens");
        store.panic.store(true, Ordering::SeqCst);
        let err = n
            .server
            .connect(node(key(1), 1), true)
            .await
            .expect_err("panicked");
        let ServerError::Store(source) = &err else {
            panic!("{err:?}");
        };
        assert!(source.to_string().contains("a buggy store"), "{source}");
        store.panic.store(false, Ordering::SeqCst);
        n.server
            .connect(node(key(1), 1), true)
            .await
            .expect("works");
        assert_eq!(n.server.persistence(&key(1)), Some(true));
        n.server.shutdown().await;
    });
}

/// An operation returns only once its write is durable, and its registry
/// change waits for the write too; many at once share one write.
#[test]
fn operations_wait_for_their_write_and_share_it() {
    run(async {
        let store = TestStore::new();
        let n = open(&store).await.expect("opens");
        // No dial ends: no fact is written besides the operations.
        n.dialer.set_fallback(Behavior::Hang);
        store.hold(true);
        let server = n.server.clone();
        let one = tokio::spawn(async move { server.connect(node(key(1), 1), true).await });
        settle().await;
        assert!(!one.is_finished(), "the write is held");
        assert_eq!(n.server.persistence(&key(1)), None, "nor applied");
        assert!(n.dialer.dialed().is_empty());
        // 1,000 more while the first write is held: they queue.
        let calls: Vec<_> = (0..1000u16)
            .map(|i| {
                let server = n.server.clone();
                let peer = key(2 + (i % 150) as u8);
                tokio::spawn(async move { server.connect(node(peer, i + 1), true).await })
            })
            .collect();
        settle().await;
        let applies = store.applies.load(Ordering::SeqCst);
        store.hold(false);
        one.await.expect("task").expect("written");
        for c in calls {
            c.await.expect("task").expect("written");
        }
        let writes = store.applies.load(Ordering::SeqCst) - applies;
        assert_eq!(
            writes, 2,
            "1,001 operations: the held write, then the rest in one"
        );
        assert_eq!(store.snapshot().await.peers.len(), 151);
        for b in 1..=151u8 {
            assert_eq!(n.server.persistence(&key(b)), Some(true));
        }
        n.server.shutdown().await;
    });
}

/// Announcements come at gossip's rate: while the store is stalled they
/// are coalesced, one queued per peer (its latest), so 10,000 of them for
/// a stored peer reach the store as its first and its latest, and those of
/// peers nobody stores as nothing.
#[test]
fn announcements_queued_behind_a_stalled_store_are_coalesced_per_peer() {
    run(async {
        let store = TestStore::new();
        let n = open(&store).await.expect("opens");
        n.dialer.set_fallback(Behavior::Hang);
        let peer = key(1);
        n.server.connect(node(peer, 1), true).await.expect("perm");
        store.hold(true);
        // The first is taken by a write that is now held; the rest queue.
        n.server.node_announcement(peer, vec![addr(2)]);
        settle().await;
        for i in 0..10_000u16 {
            n.server
                .node_announcement(peer, vec![addr(3 + i % 1000), addr(5000 + i)]);
            n.server
                .node_announcement(key(2 + (i % 100) as u8), vec![addr(i)]);
        }
        let last = vec![addr(3 + 9_999 % 1000), addr(5000 + 9_999)];
        store.hold(false);
        // Written in queue order: once this is, every announcement is.
        n.server.unban(&key(200)).await.expect("a write after them");
        let snap = store.snapshot().await;
        let stored = snap.peers.iter().find(|r| r.id == peer).expect("stored");
        assert_eq!(stored.advertised_addrs, last, "the latest");
        assert_eq!(snap.peers.len(), 1, "announced peers are not stored");
        assert_eq!(
            store.advertised.load(Ordering::SeqCst),
            2,
            "the held one, then the latest of the 10,000"
        );
        n.server.shutdown().await;
    });
}

/// One request the store refuses (an address it cannot represent) fails
/// alone, not the others written in the same batch.
#[test]
fn one_refused_request_does_not_fail_its_batch() {
    run(async {
        let mut store = TestStore::new();
        store.refuse = Some(addr(666));
        let n = open(&store).await.expect("opens");
        store.hold(true);
        let calls: Vec<_> = [(1u8, 1u16), (2, 666), (3, 3)]
            .into_iter()
            .map(|(b, port)| {
                let server = n.server.clone();
                tokio::spawn(async move { server.connect(node(key(b), port), true).await })
            })
            .collect();
        settle().await;
        store.hold(false);
        let mut results = Vec::new();
        for c in calls {
            results.push(c.await.expect("task").is_ok());
        }
        assert_eq!(results, [true, false, true]);
        assert_eq!(n.server.persistence(&key(2)), None);
        assert_eq!(store.snapshot().await.peers.len(), 2);
        n.server.shutdown().await;
    });
}

/// A store that cannot be read starts no server.
#[test]
fn an_unreadable_store_is_an_error_at_open() {
    #[derive(Clone)]
    struct Broken;
    impl PeerStore for Broken {
        type Addr = NetAddress;
        type Error = StoreError;
        async fn load(&self) -> Result<Snapshot<NetAddress>, StoreError> {
            Err(StoreError::NotAStore)
        }
        async fn apply(&self, _: Vec<Change<NetAddress>>) -> Result<(), StoreError> {
            Ok(())
        }
    }
    run(async {
        let r = open_on(&ManualClock::new(), Broken).await;
        let err = r.expect_err("refused");
        assert!(matches!(err, ServerError::Store(_)), "{err:?}");
        let text = std::error::Error::source(&err).expect("cause").to_string();
        assert!(!text.is_empty());
    });
}

/// Store and registry agree after every operation raced with every other
/// (announcements among them) from four threads, with writes failing at
/// random and dialers or handlers panicking: a peer is stored iff it is
/// persistent (but for one whose channel's opening failed to be written:
/// kept, unrecorded), `user_asked` iff perm, and the bans are the same;
/// the server's own machinery recovered from every panic.
#[test]
fn store_and_registry_agree_whatever_races() {
    for seed in 0..6u64 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let store = TestStore::new();
            let n = open(&store).await.expect("opens");
            // User code misbehaving meanwhile: every dial panics, or
            // connections are made and their handlers panic.
            if seed % 2 == 1 {
                n.dialer.set_fallback(Behavior::Panic);
            } else {
                n.dialer.set_fallback(Behavior::Succeed);
                n.handler.panic_next(40);
            }
            let tasks: Vec<_> = (0..4u64)
                .map(|t| {
                    let server = n.server.clone();
                    let fail = Arc::clone(&store.fail);
                    tokio::spawn(async move {
                        let mut rng = backoff::SplitMix64::new(seed * 31 + t);
                        for _ in 0..200 {
                            let r = rng.next_u64();
                            let p = key(1 + (r % 6) as u8);
                            fail.store((r >> 8) % 10 == 0, Ordering::SeqCst);
                            match (r >> 16) % 11 {
                                0 | 1 => {
                                    drop(server.connect(node(p, (r >> 24) as u16), true).await)
                                }
                                2 => drop(server.disconnect(&p).await),
                                3 => drop(server.forget(&p).await),
                                // For good, for an hour, or already over.
                                4 => {
                                    let until = match (r >> 40) % 3 {
                                        0 => None,
                                        1 => Some(later(3600)),
                                        _ => Some(SystemTime::now() - Duration::from_secs(1)),
                                    };
                                    drop(server.ban(p, until).await)
                                }
                                5 => drop(server.unban(&p).await),
                                6 => server.channel_opened(p),
                                7 => server.channel_closed(&p),
                                8 => drop(server.prune(&p)),
                                9 => server.node_announcement(p, vec![addr((r >> 24) as u16)]),
                                _ => drop(server.unban_ended().await),
                            }
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("no panic");
            }
            // A last awaited write: everything posted before it is applied.
            store.fail.store(false, Ordering::SeqCst);
            n.server.unban(&key(99)).await.expect("written");
            let snap = store.snapshot().await;
            let stored: BTreeMap<PublicKey, bool> = (snap.peers.iter())
                .map(|r| (r.id, r.reason.user_asked))
                .collect();
            let mut registry: BTreeMap<PublicKey, bool> = (1..=6u8)
                .map(key)
                .filter_map(|p| n.server.persistence(&p).map(|perm| (p, perm)))
                .collect();
            // A peer whose channel's opening failed to be written is kept
            // connected, unrecorded: the one way the two may differ.
            let failed = store.channel_only_failed.lock().expect("test lock").clone();
            registry.retain(|p, perm| {
                let unrecorded = !stored.contains_key(p) && !*perm && failed.contains(p);
                !unrecorded
            });
            assert_eq!(stored, registry, "seed {seed}");
            let stored_bans: BTreeSet<PublicKey> = (snap.bans_active_at(SystemTime::now()))
                .map(|b| b.peer)
                .collect();
            let bans: BTreeSet<PublicKey> = n.server.bans().into_iter().map(|b| b.0).collect();
            assert_eq!(stored_bans, bans, "seed {seed}");
            // Lifting the ended bans leaves none in the store either.
            n.server.unban_ended().await.expect("written");
            let all: BTreeSet<PublicKey> = (store.snapshot().await.bans.iter())
                .map(|b| b.peer)
                .collect();
            assert_eq!(all, bans, "seed {seed}");
            // After it all, each peer's last announcement is what its record
            // holds, however many were coalesced or lost to failed writes.
            for b in 1..=6u8 {
                n.server
                    .node_announcement(key(b), vec![addr(60_000 + u16::from(b))]);
            }
            n.server.unban(&key(99)).await.expect("written");
            for r in &store.snapshot().await.peers {
                let b = (1..=6u8).find(|b| key(*b) == r.id).expect("one of ours");
                assert_eq!(
                    r.advertised_addrs,
                    vec![addr(60_000 + u16::from(b))],
                    "seed {seed}"
                );
            }
            assert!(n.server.health().event_task_running, "seed {seed}");
            n.server.shutdown().await;
        });
    }
}

/// A store's error whose `Display` panics.
#[derive(Debug)]
struct Rude;

impl std::fmt::Display for Rude {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("a Display that panics")
    }
}

impl std::error::Error for Rude {}

/// A store that fails with [`Rude`] while `fail` is set, and whose `load`
/// panics while `panic_load` is set.
#[derive(Clone, Default)]
struct RudeStore {
    inner: MemoryStore<NetAddress>,
    fail: Arc<AtomicBool>,
    panic_load: Arc<AtomicBool>,
}

impl PeerStore for RudeStore {
    type Addr = NetAddress;
    type Error = Rude;

    async fn load(&self) -> Result<Snapshot<NetAddress>, Rude> {
        if self.panic_load.load(Ordering::SeqCst) {
            panic!("a load that panics");
        }
        self.inner.load().await.map_err(|_| Rude)
    }

    async fn apply(&self, changes: Vec<Change<NetAddress>>) -> Result<(), Rude> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Rude);
        }
        self.inner.apply(changes).await.map_err(|_| Rude)
    }
}

/// The store is user code all the way: a `load` that panics is an error
/// from `open`, and an error whose `Display` panics fails its write like
/// any other (the server never prints it) and the server goes on.
#[test]
fn a_store_whose_load_or_display_panics_is_only_an_error() {
    run(async {
        let store = RudeStore::default();
        let clock = ManualClock::new();
        let start = |store| open_on(&clock, store);
        store.panic_load.store(true, Ordering::SeqCst);
        let err = start(store.clone()).await.expect_err("load panicked");
        let ServerError::Store(source) = &err else {
            panic!("{err:?}");
        };
        assert!(source.to_string().contains("a load that panics"));

        store.panic_load.store(false, Ordering::SeqCst);
        let server = start(store.clone()).await.expect("opens");
        store.fail.store(true, Ordering::SeqCst);
        let err = server
            .connect(node(key(1), 1), true)
            .await
            .expect_err("fails");
        assert!(matches!(err, ServerError::Store(_)));
        store.fail.store(false, Ordering::SeqCst);
        server
            .connect(node(key(1), 1), true)
            .await
            .expect("the writer lives");
        assert_eq!(server.persistence(&key(1)), Some(true));
        server.shutdown().await;
    });
}

/// On a real SQLite file: the perm peers and the ban written by one server
/// are started by the next; a forgotten peer is gone.
#[test]
fn a_sqlite_store_keeps_perm_peers_across_a_restart() {
    run(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("peers.sqlite");
        let open_sqlite = || async {
            peer_store::SqliteStore::<NetAddress>::open(&path, Default::default()).await
        };
        let clock = ManualClock::new();
        let start = |store| open_on(&clock, store);
        let store = open_sqlite().await.expect("creates the file");
        let s = start(store.clone()).await.expect("opens");
        for b in 1..=20u8 {
            s.connect(node(key(b), u16::from(b)), true)
                .await
                .expect("written");
        }
        s.ban(key(30), None).await.expect("written");
        s.forget(&key(20)).await.expect("written");
        s.shutdown().await;
        drop(s);
        store.close().await.expect("closes");

        let store = open_sqlite().await.expect("reopens");
        let s = start(store.clone()).await.expect("opens");
        for b in 1..=19u8 {
            assert_eq!(s.persistence(&key(b)), Some(true), "peer {b}");
        }
        assert_eq!(s.persistence(&key(20)), None);
        assert!(s.is_banned(&key(30)));
        s.shutdown().await;
        drop(s);
        store.close().await.expect("closes");
    });
}

/// `open_with_events` subscribes before the stored peers start: their
/// first events (the address a stored peer's worker skips, its first dial)
/// reach the subscriber, which `open` and a later `events()` cannot
/// promise.
#[test]
fn open_with_events_misses_none_of_the_stored_peers_events() {
    run(async {
        let store = TestStore::new();
        let peer = key(1);
        let onion: NetAddress =
            "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9735"
                .parse()
                .expect("a v3 onion");
        {
            let n = open(&store).await.expect("opens");
            n.dialer.set_fallback(Behavior::Hang);
            n.server.connect(node(peer, 1), true).await.expect("perm");
            n.server
                .node_announcement(peer, vec![onion.clone(), addr(2)]);
            n.server.unban(&key(200)).await.expect("a write after them");
            n.server.shutdown().await;
        }
        let clock = ManualClock::new();
        let dialer = MockDialer::new(clock.clone());
        dialer.set_fallback(Behavior::Hang);
        let (server, mut events) = Server::open_with_events(
            key(US),
            Config::default(),
            Mock(dialer),
            clock.clone(),
            Handler::default(),
            store.clone(),
        )
        .await
        .expect("opens");
        settle().await;
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push(e);
        }
        let dialed = seen
            .iter()
            .any(|e| matches!(e, server::ServerEvent::DialStarted { peer: p, .. } if *p == peer));
        assert!(dialed, "its first dial: {seen:#?}");
        let skipped = seen.iter().any(|e| {
            matches!(e, server::ServerEvent::AddressSkipped { peer: p, addr, .. } if *p == peer && *addr == onion)
        });
        assert!(skipped, "its onion address, without a proxy: {seen:#?}");
        server.shutdown().await;
    });
}
