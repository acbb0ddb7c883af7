//! Reconnect latency and dials to a dead peer: the server registry against
//! ldk-node's reconnect loop (every 60 s, sequentially, no backoff), in the
//! same run, with real LDK `PeerManager`s on 127.0.0.1.
//!
//! Time is scaled down 60 times (one real minute is one second here): the
//! baseline loops every 1 s; the registry uses lnd's policy scaled the same
//! way (min 1 s → 16.7 ms, max 1 h → 60 s, stable 10 min → 10 s). Each hub
//! has 20 live peers and one dead one (its port refuses). Each live peer
//! stays up 11 to 14 scaled minutes, goes down for 5 to 60 scaled seconds
//! and comes back on the same port (a restart: the sample is the time from
//! its listener being back to connected), or drops the connection and
//! stays up (a blip: from the drop to connected), alternately. Connected
//! means both ends' LDK list the other (read every 2 ms). Both hubs' peers
//! follow the same random schedule.
//!
//! Run: `cargo run -p ldk-net-keeper --example reconnect_churn`
//! (about 65 s).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backoff::Policy;
use bitcoin::secp256k1::PublicKey;
use common::{manager, Manager, Peer, CAP};
use conn_worker::Dialer;
use ldk_net_keeper::{Config, LdkConnection, LdkDialer, LdkPeerHandler, LdkServer, TokioClock};
use lnaddr::NodeAddr;
use server::{Server, ServerEvent};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const SCALE: u32 = 60;
const PEERS: u8 = 20;
/// One scaled hour.
const RUN: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(2);

fn scaled(real: Duration) -> Duration {
    real / SCALE
}

struct Rng(u64);

impl Rng {
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo).mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

async fn wait(cap: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + cap;
    while !done() {
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// What one live peer's churn measured.
#[derive(Default)]
struct Samples {
    /// Restarts: from the listener being back to connected.
    restart: Vec<Duration>,
    /// Blips (the peer drops the connection and stays up): from the drop
    /// to connected.
    blip: Vec<Duration>,
    /// Restarts or blips not reconnected within 10 scaled minutes.
    missed: usize,
}

/// One live peer's life until `end`: up, then alternately a restart (down,
/// back on the same port) and a blip (the peer closes the connection and
/// stays up).
async fn churn(
    seed: u8,
    mut peer: Peer,
    hub: Arc<Manager>,
    hub_id: PublicKey,
    end: Instant,
) -> Samples {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(seed));
    let mut out = Samples::default();
    let id = peer.id;
    wait(CAP, || hub.peer_by_node_id(&id).is_some()).await;
    for cycle in 0.. {
        let up = rng.between(
            scaled(Duration::from_secs(660)),
            scaled(Duration::from_secs(840)),
        );
        let down = rng.between(
            scaled(Duration::from_secs(5)),
            scaled(Duration::from_secs(60)),
        );
        if Instant::now() + up + down > end {
            break;
        }
        tokio::time::sleep(up).await;
        let restart = cycle % 2 == 0;
        let back = if restart {
            let port = peer.addr.port();
            peer.stop().await;
            wait(CAP, || hub.peer_by_node_id(&id).is_none()).await;
            tokio::time::sleep(down).await;
            peer = match Peer::start(seed, port).await {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("peer {seed}: rebind failed: {e}");
                    out.missed += 1;
                    return out;
                }
            };
            Instant::now()
        } else {
            peer.manager.disconnect_by_node_id(hub_id);
            let dropped = Instant::now();
            wait(CAP, || hub.peer_by_node_id(&id).is_none()).await;
            dropped
        };
        // Connected on both ends.
        let connected = || hub.peer_by_node_id(&id).is_some() && peer.has(&hub_id);
        if wait(scaled(Duration::from_secs(600)), connected).await {
            let took = back.elapsed();
            if restart {
                out.restart.push(took);
            } else {
                out.blip.push(took);
            }
        } else {
            out.missed += 1;
        }
    }
    peer.stop().await;
    out
}

/// ldk-node's loop: every interval, each stored peer not connected is
/// dialed in turn.
async fn baseline(
    dialer: LdkDialer<Arc<Manager>>,
    hub: Arc<Manager>,
    peers: Vec<NodeAddr>,
    dead: PublicKey,
    dead_dials: Arc<AtomicUsize>,
    end: Instant,
) {
    let mut held: HashMap<PublicKey, LdkConnection> = HashMap::new();
    let mut tick = tokio::time::interval(scaled(Duration::from_secs(60)));
    while Instant::now() < end {
        tick.tick().await;
        for node in &peers {
            if hub.peer_by_node_id(&node.pubkey).is_some() {
                continue;
            }
            if node.pubkey == dead {
                dead_dials.fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(conn) = dialer.dial(node, CancellationToken::new()).await {
                held.insert(node.pubkey, conn);
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let real = |d: Duration| d * SCALE;
    println!(
        "{name:<9} {what:<8} samples {:>3}  p50 {:>8.2?} ({:>6.1?} real)  p99 {:>8.2?} ({:>6.1?} real)  max {:>8.2?} ({:>6.1?} real)",
        samples.len(),
        percentile(&samples, 50.0),
        real(percentile(&samples, 50.0)),
        percentile(&samples, 99.0),
        real(percentile(&samples, 99.0)),
        samples.last().copied().unwrap_or_default(),
        real(samples.last().copied().unwrap_or_default()),
    );
}

async fn dead_addr() -> std::io::Result<std::net::SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    l.local_addr()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dialer_config = Config::default()
        .with_connect_timeout(scaled(Duration::from_secs(10)))?
        .with_setup_timeout(Duration::from_secs(2))?;

    // The registry's hub.
    let (reg_hub, reg_id) = manager(200);
    let policy = Policy::new(
        scaled(Duration::from_secs(1)),
        scaled(Duration::from_secs(3600)),
    )?
    .with_stable(scaled(Duration::from_secs(600)));
    let mut config = server::Config::default();
    config.worker = conn_worker::Config::default()
        .with_policy(policy)
        .with_stagger(scaled(Duration::from_secs(10)))
        .with_attempt_timeout(Duration::from_secs(2))?;
    let server: LdkServer<Arc<Manager>> = Server::new(
        reg_id,
        config,
        LdkDialer::new(Arc::clone(&reg_hub), dialer_config),
        TokioClock,
        LdkPeerHandler,
    );
    // The baseline's hub.
    let (base_hub, base_id) = manager(201);

    let end = Instant::now() + RUN;
    let mut tasks = Vec::new();
    let mut base_peers = Vec::new();
    for i in 0..PEERS {
        let p = Peer::start(i + 1, 0).await?;
        server.connect(NodeAddr::new(p.id, p.addr), true).await?;
        tasks.push((
            "registry",
            tokio::spawn(churn(i + 1, p, Arc::clone(&reg_hub), reg_id, end)),
        ));
        let q = Peer::start(i + 1 + PEERS, 0).await?;
        base_peers.push(NodeAddr::new(q.id, q.addr));
        tasks.push((
            "baseline",
            tokio::spawn(churn(i + 1 + PEERS, q, Arc::clone(&base_hub), base_id, end)),
        ));
    }
    // The dead peers: a closed port each.
    let (_, reg_dead) = manager(210);
    let (_, base_dead) = manager(211);
    let reg_dials = Arc::new(AtomicUsize::new(0));
    let mut events = server.events();
    let counter = Arc::clone(&reg_dials);
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let ServerEvent::DialStarted { peer, .. } = event {
                if peer == reg_dead {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    server
        .connect(NodeAddr::new(reg_dead, dead_addr().await?), true)
        .await?;
    base_peers.push(NodeAddr::new(base_dead, dead_addr().await?));
    let base_dials = Arc::new(AtomicUsize::new(0));
    let base = tokio::spawn(baseline(
        LdkDialer::new(Arc::clone(&base_hub), dialer_config),
        base_hub,
        base_peers,
        base_dead,
        Arc::clone(&base_dials),
        end,
    ));

    let (mut reg, mut basel) = (Samples::default(), Samples::default());
    for (who, task) in tasks {
        let samples = task.await?;
        let into = if who == "registry" {
            &mut reg
        } else {
            &mut basel
        };
        into.restart.extend(samples.restart);
        into.blip.extend(samples.blip);
        into.missed += samples.missed;
    }
    tokio::time::sleep_until(end).await;
    let reg_dead_dials = reg_dials.load(Ordering::Relaxed);
    server.shutdown().await;
    base.abort();
    println!(
        "time scaled 1:{SCALE}; {PEERS} live LDK peers and one dead one per hub; one scaled hour"
    );
    for (name, samples) in [("registry", reg), ("baseline", basel)] {
        println!("{name:<9} missed {}", samples.missed);
        report(name, "restart", samples.restart);
        report(name, "blip", samples.blip);
    }
    println!(
        "dials to the dead peer in one (scaled) hour: registry {reg_dead_dials}, baseline {}",
        base_dials.load(Ordering::Relaxed)
    );
    Ok(())
}
