//! `lnconnd demo`: the whole stack on 127.0.0.1, under churn.
//!
//! N in-process responder nodes (brontide listeners with keys of their own)
//! and our node, a server with perm connections to all of them. For the
//! given duration the responders are stopped and restarted, moved to new
//! ports (announced late, so stale addresses get dialed), and some dial us
//! while we dial them. Then the churn stops and the invariants are checked:
//! every peer connected at the end, exactly one connection per peer on both
//! ends, no dial after stop, and every backoff wait within the policy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backoff::SplitMix64;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use brontide::{DialConfig, Listener, ListenerConfig, NodeKeyPair};
use conn_worker::{Policy, State};
use serde_json::{json, Value};
use server::{Config, Direction, NetAddress, NodeAddr, ServerEvent};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::DemoArgs;
use crate::keys;
use crate::node::{node, Interrupt, Node};
use crate::output::Output;
use crate::peer::{run_session, SessionOpts};
use crate::Failure;

/// The demo's backoff: short, so a 20 s run shows many cycles.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
const STAGGER: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ACT_TIMEOUT: Duration = Duration::from_secs(2);
/// One churn action every so often.
const CHURN_TICK: Duration = Duration::from_millis(400);

/// The demo's seeded choices.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

/// An in-process Lightning node that only answers: a brontide listener and
/// the BOLT 1 basics on each connection.
struct Responder {
    key: NodeKeyPair,
    state: Mutex<ResponderState>,
    /// Connections it holds now, and the most it ever held at once.
    live: AtomicUsize,
    max_live: AtomicUsize,
    /// Handshakes completed on its listener (inbound from us).
    accepted: AtomicU64,
    tracker: TaskTracker,
}

struct ResponderState {
    addr: Option<SocketAddr>,
    /// Stops the listener and every connection; `None` while stopped.
    running: Option<CancellationToken>,
    /// A churn action is under way (restart or announcement pending).
    busy: bool,
}

impl Responder {
    fn new(key: NodeKeyPair, tracker: TaskTracker) -> Arc<Self> {
        Arc::new(Responder {
            key,
            state: Mutex::new(ResponderState {
                addr: None,
                running: None,
                busy: false,
            }),
            live: AtomicUsize::new(0),
            max_live: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            tracker,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ResponderState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn addr(&self) -> Option<SocketAddr> {
        self.lock().addr
    }

    fn is_running(&self) -> bool {
        self.lock().running.is_some()
    }

    /// Starts listening on 127.0.0.1:`port` (0: any port). Returns the address.
    async fn start(self: &Arc<Self>, port: u16) -> std::io::Result<SocketAddr> {
        let mut listener = Listener::bind(
            ("127.0.0.1", port),
            self.key.clone(),
            ListenerConfig::default().with_act_timeout(ACT_TIMEOUT),
        )
        .await?;
        let addr = listener.local_addr();
        let token = CancellationToken::new();
        {
            let mut st = self.lock();
            if let Some(old) = st.running.replace(token.clone()) {
                old.cancel();
            }
            st.addr = Some(addr);
        }
        let me = Arc::clone(self);
        self.tracker.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = token.cancelled() => None,
                };
                let Some(a) = accepted else { break };
                me.accepted.fetch_add(1, Ordering::Relaxed);
                me.hold(a.connection, Direction::Inbound, token.child_token());
            }
            listener.shutdown().await;
        });
        Ok(addr)
    }

    /// Stops listening and closes every connection.
    fn stop(&self) {
        if let Some(token) = self.lock().running.take() {
            token.cancel();
        }
    }

    /// Dials our node, as a peer that reconnects to us would.
    fn dial(self: &Arc<Self>, ours: SocketAddr, our_key: PublicKey) {
        let Some(token) = self.lock().running.clone() else {
            return;
        };
        let me = Arc::clone(self);
        self.tracker.spawn(async move {
            let config = DialConfig::default()
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_act_timeout(ACT_TIMEOUT);
            if let Ok(conn) = brontide::dial(ours, &me.key, &our_key, &config, &token).await {
                me.hold(conn, Direction::Outbound, token.child_token());
            }
        });
    }

    /// Runs a connection with the BOLT 1 basics until it closes or `cancel`.
    fn hold(
        self: &Arc<Self>,
        conn: brontide::Connection<tokio::net::TcpStream>,
        direction: Direction,
        cancel: CancellationToken,
    ) {
        let me = Arc::clone(self);
        self.tracker.spawn(async move {
            let now = me.live.fetch_add(1, Ordering::SeqCst) + 1;
            me.max_live.fetch_max(now, Ordering::SeqCst);
            let peer = conn.remote_pubkey();
            run_session(peer, conn, direction, cancel, &SessionOpts::default(), None).await;
            me.live.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// What the demo saw of one peer, from the server's events.
#[derive(Default, Clone)]
struct PeerStats {
    connects: u64,
    failed_dials: u64,
    /// Every backoff wait a worker announced.
    waits: Vec<Duration>,
}

#[derive(Default)]
struct Stats {
    peers: HashMap<PublicKey, PeerStats>,
    reconnects: u64,
    duplicates: u64,
}

/// Collects the server's events into `stats` until the server shuts down.
fn collect(node: &Node, stats: Arc<Mutex<Stats>>) {
    let mut events = node.events();
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            match event {
                ServerEvent::Connected { peer, .. } => {
                    let p = s.peers.entry(peer).or_default();
                    p.connects += 1;
                    if p.connects > 1 {
                        s.reconnects += 1;
                    }
                }
                ServerEvent::DialFailed { peer, .. } => {
                    s.peers.entry(peer).or_default().failed_dials += 1;
                }
                ServerEvent::Waiting { peer, wait, .. } => {
                    s.peers.entry(peer).or_default().waits.push(wait);
                }
                ServerEvent::DuplicateResolved { .. } => s.duplicates += 1,
                _ => {}
            }
        }
    });
}

/// A node key for responder `i` of a run with `seed`.
fn responder_key(seed: u64, i: usize) -> NodeKeyPair {
    let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    loop {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        if let Ok(sk) = SecretKey::from_slice(&bytes) {
            return NodeKeyPair::new(sk);
        }
    }
}

pub(crate) async fn run(
    args: DemoArgs,
    out: Arc<Output>,
    interrupt: &mut Interrupt,
) -> Result<ExitCode, Failure> {
    let seed = args.seed.unwrap_or_else(keys::random_u64);
    let n = usize::from(args.peers);
    let policy = Policy::new(MIN_BACKOFF, MAX_BACKOFF)
        .map_err(|e| Failure::Runtime(format!("demo policy: {e}")))?;
    let mut config = Config::default();
    config.worker = config
        .worker
        .with_policy(policy)
        .with_stagger(STAGGER)
        .with_seed(seed);
    config.worker = config
        .worker
        .with_attempt_timeout(CONNECT_TIMEOUT)
        .map_err(|e| Failure::Runtime(format!("demo timeout: {e}")))?;
    let dial = DialConfig::default()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_act_timeout(ACT_TIMEOUT);

    let our_key = responder_key(seed, usize::MAX);
    let node = node(&our_key, config, dial, SessionOpts::default());
    let listener = Listener::bind(
        "127.0.0.1:0",
        our_key.clone(),
        ListenerConfig::default()
            .with_act_timeout(ACT_TIMEOUT)
            .with_filter(node.accept_filter()),
    )
    .await
    .map_err(|e| Failure::Runtime(format!("cannot listen on 127.0.0.1: {e}")))?;
    let our_addr = node.serve(listener);
    let stats = Arc::new(Mutex::new(Stats::default()));
    collect(&node, Arc::clone(&stats));

    let tracker = TaskTracker::new();
    let mut responders = Vec::with_capacity(n);
    for i in 0..n {
        let r = Responder::new(responder_key(seed, i), tracker.clone());
        r.start(0)
            .await
            .map_err(|e| Failure::Runtime(format!("cannot start peer {i}: {e}")))?;
        responders.push(r);
    }
    out.event(
        "started",
        json!({
            "pubkey": our_key.public_key().to_string(),
            "addr": our_addr.to_string(),
            "peers": n,
            "duration_ms": args.duration.as_millis() as u64,
            "seed": seed,
        }),
        || {
            format!(
                "our node {}@{our_addr}; {n} peers on 127.0.0.1, churn for {:?} (seed {seed})",
                our_key.public_key(),
                args.duration
            )
        },
    );
    for r in &responders {
        let addr = r
            .addr()
            .map(NetAddress::from)
            .into_iter()
            .collect::<Vec<_>>();
        node.node_announcement(r.key.public_key(), addr.clone());
        if let Some(a) = addr.into_iter().next() {
            node.connect(NodeAddr::new(r.key.public_key(), a), true)
                .await
                .map_err(|e| Failure::Runtime(format!("perm connect: {e}")))?;
        }
    }

    // Churn until the duration is up or Ctrl-C.
    let stop = CancellationToken::new();
    let churn_tasks = TaskTracker::new();
    let interrupted_early = {
        let churn = churn(
            &node,
            &responders,
            our_addr,
            our_key.public_key(),
            seed,
            &stop,
            &churn_tasks,
        );
        let status = status_loop(&node, &stats, n, &out);
        tokio::select! {
            () = tokio::time::sleep(args.duration) => false,
            () = interrupt.wait() => true,
            () = churn => false,
            () = status => false,
        }
    };
    stop.cancel();
    churn_tasks.close();
    churn_tasks.wait().await;

    // Every peer back up, at its current address.
    for r in &responders {
        if !r.is_running() {
            let port = r.addr().map_or(0, |a| a.port());
            let addr = match r.start(port).await {
                Ok(a) => a,
                Err(_) => r
                    .start(0)
                    .await
                    .map_err(|e| Failure::Runtime(e.to_string()))?,
            };
            node.node_announcement(r.key.public_key(), vec![addr.into()]);
        }
        r.lock().busy = false;
    }
    // Wait for everyone to be connected: at most a full backoff, a stagger
    // and a dial, plus slack for a loaded machine.
    let deadline =
        Instant::now() + MAX_BACKOFF + STAGGER + CONNECT_TIMEOUT * 2 + Duration::from_secs(5);
    let keys: Vec<PublicKey> = responders.iter().map(|r| r.key.public_key()).collect();
    while Instant::now() < deadline && !keys.iter().all(|k| node.is_connected(k)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_connected = keys.iter().all(|k| node.is_connected(k));
    // Duplicates closed by us take a moment to be seen by the other end.
    let one_deadline = Instant::now() + Duration::from_secs(5);
    let one_each = || {
        responders
            .iter()
            .all(|r| r.live.load(Ordering::SeqCst) == 1)
    };
    while Instant::now() < one_deadline && !one_each() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let one_connection_per_peer = all_connected && one_each();

    // Stop: no dial may start after this.
    node.shutdown().await;
    let accepted_at_stop: u64 = responders
        .iter()
        .map(|r| r.accepted.load(Ordering::SeqCst))
        .sum();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted_later: u64 = responders
        .iter()
        .map(|r| r.accepted.load(Ordering::SeqCst))
        .sum();
    let no_dial_after_stop =
        node.dials_in_flight() == 0 && node.tasks() == 0 && accepted_later == accepted_at_stop;

    for r in &responders {
        r.stop();
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;

    let stats = std::mem::take(&mut *stats.lock().unwrap_or_else(|p| p.into_inner()));
    let waits_within_policy = stats
        .peers
        .values()
        .flat_map(|p| &p.waits)
        .all(|w| *w <= MAX_BACKOFF);
    let held =
        all_connected && one_connection_per_peer && no_dial_after_stop && waits_within_policy;

    let mut per_peer = Vec::new();
    for (i, r) in responders.iter().enumerate() {
        let k = r.key.public_key();
        let p = stats.peers.get(&k).cloned().unwrap_or_default();
        let (lo, mid, hi) = spread(&p.waits);
        per_peer.push(json!({
            "peer": k.to_string(),
            "index": i,
            "connects": p.connects,
            "failed_dials": p.failed_dials,
            "waits": p.waits.len(),
            "wait_min_ms": round_ms(lo),
            "wait_median_ms": round_ms(mid),
            "wait_max_ms": round_ms(hi),
            "max_connections_seen": r.max_live.load(Ordering::SeqCst),
        }));
    }
    let invariants = json!({
        "all_connected_at_end": all_connected,
        "one_connection_per_peer": one_connection_per_peer,
        "no_dial_after_stop": no_dial_after_stop,
        "waits_within_policy": waits_within_policy,
    });
    let summary = json!({
        "peers": per_peer,
        "policy": {
            "min_ms": MIN_BACKOFF.as_millis() as u64,
            "max_ms": MAX_BACKOFF.as_millis() as u64,
            "stagger_ms": STAGGER.as_millis() as u64,
        },
        "reconnects": stats.reconnects,
        "duplicates_resolved": stats.duplicates,
        "interrupted": interrupted_early,
        "invariants": invariants,
        "invariants_held": held,
    });
    out.event("summary", summary.clone(), || text_summary(&summary));
    Ok(if held {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Milliseconds, rounded to the nearest (a wait decided a few microseconds
/// before it is reported must not read as a millisecond below the policy).
fn round_ms(d: Duration) -> u64 {
    u64::try_from((d.as_micros() + 500) / 1000).unwrap_or(u64::MAX)
}

/// Min, median and max of some durations (zeros if none).
fn spread(waits: &[Duration]) -> (Duration, Duration, Duration) {
    let mut w = waits.to_vec();
    w.sort_unstable();
    match (w.first(), w.get(w.len() / 2), w.last()) {
        (Some(a), Some(b), Some(c)) => (*a, *b, *c),
        _ => (Duration::ZERO, Duration::ZERO, Duration::ZERO),
    }
}

fn text_summary(s: &Value) -> String {
    let mut t = String::from("\nsummary\n");
    t.push_str(&format!(
        "{:<5} {:<14} {:>8} {:>12} {:>6} {:>24}\n",
        "peer", "key", "connects", "failed dials", "waits", "wait min/median/max ms"
    ));
    for p in s["peers"].as_array().into_iter().flatten() {
        let key = p["peer"].as_str().unwrap_or("");
        t.push_str(&format!(
            "{:<5} {:<14} {:>8} {:>12} {:>6} {:>24}\n",
            p["index"].to_string(),
            format!("{}…", key.get(..12).unwrap_or(key)),
            p["connects"].to_string(),
            p["failed_dials"].to_string(),
            p["waits"].to_string(),
            format!(
                "{}/{}/{}",
                p["wait_min_ms"], p["wait_median_ms"], p["wait_max_ms"]
            ),
        ));
    }
    t.push_str(&format!(
        "policy allows waits of {} to {} ms (stagger {} ms); reconnects {}; duplicates resolved {}\n",
        s["policy"]["min_ms"],
        s["policy"]["max_ms"],
        s["policy"]["stagger_ms"],
        s["reconnects"],
        s["duplicates_resolved"]
    ));
    for (name, ok) in s["invariants"].as_object().into_iter().flatten() {
        let mark = if ok.as_bool() == Some(true) {
            "held"
        } else {
            "FAILED"
        };
        t.push_str(&format!("  {name}: {mark}\n"));
    }
    let held = s["invariants_held"].as_bool() == Some(true);
    t.push_str(if held {
        "all invariants held"
    } else {
        "INVARIANTS FAILED"
    });
    t
}

/// Stops, restarts, moves peers and has some dial us, one action a tick.
async fn churn(
    node: &Node,
    responders: &[Arc<Responder>],
    our_addr: SocketAddr,
    our_key: PublicKey,
    seed: u64,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) {
    let mut rng = Rng::new(seed ^ 0xC4_0C4);
    let mut tick = tokio::time::interval(CHURN_TICK);
    tick.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let r = &responders[rng.below(responders.len() as u64) as usize];
        {
            let mut st = r.lock();
            if st.busy || st.running.is_none() {
                continue;
            }
            st.busy = true;
        }
        let action = rng.below(100);
        let r = Arc::clone(r);
        let node = node.clone();
        let stop = stop.clone();
        let down_for = rng.millis(300, 3000);
        let announce_after = rng.millis(0, 1500);
        match action {
            // Restart at the same address after a while.
            0..=34 => {
                r.stop();
                tasks.spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(down_for) => {}
                        () = stop.cancelled() => {}
                    }
                    let port = r.addr().map_or(0, |a| a.port());
                    if r.start(port).await.is_err() {
                        if let Ok(a) = r.start(0).await {
                            node.node_announcement(r.key.public_key(), vec![a.into()]);
                        }
                    }
                    r.lock().busy = false;
                });
            }
            // Move to a new port; the announcement comes late.
            35..=54 => {
                r.stop();
                tasks.spawn(async move {
                    if let Ok(a) = r.start(0).await {
                        tokio::select! {
                            () = tokio::time::sleep(announce_after) => {}
                            () = stop.cancelled() => {}
                        }
                        node.node_announcement(r.key.public_key(), vec![a.into()]);
                    }
                    r.lock().busy = false;
                });
            }
            // The peer dials us, perhaps while we dial it.
            55..=74 => {
                r.dial(our_addr, our_key);
                r.lock().busy = false;
            }
            _ => r.lock().busy = false,
        }
    }
}

/// Shows the counts of peers by state, in place on a terminal.
async fn status_loop(node: &Node, stats: &Mutex<Stats>, n: usize, out: &Output) {
    let every = if out.is_live() {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let (mut connected, mut dialing, mut waiting, mut idle, mut awaiting) = (0, 0, 0, 0, 0);
        for s in node.status() {
            if s.connection.is_some() {
                connected += 1;
                continue;
            }
            match s.worker.map(|w| w.state) {
                Some(State::Dialing) => dialing += 1,
                Some(State::Waiting) => waiting += 1,
                Some(State::AwaitingAddrs) => awaiting += 1,
                _ => idle += 1,
            }
        }
        let reconnects = stats.lock().unwrap_or_else(|p| p.into_inner()).reconnects;
        let t = started.elapsed().as_secs_f64();
        if out.is_json() {
            out.event(
                "status",
                json!({
                    "t_ms": (t * 1000.0) as u64,
                    "connected": connected, "dialing": dialing, "waiting": waiting,
                    "idle": idle, "awaiting_addrs": awaiting, "reconnects": reconnects,
                }),
                String::new,
            );
        } else {
            out.status(format!(
                "{t:5.1}s  connected {connected}/{n}  dialing {dialing}  waiting {waiting}  idle {idle}  no address {awaiting}  reconnects {reconnects}"
            ));
        }
    }
}
