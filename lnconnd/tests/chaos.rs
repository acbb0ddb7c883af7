//! Issue 19, item 2: the chaos soak. A whole node (`server::Server`, the
//! real brontide dialer, BOLT 1 liveness) keeps 50 peers on 127.0.0.1
//! connected through testkit's fault-injecting proxies (one per peer)
//! while, round after round, a third of the paths get a random fault:
//! latency, a stall, a black hole, a reset, a half-close either way, the
//! peer restarting at a new port, or the peer moving to a new address
//! (announced). Each peer is a node too, running lnconnd's own session
//! (`src/peer.rs`: init, liveness, echo of custom messages). The hub's
//! application uses the `liveness` crate directly and sends
//! sequence-numbered messages that each peer echoes back.
//!
//! Invariants:
//! - each fault takes effect: the hub's connection over a faulty path
//!   ends, and over a black hole or a stall with liveness's typed reason
//!   (`no reply to a ping within …`);
//! - after each round's faults end, every persistent peer is connected
//!   again with exactly one connection on both ends (one session in the
//!   hub, the peer's registry connected, one relayed TCP connection in its
//!   proxy) and carries new traffic; the time this takes is measured
//!   against backoff + stagger + liveness bound (reported, not asserted:
//!   a busy machine may stretch any time);
//! - no dial of a peer after it was stopped (`disconnect`), none of its
//!   proxy's accepts either, and no accept anywhere after the hub's
//!   shutdown;
//! - every echo arrives unaltered and in order, and the hub never runs
//!   two sessions with one peer at once (checked throughout);
//! - at the end, after shutdown: no task (the servers' and the runtime's),
//!   file descriptors and heap back where they started.
//!
//! Seconds by default (3 rounds); `SOAK=long` runs rounds for 3 minutes.
//! Figures are printed (`-- --nocapture`) and recorded in RELIABILITY.md.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../src/output.rs"]
mod output;
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../src/peer.rs"]
mod peer;
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../src/wire.rs"]
mod wire;

#[path = "../../brontide/tests/support/hostile_peers.rs"]
mod hostile;
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use backoff::SplitMix64;
use brontide::{Connection, DialConfig, MessageDecoder, MessageEncoder, NodeKeyPair, PublicKey};
use conn_worker::TokioClock;
use futures::StreamExt;
use liveness::{Action, Liveness};
use peer::SessionOpts;
use server::{
    BrontideDialer, Config, Direction, DisconnectReason, NetAddress, NodeAddr, PeerHandler, Server,
    ServerEvent,
};
use support::*;
use testkit::faults::{FaultProxy, Mode, Side};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::MissedTickBehavior;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

const PEERS: u32 = 50;
const ROUNDS: usize = 3;
const LONG: Duration = Duration::from_secs(180);
const PING_INTERVAL: Duration = Duration::from_millis(300);
const PONG_TIMEOUT: Duration = Duration::from_millis(600);
const TRAFFIC_EVERY: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
const STAGGER: Duration = Duration::from_millis(100);
const ACT_TIMEOUT: Duration = Duration::from_secs(1);
/// The hub's custom message type: odd (a peer that does not echo ignores
/// it) and in the custom range (lnconnd's session echoes it).
const SEQ_TYPE: u16 = 32769;

fn live() -> liveness::Config {
    liveness::Config::new(PING_INTERVAL, PONG_TIMEOUT).expect("non-zero")
}

fn dial_config() -> DialConfig {
    DialConfig::default()
        .with_connect_timeout(ACT_TIMEOUT)
        .with_act_timeout(ACT_TIMEOUT)
}

fn config(seed: u64) -> Config {
    let mut c = Config::default();
    let policy = backoff::Policy::new(BACKOFF_MIN, BACKOFF_MAX).expect("a valid policy");
    c.worker = c
        .worker
        .with_policy(policy)
        .with_stagger(STAGGER)
        .with_max_dials_in_flight(NonZeroUsize::new(32).expect("non-zero"))
        .with_seed(seed);
    c
}

/// The longest a persistent peer should take to be connected again after
/// a fault ends: its dead connection found (liveness), a dial already in
/// the dead path given up (act timeout), the longest backoff, the
/// stagger to its next address, and the handshake (another act timeout).
fn recovery_bound() -> Duration {
    live().detection_bound() + ACT_TIMEOUT + BACKOFF_MAX + STAGGER + ACT_TIMEOUT
}

/// The message number `seq` of the hub's connection `tag`: its number,
/// and 16 bytes derived from both (an altered message cannot pass).
fn seq_message(tag: u64, seq: u64) -> Vec<u8> {
    let mut check = SplitMix64::new(tag ^ seq.rotate_left(32));
    let mut m = SEQ_TYPE.to_be_bytes().to_vec();
    m.extend_from_slice(&tag.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&check.next_u64().to_be_bytes());
    m.extend_from_slice(&check.next_u64().to_be_bytes());
    m
}

/// What the hub's application saw.
#[derive(Default)]
struct Book {
    state: Mutex<BookState>,
}

#[derive(Default)]
struct BookState {
    /// Sessions running now, per peer.
    sessions: HashMap<PublicKey, usize>,
    /// Sessions ended, per peer, with the last one's reason and end.
    ended: HashMap<PublicKey, (u64, Option<(DisconnectReason, Instant)>)>,
    /// Echoes received in order, per peer.
    echoed: HashMap<PublicKey, u64>,
    /// Echoes that came back altered or out of order, two sessions at once.
    violations: Vec<String>,
}

impl Book {
    fn lock(&self) -> MutexGuard<'_, BookState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BookState {
    fn sessions(&self, p: &PublicKey) -> usize {
        self.sessions.get(p).copied().unwrap_or(0)
    }
    fn ended(&self, p: &PublicKey) -> u64 {
        self.ended.get(p).map_or(0, |e| e.0)
    }
    fn echoed(&self, p: &PublicKey) -> u64 {
        self.echoed.get(p).copied().unwrap_or(0)
    }
}

/// Counts a session as running until it ends, however it ends.
struct Running<'a> {
    book: &'a Book,
    peer: PublicKey,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.book.lock().sessions.get_mut(&self.peer) {
            *n -= 1;
        }
    }
}

static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

/// The hub's application: BOLT 1 through the `liveness` crate (as a node
/// implementer would use it, without lnconnd's session), plus a
/// sequence-numbered message every [`TRAFFIC_EVERY`], each checked when
/// its echo comes back.
struct Traffic {
    book: Arc<Book>,
}

impl PeerHandler<Connection<TcpStream>> for Traffic {
    async fn run(
        &self,
        peer: PublicKey,
        conn: Connection<TcpStream>,
        _: Direction,
        cancel: CancellationToken,
    ) -> DisconnectReason {
        {
            // The hub never runs two sessions with a peer at once: a
            // redial waits for the old session's end.
            let mut book = self.book.lock();
            let n = book.sessions.entry(peer).or_default();
            *n += 1;
            if *n > 1 {
                let v = format!("{peer}: {n} sessions at once");
                book.violations.push(v);
            }
        }
        let running = Running {
            book: &self.book,
            peer,
        };
        let reason = self.session(peer, conn, cancel).await;
        let mut book = self.book.lock();
        let ended = book.ended.entry(peer).or_default();
        ended.0 += 1;
        ended.1 = Some((reason.clone(), Instant::now()));
        drop(book);
        drop(running);
        reason
    }
}

impl Traffic {
    async fn session(
        &self,
        peer: PublicKey,
        conn: Connection<TcpStream>,
        cancel: CancellationToken,
    ) -> DisconnectReason {
        let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        let (stream, encryptor, decryptor) = conn.into_parts();
        let (read, write) = stream.into_split();
        let mut rx = FramedRead::new(read, MessageDecoder::new(decryptor));
        let mut tx = FramedWrite::new(write, MessageEncoder::new(encryptor));
        let mut live = Liveness::new(live(), liveness::now());
        if let Err(reason) = peer::send(&mut tx, wire::init(), &mut live, &cancel).await {
            return reason;
        }
        let mut tick = tokio::time::interval(TRAFFIC_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let (mut sent, mut echoed, mut got_init) = (0u64, 0u64, false);
        loop {
            let msg = tokio::select! {
                () = cancel.cancelled() => return DisconnectReason::Cancelled,
                action = liveness::next_action(&mut live) => {
                    let ping = match action {
                        Action::SendPing(ping) => ping.encode(),
                        Action::Disconnect(e) => return peer::dead(e),
                    };
                    if let Err(reason) = peer::send(&mut tx, ping, &mut live, &cancel).await {
                        return reason;
                    }
                    continue;
                }
                _ = tick.tick(), if got_init => {
                    let msg = seq_message(tag, sent);
                    if let Err(reason) = peer::send(&mut tx, msg, &mut live, &cancel).await {
                        return reason;
                    }
                    sent += 1;
                    continue;
                }
                msg = rx.next() => msg,
            };
            let bytes = match msg {
                None => return DisconnectReason::Remote("closed by peer".into()),
                Some(Err(e)) => return DisconnectReason::Remote(e.to_string()),
                Some(Ok(bytes)) => bytes,
            };
            let now = liveness::now();
            live.on_message_received(now);
            let reply = match wire::Message::parse(&bytes) {
                Err(e) => return DisconnectReason::Local(format!("malformed message: {e}")),
                Ok(wire::Message::Init { .. }) => {
                    got_init = true;
                    None
                }
                Ok(wire::Message::Ping(ping)) => live.on_ping(now, &ping).map(|p| p.encode()),
                Ok(wire::Message::Pong(pong)) => {
                    live.on_pong(now, pong.len());
                    None
                }
                Ok(wire::Message::Other { kind: SEQ_TYPE, .. }) => {
                    let mut book = self.book.lock();
                    if bytes[..] != seq_message(tag, echoed)[..] {
                        let v = format!(
                            "{peer}: connection {tag}: echo {echoed} altered or out of order"
                        );
                        book.violations.push(v);
                    }
                    echoed += 1;
                    *book.echoed.entry(peer).or_default() += 1;
                    None
                }
                Ok(_) => None,
            };
            if let Some(reply) = reply {
                if let Err(reason) = peer::send(&mut tx, reply, &mut live, &cancel).await {
                    return reason;
                }
            }
        }
    }
}

type Hub = Server<BrontideDialer, TokioClock, Traffic>;

/// A peer: a node serving lnconnd's session behind its own proxy.
struct Peer {
    key: NodeKeyPair,
    /// `None` while it is down (restarting).
    node: Option<Node>,
    proxy: FaultProxy,
    /// Stopped by the hub (`disconnect`): no longer persistent, and its
    /// proxy's accept count then.
    stopped: Option<u64>,
}

async fn start_peer_node(key: &NodeKeyPair, seed: u64) -> (Node, SocketAddr) {
    let opts = SessionOpts {
        echo: true,
        liveness: live(),
        ..SessionOpts::default()
    };
    let node = node(key, config(seed), dial_config(), opts);
    let addr = serve(&node, key).await;
    (node, addr)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Latency,
    Stall,
    BlackHole,
    Reset,
    HalfCloseToPeer,
    HalfCloseToHub,
    Restart,
    Move,
}

const FAULTS: [Fault; 8] = [
    Fault::Latency,
    Fault::Stall,
    Fault::BlackHole,
    Fault::Reset,
    Fault::HalfCloseToPeer,
    Fault::HalfCloseToHub,
    Fault::Restart,
    Fault::Move,
];

fn below(rng: &mut SplitMix64, n: u64) -> u64 {
    rng.next_u64() % n
}

/// What the hub's events said.
#[derive(Default)]
struct Seen {
    dials: u64,
    connections: u64,
    dials_after_stop: Vec<String>,
    lagged: bool,
}

/// Waits until `check` passes (it names what is still missing), polling
/// every 10 ms: the outcome never depends on the pace, only a hung test
/// fails (after [`HANG_GUARD`]).
async fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        match check() {
            Ok(()) => return,
            Err(missing) => assert!(
                tokio::time::Instant::now() < deadline,
                "hung: never {what}: {missing}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every persistent peer connected once on both ends and carrying new
/// traffic (more echoes than `since`); every stopped peer with none.
fn healthy(
    hub: &Hub,
    peers: &[Peer],
    book: &Book,
    since: &HashMap<PublicKey, u64>,
) -> Result<(), String> {
    let hub_key = hub.local_pubkey();
    let book = book.lock();
    for p in peers {
        let pk = p.key.public_key();
        let open = p.proxy.stats().open;
        let sessions = book.sessions(&pk);
        if p.stopped.is_some() {
            if hub.is_connected(&pk) || sessions != 0 || open != 0 {
                return Err(format!("stopped {pk}: {sessions} sessions, {open} relayed"));
            }
            continue;
        }
        let theirs = p.node.as_ref().is_some_and(|n| n.is_connected(&hub_key));
        let fresh = book.echoed(&pk) > since.get(&pk).copied().unwrap_or(0);
        if !(hub.is_connected(&pk) && sessions == 1 && open == 1 && theirs && fresh) {
            return Err(format!(
                "{pk}: hub connected {}, {sessions} sessions, {open} relayed, peer connected {theirs}, new echoes {fresh}",
                hub.is_connected(&pk)
            ));
        }
    }
    Ok(())
}

fn echoes(book: &Book) -> HashMap<PublicKey, u64> {
    book.lock().echoed.clone()
}

#[test]
fn chaos_soak_50_peers_through_faulty_paths_hold_every_invariant() {
    hostile::serial(soak());
}

async fn soak() {
    let long = std::env::var("SOAK").is_ok_and(|v| v == "long");
    let started = Instant::now();
    let fds_start = hostile::open_fds();
    let tasks_start = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut rng = SplitMix64::new(0x19_c4a05);
    let book = Arc::new(Book::default());
    let hub_key = keys(1);
    let hub: Hub = Server::new(
        hub_key.public_key(),
        config(1),
        BrontideDialer::new(hub_key.clone(), dial_config()),
        TokioClock,
        Traffic {
            book: Arc::clone(&book),
        },
    );
    let stopped_keys: Arc<Mutex<HashSet<PublicKey>>> = Arc::default();
    let seen = {
        let mut events = hub.events();
        let stopped = Arc::clone(&stopped_keys);
        tokio::spawn(async move {
            let mut seen = Seen::default();
            loop {
                match events.recv().await {
                    Ok(ServerEvent::DialStarted { peer, addr }) => {
                        seen.dials += 1;
                        if stopped
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .contains(&peer)
                        {
                            seen.dials_after_stop.push(format!("{peer} at {addr}"));
                        }
                    }
                    Ok(ServerEvent::Connected { .. }) => seen.connections += 1,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => seen.lagged = true,
                    Err(RecvError::Closed) => return seen,
                }
            }
        })
    };

    let mut peers = Vec::new();
    for i in 0..PEERS {
        let key = keys(100 + i);
        let (node, upstream) = start_peer_node(&key, u64::from(i)).await;
        let proxy = FaultProxy::start(upstream).await.expect("a proxy");
        hub.connect(NodeAddr::new(key.public_key(), proxy.addr()), true)
            .await
            .expect("a perm connect");
        peers.push(Peer {
            key,
            node: Some(node),
            proxy,
            stopped: None,
        });
    }
    eventually("all 50 connected", || {
        healthy(&hub, &peers, &book, &HashMap::new())
    })
    .await;
    let setup = started.elapsed();

    let mut faults: BTreeMap<Fault, u64> = BTreeMap::new();
    let mut detections: Vec<Duration> = Vec::new();
    let mut recoveries: Vec<Duration> = Vec::new();
    let mut round = 0;
    let soak_start = Instant::now();
    loop {
        if (!long && round == ROUNDS) || (long && soak_start.elapsed() >= LONG) {
            break;
        }
        // Stop a peer at a calm point (connected, its worker idle): in
        // the second round, and every tenth in the long mode.
        if round == 1 || (long && round % 10 == 1 && round < 50) {
            let live_peers: Vec<usize> = (0..peers.len())
                .filter(|&i| peers[i].stopped.is_none())
                .collect();
            let i = live_peers[below(&mut rng, live_peers.len() as u64) as usize];
            let pk = peers[i].key.public_key();
            stopped_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pk);
            hub.disconnect(&pk)
                .await
                .expect("connected at a calm point");
            peers[i].stopped = Some(peers[i].proxy.stats().accepted);
        }

        // A third of the live paths get a fault each.
        let mut chosen: Vec<usize> = (0..peers.len())
            .filter(|&i| peers[i].stopped.is_none())
            .collect();
        for k in (1..chosen.len()).rev() {
            chosen.swap(k, below(&mut rng, k as u64 + 1) as usize);
        }
        chosen.truncate(peers.len() / 3);
        let ended_before: HashMap<usize, u64> = {
            let b = book.lock();
            chosen
                .iter()
                .map(|&i| (i, b.ended(&peers[i].key.public_key())))
                .collect()
        };
        let echoed_before = echoes(&book);
        let mut plan = Vec::new();
        for &i in &chosen {
            let fault = FAULTS[below(&mut rng, FAULTS.len() as u64) as usize];
            *faults.entry(fault).or_default() += 1;
            let p = &mut peers[i];
            match fault {
                Fault::Latency => {
                    let d = Duration::from_millis(1 + below(&mut rng, 80));
                    p.proxy.set_mode(Mode::Latency(d));
                }
                Fault::Stall => p.proxy.set_mode(Mode::Stall),
                Fault::BlackHole => p.proxy.set_mode(Mode::BlackHole),
                Fault::Reset => p.proxy.reset(),
                Fault::HalfCloseToPeer => p.proxy.half_close(Side::Upstream),
                Fault::HalfCloseToHub => p.proxy.half_close(Side::Client),
                Fault::Restart => {
                    if let Some(node) = p.node.take() {
                        node.shutdown().await;
                        assert_eq!(node.tasks(), 0);
                    }
                }
                Fault::Move => {
                    // The old address goes away (its connections with it);
                    // the peer is announced at a new one.
                    let upstream = p.proxy.upstream();
                    p.proxy = FaultProxy::start(upstream).await.expect("a proxy");
                    let at: NetAddress = p.proxy.addr().into();
                    hub.node_announcement(p.key.public_key(), vec![at]);
                }
            }
            plan.push((i, fault, Instant::now()));
        }

        // Each fault takes effect: the hub's connection over the path
        // ends (a black hole or a stall found by liveness), or, over a
        // slow path, traffic still flows.
        for &(i, fault, applied) in &plan {
            let pk = peers[i].key.public_key();
            let before = ended_before[&i];
            if fault == Fault::Latency {
                let echoed = echoed_before.get(&pk).copied().unwrap_or(0);
                eventually("traffic over a slow path", || {
                    let now = book.lock().echoed(&pk);
                    (now >= echoed + 3)
                        .then_some(())
                        .ok_or(format!("{pk}: {now} echoes"))
                })
                .await;
                continue;
            }
            eventually("the faulty connection ending", || {
                let n = book.lock().ended(&pk);
                (n > before)
                    .then_some(())
                    .ok_or(format!("{pk} ({fault:?}): {n} ended"))
            })
            .await;
            let (reason, at) = book.lock().ended[&pk].1.clone().expect("it ended");
            // (A connection that ended before its fault was applied, for
            // its own reasons, says nothing about the fault.)
            if matches!(fault, Fault::BlackHole | Fault::Stall) && at >= applied {
                detections.push(at - applied);
                let timed_out = liveness::Error::PongTimeout {
                    timeout: PONG_TIMEOUT,
                };
                assert_eq!(reason, peer::dead(timed_out), "{pk}: {fault:?}");
            }
        }
        // A little longer, so redials meet the fault too.
        tokio::time::sleep(Duration::from_millis(below(&mut rng, 300))).await;

        // The faults end.
        for &(i, fault, _) in &plan {
            let p = &mut peers[i];
            match fault {
                Fault::Restart => {
                    let (node, upstream) = start_peer_node(&p.key, round as u64).await;
                    p.node = Some(node);
                    p.proxy.set_upstream(upstream);
                }
                _ => p.proxy.heal(),
            }
        }
        let healed = Instant::now();
        let since = echoes(&book);
        eventually("every persistent peer back", || {
            healthy(&hub, &peers, &book, &since)
        })
        .await;
        recoveries.push(healed.elapsed());
        round += 1;
    }

    // Invariants over the whole run.
    let violations = book.lock().violations.clone();
    assert!(violations.is_empty(), "{violations:?}");
    for p in &peers {
        if let Some(accepted) = p.stopped {
            assert_eq!(
                p.proxy.stats().accepted,
                accepted,
                "a stopped peer's path was dialed"
            );
        }
    }
    let echoed: u64 = book.lock().echoed.values().sum();
    let soaked = soak_start.elapsed();

    // Shutdown: nothing left.
    let t = Instant::now();
    hub.shutdown().await;
    let shutdown = t.elapsed();
    assert_eq!(hub.tasks(), 0);
    assert_eq!(hub.dials_in_flight(), 0);
    let accepted = |peers: &[Peer]| -> u64 { peers.iter().map(|p| p.proxy.stats().accepted).sum() };
    let accepted_at_stop = accepted(&peers);
    for p in &peers {
        if let Some(node) = &p.node {
            node.shutdown().await;
            assert_eq!(node.tasks(), 0);
        }
    }
    assert_eq!(
        accepted(&peers),
        accepted_at_stop,
        "a dial after the hub's shutdown"
    );
    drop(peers);
    drop(hub);
    let seen = tokio::time::timeout(HANG_GUARD, seen)
        .await
        .expect("the event reader ends with the hub")
        .expect("the event reader did not panic");
    assert!(
        !seen.lagged,
        "hub events were lost: the checks on them are void"
    );
    assert!(
        seen.dials_after_stop.is_empty(),
        "dials after stop: {:?}",
        seen.dials_after_stop
    );
    eventually("every task gone", || {
        let n = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        (n == tasks_start)
            .then_some(())
            .ok_or(format!("{n} tasks alive, {tasks_start} at the start"))
    })
    .await;
    let fds = hostile::fds_back_to(fds_start).await;
    assert_eq!(fds, fds_start, "file descriptors back to the start");

    let ms = |d: Duration| format!("{} ms", d.as_millis());
    let max = |v: &[Duration]| ms(v.iter().max().copied().unwrap_or_default());
    let mean = |v: &[Duration]| {
        ms(v.iter().sum::<Duration>() / u32::try_from(v.len().max(1)).unwrap_or(u32::MAX))
    };
    println!(
        "chaos soak ({}): {PEERS} peers, setup {setup:.1?}, {round} rounds in {soaked:.1?}",
        if long { "long" } else { "default" }
    );
    println!("  faults: {faults:?}");
    println!(
        "  dead path found (black hole, stall; liveness bound {:?}): {} times, mean {}, max {}",
        live().detection_bound(),
        detections.len(),
        mean(&detections),
        max(&detections)
    );
    println!(
        "  all back after the faults end (bound {:?}): mean {}, max {}, over the bound {} of {round}",
        recovery_bound(),
        mean(&recoveries),
        max(&recoveries),
        recoveries.iter().filter(|&&r| r > recovery_bound()).count()
    );
    println!(
        "  hub: {} dials, {} connections, {echoed} echoes checked in order, shutdown {shutdown:.1?}; fds back to {fds_start}",
        seen.dials, seen.connections
    );
}
