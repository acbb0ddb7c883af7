//! Soak: many peers flapping at random for a long (simulated or real) time,
//! with the server's invariants checked throughout.
//!
//! - `soak_simulation_…`: the server on the manual clock and a scripted
//!   mock dialer; 1,000 peers for a simulated hour by default, 10,000 peers
//!   for a simulated day with `SOAK=long`. Seeded: every run is the same.
//! - `soak_real_sockets_…`: a server and 200 peers on 127.0.0.1 flapping
//!   for 3 s by default, 30 s with `SOAK=long`.
//!
//! Figures are printed (`cargo test -p server --test soak -- --nocapture`)
//! and recorded in RELIABILITY.md.

mod common;
#[path = "../../brontide/tests/support/hostile_peers.rs"]
mod peers;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backoff::SplitMix64;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use brontide::{Connection, DialConfig, Listener, ListenerConfig, NodeKeyPair};
use common::{settle_on, until_event, Conn, Handler, Mock, Reader};
use conn_worker::{Dialer, Policy, TokioClock};
use futures::StreamExt;
use server::{BrontideDialer, Config, NetAddress, NodeAddr, Server};
use testkit::{settle, Behavior, ManualClock, MockDialer, MockError};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn long() -> bool {
    std::env::var("SOAK").is_ok_and(|v| v == "long")
}

/// The simulation's only source of randomness.
struct Rng(SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The `i`-th peer's secret key (any index below 2^32).
fn secret(i: u32) -> SecretKey {
    let mut bytes = [0u8; 32];
    bytes[0] = 0x01;
    bytes[28..].copy_from_slice(&i.to_be_bytes());
    SecretKey::from_slice(&bytes).expect("a small scalar is valid")
}

// --- The simulation. ---

/// What the dialer saw, counted as the dials happen.
#[derive(Default)]
struct Book {
    seq: AtomicU64,
    state: Mutex<BookState>,
}

#[derive(Default)]
struct BookState {
    in_flight: HashMap<PublicKey, usize>,
    total: usize,
    max_per_peer: usize,
    max_total: usize,
    /// The sequence number of each peer's latest dial.
    last_dial: HashMap<PublicKey, u64>,
}

struct InFlight {
    book: Arc<Book>,
    peer: PublicKey,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = self.book.state.lock().expect("book");
        st.total -= 1;
        if let Some(n) = st.in_flight.get_mut(&self.peer) {
            *n -= 1;
        }
    }
}

impl Book {
    fn begin(self: &Arc<Self>, peer: PublicKey) -> InFlight {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut st = self.state.lock().expect("book");
        st.total += 1;
        st.max_total = st.max_total.max(st.total);
        let n = st.in_flight.entry(peer).or_default();
        *n += 1;
        let n = *n;
        st.max_per_peer = st.max_per_peer.max(n);
        st.last_dial.insert(peer, seq);
        InFlight {
            book: Arc::clone(self),
            peer,
        }
    }

    fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }
}

/// testkit's mock dialer, watched by a [`Book`].
#[derive(Clone)]
struct Watched {
    mock: Mock,
    book: Arc<Book>,
}

impl Dialer for Watched {
    type Addr = NodeAddr;
    type Conn = Conn;
    type Error = MockError;

    async fn dial(&self, addr: &NodeAddr, cancel: CancellationToken) -> Result<Conn, MockError> {
        let _in_flight = self.book.begin(addr.pubkey);
        self.mock.dial(addr, cancel).await
    }
}

struct Sim {
    peers: usize,
    duration: Duration,
    /// Each peer flaps (one random action) about once per this.
    flap_every: Duration,
    /// Check every invariant each this many steps.
    check_every: usize,
}

const MAX_PARALLEL: usize = 2;
const MAX_DIALS: usize = 16;

fn addr_of(peer: usize, j: usize) -> NetAddress {
    let port = 1 + ((peer * 3 + j) % 65_000) as u16;
    NetAddress::Ip(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A random dial behaviour: mostly quick answers, some slow failures (the
/// dialer's timeouts), some refusals.
fn behavior(rng: &mut Rng) -> Behavior {
    match rng.below(10) {
        0..=3 => Behavior::Succeed,
        4 => Behavior::SucceedAfter(Duration::from_millis(100 + rng.below(5000))),
        5 | 6 => Behavior::Fail,
        _ => Behavior::FailAfter(Duration::from_secs(1 + rng.below(30))),
    }
}

type SimServer = Server<Watched, ManualClock, Handler>;

/// Checks every invariant that must hold whenever the runtime is idle.
fn check(server: &SimServer, book: &Book, stopped: &HashMap<PublicKey, u64>, checks: &mut usize) {
    *checks += 1;
    let st = book.state.lock().expect("book");
    assert!(
        st.max_per_peer <= MAX_PARALLEL,
        "{} dials for one peer",
        st.max_per_peer
    );
    assert!(st.max_total <= MAX_DIALS, "{} dials at once", st.max_total);
    assert!(server.dials_in_flight() <= MAX_DIALS);
    for (peer, at) in stopped {
        let last = st.last_dial.get(peer).copied().unwrap_or(0);
        assert!(last <= *at, "peer dialed after its worker was stopped");
    }
    drop(st);
    let status = server.status();
    let workers = status.iter().filter(|p| p.persistent.is_some()).count();
    let conns = status.iter().filter(|p| p.connection.is_some()).count();
    for p in &status {
        if let Some(w) = &p.worker {
            assert!(
                w.in_flight <= MAX_PARALLEL,
                "worker reports {} in flight",
                w.in_flight
            );
        }
        if p.persistent.is_some() {
            assert!(
                !stopped.contains_key(&p.pubkey),
                "a stopped peer is persistent"
            );
        }
    }
    // One drain task, one task per worker, one per live connection, one per
    // parked duplicate (the timer that drops it).
    let parked = status.iter().filter(|p| p.parked.is_some()).count();
    assert_eq!(
        server.tasks(),
        1 + workers + conns + parked,
        "tasks {} vs {workers} workers and {conns} connections",
        server.tasks()
    );
}

fn simulate(sim: &Sim) {
    let started = Instant::now();
    let secp = Secp256k1::signing_only();
    let keys: Vec<PublicKey> = (0..sim.peers)
        .map(|i| PublicKey::from_secret_key(&secp, &secret(i as u32 + 10)))
        .collect();
    let local = PublicKey::from_secret_key(&secp, &secret(1));

    let report = testkit::run(async {
        let clock = ManualClock::new();
        let mock = MockDialer::new(clock.clone());
        let book = Arc::new(Book::default());
        let handler = Handler::default();
        let mut config = Config::default();
        config.worker = config
            .worker
            .with_seed(0x50a4)
            .with_max_parallel(NonZeroUsize::new(MAX_PARALLEL).expect("non-zero"))
            .with_stagger(Duration::from_secs(5))
            .with_max_dials_in_flight(NonZeroUsize::new(MAX_DIALS).expect("non-zero"));
        let dialer = Watched {
            mock: Mock(mock.clone()),
            book: Arc::clone(&book),
        };
        let server = Server::new(local, config, dialer, clock.clone(), handler.clone());
        let mut rng = Rng(SplitMix64::new(0x50a4_50a4));

        // Every peer starts persistent (as after a restart), each with two
        // addresses and a random behaviour at each.
        for (i, key) in keys.iter().enumerate() {
            for j in 0..2 {
                mock.set(NodeAddr::new(*key, addr_of(i, j)), behavior(&mut rng));
            }
        }
        server.startup((0..sim.peers).map(|i| {
            server::StartupPeer::new(
                keys[i],
                vec![addr_of(i, 0), addr_of(i, 1)],
                rng.below(2) == 0,
            )
        }));

        let mut stopped: HashMap<PublicKey, u64> = HashMap::new();
        let mut banned: HashSet<PublicKey> = HashSet::new();
        let mut checks = 0usize;
        let mut actions = 0u64;
        let mut steps = 0usize;
        while clock.elapsed() < sim.duration {
            let dt = Duration::from_secs(1 + rng.below(29));
            let flaps = (sim.peers as u64 * dt.as_secs()).div_ceil(sim.flap_every.as_secs());
            for _ in 0..flaps {
                actions += 1;
                let i = rng.below(sim.peers as u64) as usize;
                let peer = keys[i];
                let node = |j| NodeAddr::new(peer, addr_of(i, j));
                match rng.below(100) {
                    // The connection drops (the remote end or the network).
                    0..=29 => handler.close(&peer),
                    // An address starts answering differently.
                    30..=54 => mock.set(node(rng.below(2) as usize), behavior(&mut rng)),
                    // A user (re)connects: persistent again.
                    55..=64 => {
                        let _ = server.connect(node(0), true).await;
                        stopped.remove(&peer);
                    }
                    // An inbound connection from the peer.
                    65..=72 => {
                        server.inbound(peer, Conn::lone(), None);
                    }
                    // A user disconnects: no dial after this.
                    73..=76 => {
                        if server.disconnect(&peer).await.is_ok() {
                            stopped.insert(peer, book.seq());
                        }
                    }
                    77..=79 => {
                        if server.prune(&peer) {
                            stopped.insert(peer, book.seq());
                        }
                    }
                    80..=81 => {
                        if server.forget(&peer).await.expect("no store") {
                            stopped.insert(peer, book.seq());
                        }
                    }
                    // A channel (only with a connected peer, as in life).
                    82..=86 => {
                        if server.is_connected(&peer) {
                            server.channel_opened(peer);
                            stopped.remove(&peer);
                        }
                    }
                    87..=89 => server.channel_closed(&peer),
                    // A node announcement moves the peer's addresses.
                    90..=94 => server.node_announcement(
                        peer,
                        vec![addr_of(i, rng.below(3) as usize), addr_of(i, 1)],
                    ),
                    // A ban (it stops a non-perm worker), lifted later.
                    _ => {
                        let was = server.persistence(&peer);
                        server.ban(peer, None).await.expect("no store");
                        banned.insert(peer);
                        if was == Some(false) {
                            stopped.insert(peer, book.seq());
                        }
                    }
                }
                if banned.len() > sim.peers / 50 {
                    for p in banned.drain() {
                        server.unban(&p).await.expect("no store");
                    }
                }
            }
            // Addresses a node announcement may have brought in answer too.
            settle().await;
            clock.advance(dt).await;
            steps += 1;
            if steps % sim.check_every == 0 {
                check(&server, &book, &stopped, &mut checks);
            }
        }
        check(&server, &book, &stopped, &mut checks);

        // Calm: every address answers, bans are lifted; every persistent
        // peer must come back (within the longest backoff and then some).
        for p in banned.drain() {
            server.unban(&p).await.expect("no store");
        }
        mock.set_fallback(Behavior::Succeed);
        for (i, key) in keys.iter().enumerate() {
            for j in 0..3 {
                mock.set(NodeAddr::new(*key, addr_of(i, j)), Behavior::Succeed);
            }
        }
        let calm_start = clock.elapsed();
        let all_back = |server: &SimServer| {
            server
                .status()
                .iter()
                .all(|p| p.persistent.is_none() || p.connection.is_some())
        };
        while !all_back(&server) && clock.elapsed() - calm_start < Duration::from_secs(3 * 3600) {
            clock.advance(Duration::from_secs(60)).await;
        }
        let status = server.status();
        let persistent = status.iter().filter(|p| p.persistent.is_some()).count();
        let lost: Vec<_> = status
            .iter()
            .filter(|p| p.persistent.is_some() && p.connection.is_none())
            .map(|p| (p.pubkey, p.worker.as_ref().map(|w| w.state)))
            .collect();
        assert!(
            lost.is_empty(),
            "persistent peers never reconnected: {lost:?}"
        );
        let calm = clock.elapsed() - calm_start;
        check(&server, &book, &stopped, &mut checks);

        // Shutdown: nothing outlives it, nothing dials after it.
        server.shutdown().await;
        assert_eq!(server.tasks(), 0);
        settle().await;
        assert_eq!(mock.in_flight(), 0);
        assert_eq!(mock.open_conns(), 0, "every connection was dropped");
        let dials = book.seq();
        clock.advance(Duration::from_secs(3600)).await;
        assert_eq!(book.seq(), dials, "a dial after shutdown");
        assert_eq!(book.state.lock().expect("book").total, 0);
        let st = book.state.lock().expect("book");
        format!(
            "{} peers, {:?} simulated in {steps} steps: {actions} random actions, {dials} dials \
             ({} connections made), {checks} invariant checks; max {} dials per peer, max {} \
             at once; {persistent} persistent peers all back {calm:?} after the calm",
            sim.peers,
            sim.duration,
            mock.conns_made(),
            st.max_per_peer,
            st.max_total,
        )
    });
    eprintln!("soak simulation: {report}; took {:?}", started.elapsed());
}

#[test]
fn soak_simulation_flapping_peers_hold_every_invariant() {
    let sim = if long() {
        Sim {
            peers: 10_000,
            duration: Duration::from_secs(24 * 3600),
            flap_every: Duration::from_secs(3600),
            check_every: 20,
        }
    } else {
        Sim {
            peers: 1_000,
            duration: Duration::from_secs(3600),
            flap_every: Duration::from_secs(600),
            check_every: 1,
        }
    };
    peers::serial_with(|| simulate(&sim));
}

// --- Real sockets. ---

/// A peer's side of a connection: held until the other end closes, the
/// test stops, or (while `flapping`) a random time has passed.
async fn hold(
    conn: Connection<TcpStream>,
    mut flapping: watch::Receiver<bool>,
    stop: CancellationToken,
    hold_ms: u64,
) {
    let mut framed = conn.into_framed();
    let until = tokio::time::Instant::now() + Duration::from_millis(hold_ms);
    loop {
        let flap = *flapping.borrow_and_update();
        tokio::select! {
            () = stop.cancelled() => return,
            msg = framed.next() => if !matches!(msg, Some(Ok(_))) { return },
            // This connection's random life, while the peers flap.
            () = tokio::time::sleep_until(until), if flap => return,
            changed = flapping.changed() => if changed.is_err() { return },
        }
    }
}

#[test]
fn soak_real_sockets_200_flapping_peers_all_come_back() {
    // Random operations, bounded in count; each round's own work (a
    // handshake, a disconnect and reconnect) is its pace.
    let flap_rounds: u64 = if long() { 6_000 } else { 600 };
    peers::serial(async move {
        let fds_before = peers::open_fds();
        let hub_keys = NodeKeyPair::new(secret(1));
        let mut config = Config::default();
        let policy = Policy::new(Duration::from_millis(20), Duration::from_millis(200))
            .expect("valid policy");
        config.worker = config
            .worker
            .with_policy(policy)
            .with_seed(0x50a4)
            .with_max_dials_in_flight(NonZeroUsize::new(32).expect("non-zero"));
        let dial = DialConfig::default()
            .with_act_timeout(Duration::from_secs(2))
            .with_connect_timeout(Duration::from_secs(2));
        let hub = Server::new(
            hub_keys.public_key(),
            config,
            BrontideDialer::new(hub_keys.clone(), dial),
            TokioClock,
            Reader::HOLD,
        );
        // Waits re-check on each event; lagging behind while the peers
        // flap is fine.
        let mut events = hub.events();
        let listener_config = ListenerConfig::default()
            .with_act_timeout(Duration::from_secs(2))
            .with_filter(hub.accept_filter());
        let hub_addr = hub.serve(
            Listener::bind("127.0.0.1:0", hub_keys.clone(), listener_config)
                .await
                .expect("bind"),
        );

        // 200 peers, each a listener whose connections flap.
        // Calm at first, until every peer is connected once.
        let (flap, flapping) = watch::channel(false);
        let stop = CancellationToken::new();
        let mut peers = Vec::new();
        let mut peer_tasks = tokio::task::JoinSet::new();
        for i in 0..200u32 {
            let keys = NodeKeyPair::new(secret(100 + i));
            let mut listener =
                Listener::bind("127.0.0.1:0", keys.clone(), ListenerConfig::default())
                    .await
                    .expect("bind");
            let addr = listener.local_addr();
            let (flapping, stop) = (flapping.clone(), stop.clone());
            peer_tasks.spawn(async move {
                let mut held = tokio::task::JoinSet::new();
                let mut rng = Rng(SplitMix64::new(u64::from(i) * 7919));
                loop {
                    let accepted = tokio::select! {
                        () = stop.cancelled() => break,
                        a = listener.accept() => a,
                    };
                    let Some(accepted) = accepted else { break };
                    let ms = 20 + rng.below(400);
                    held.spawn(hold(
                        accepted.connection,
                        flapping.clone(),
                        stop.clone(),
                        ms,
                    ));
                }
                listener.shutdown().await;
                while held.join_next().await.is_some() {}
            });
            peers.push((keys, addr));
        }
        for (keys, addr) in &peers {
            hub.connect(NodeAddr::new(keys.public_key(), *addr), true)
                .await
                .expect("perm connect");
        }
        let all_connected = |hub: &Server<BrontideDialer, TokioClock, Reader>| {
            peers.iter().all(|(k, _)| hub.is_connected(&k.public_key()))
        };
        until_event(&mut events, "all connected at first", || {
            all_connected(&hub)
        })
        .await;
        settle_on("a handler per peer at first", || {
            hub.tasks() == 2 + 2 * peers.len()
        })
        .await;
        let tasks_start = hub.tasks();
        let fds_start = peers::open_fds();

        // Flap: peers drop connections at random, dial in to the hub at
        // random (the duplicate rule sorts it out), and the hub disconnects
        // and reconnects peers at random.
        let connections = Arc::new(AtomicU64::new(0));
        let counter = {
            let mut events = hub.events();
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(server::ServerEvent::Connected { .. }) => {
                            connections.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    }
                }
            })
        };
        flap.send_replace(true);
        let mut rng = Rng(SplitMix64::new(0x50a4));
        let mut inbound = tokio::task::JoinSet::new();
        let started = Instant::now();
        let mut max_dials = 0;
        let mut rounds = 0u64;
        while rounds < flap_rounds {
            rounds += 1;
            let (keys, addr) = &peers[rng.below(200) as usize];
            match rng.below(4) {
                0 => {
                    // The dial in to the hub is awaited here (it paces the
                    // round); the connection then lives on its own.
                    let ms = 20 + rng.below(400);
                    let dialed = brontide::dial(
                        hub_addr,
                        keys,
                        &hub_keys.public_key(),
                        &DialConfig::default(),
                        &CancellationToken::new(),
                    )
                    .await;
                    if let Ok(conn) = dialed {
                        inbound.spawn(hold(conn, flapping.clone(), stop.clone(), ms));
                    }
                }
                1 => {
                    let _ = hub.disconnect(&keys.public_key()).await;
                    hub.connect(NodeAddr::new(keys.public_key(), *addr), true)
                        .await
                        .expect("perm connect");
                }
                _ => tokio::task::yield_now().await,
            }
            max_dials = max_dials.max(hub.dials_in_flight());
            for p in hub.status() {
                if let Some(w) = &p.worker {
                    assert!(w.in_flight <= 1, "{} dials for one peer", w.in_flight);
                }
            }
        }
        let flapped = started.elapsed();
        assert!(max_dials <= 32);
        flap.send_replace(false);
        let calm = Instant::now();
        until_event(&mut events, "all connected again", || all_connected(&hub)).await;
        // Duplicates the flapping left parked are dropped at the end of
        // their grace: no event says so.
        settle_on("tasks and fds back where they started", || {
            all_connected(&hub) && hub.tasks() == tasks_start && peers::open_fds() == fds_start
        })
        .await;
        eprintln!(
            "real-socket soak: 200 peers flapped for {:?} ({rounds} rounds, {} connections \
             established, max {max_dials} dials in flight); all connected, {tasks_start} tasks and \
             {fds_start} fds again {:?} after the calm",
            flapped,
            connections.load(Ordering::Relaxed),
            calm.elapsed()
        );

        let shutdown = Instant::now();
        hub.shutdown().await;
        eprintln!(
            "real-socket soak: hub shutdown took {:?}",
            shutdown.elapsed()
        );
        assert_eq!(hub.tasks(), 0);
        counter.abort();
        let _ = counter.await;
        stop.cancel();
        while peer_tasks.join_next().await.is_some() {}
        while inbound.join_next().await.is_some() {}
        drop((hub, peers, connections));
        let now = peers::fds_back_to(fds_before).await;
        assert_eq!(now, fds_before, "open file descriptors");
    });
}
