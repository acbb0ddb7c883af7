//! Reconnect latency and dials to a dead peer for an LDK node: the server
//! registry (through ldk-net-keeper) against ldk-node's reconnect loop
//! (every 60 s, sequentially, no backoff), in the same run, with real LDK
//! `PeerManager`s on 127.0.0.1 (issue 18).
//!
//! Two hubs, each with 20 live LDK peers and one dead peer (a closed port,
//! refused at once). Hub `registry` keeps its peers with a `Server` over
//! an `LdkDialer`; hub `baseline` runs ldk-node's loop over the same
//! `LdkDialer`, so only the scheduling differs. Each live peer stays up 11
//! to 14 minutes, then alternately restarts (a new `PeerManager` with the
//! same key, down 5 to 60 s, back on the same port) or blips (it drops the
//! connection and stays up); both hubs' peers follow the same schedule.
//! Connected means both ends' LDK list the other.
//!
//! **Time is scaled** [`SCALE`] = 60 times: one world minute is one wall
//! second. The server and its workers run on a clock that runs 60 times
//! faster ([`clock::Scaled`]), so they use `conn_worker::Config::default()`
//! as it is (the policy, the stagger, whatever a later policy adds): a
//! policy change upstream is measured by re-running this bench. Only the
//! attempt timeout is raised, to 2 wall seconds, because LDK's handshake
//! runs in wall time, and the jitter seed is fixed so that runs repeat.
//! The baseline loops every world minute (one wall second). The run lasts
//! at least two world hours (two wall minutes).
//!
//! Criterion: one iteration is one restart or blip, and the duration it is
//! given is that event's wall time from the peer being back (its listener
//! bound again, or the drop) to connected; so criterion's statistics, one
//! event per sample ([`SAMPLES`] flat samples after one warm-up event),
//! are of reconnect latency. Criterion warns that it cannot complete the
//! samples in the target time: the target is set to nothing on purpose,
//! so that each sample is one event. Criterion gives no p99, so the bench
//! also prints p50, p99 and max over every event of the run (in wall and
//! world time), the misses, and the dials to each dead peer per world hour.
//!
//! Run: `cargo bench -p ldk-net-keeper --bench reconnect` (2 min once built).

#[path = "reconnect/churn.rs"]
mod churn;
#[path = "reconnect/clock.rs"]
mod clock;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use churn::{baseline, churn, wait, Counted, Report, Tally, LOOP_INTERVAL};
use clock::Scaled;
use conn_worker::Clock;
use criterion::{BenchmarkId, Criterion, SamplingMode};
use ldk_net_keeper::{Config, LdkDialer, LdkPeerHandler};
use lnaddr::NodeAddr;
use server::Server;
use testkit::ldk::{LdkNode, LdkPeer};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// World seconds per wall second.
const SCALE: u32 = 60;
/// Live peers per hub.
const PEERS: u8 = 20;
/// Criterion's samples per series, one event each.
const SAMPLES: usize = 70;
/// The run lasts at least this many world hours (for the dials per hour).
const MIN_HOURS: u32 = 2;
const HOUR: Duration = Duration::from_secs(3600);
/// The dialer's own timeouts, in wall time (LDK runs in wall time).
const DIAL_TIMEOUT_WALL: Duration = Duration::from_secs(2);
/// How often a dialer reads LDK's state during a connection's setup (wall).
const SETUP_POLL_WALL: Duration = Duration::from_millis(1);
/// A hang guard: no event of a series in this long (wall) fails the bench.
const GAP_CAP_WALL: Duration = Duration::from_secs(60);

type Registry = Server<Counted, Scaled, LdkPeerHandler>;

/// One of the four things measured: a hub and an event kind.
struct Series {
    hub: &'static str,
    event: &'static str,
    events: Receiver<Duration>,
    /// Every event of the run (criterion's first, then the rest).
    seen: Vec<Duration>,
    missed: Arc<AtomicUsize>,
}

impl Series {
    /// The next `iters` events' wall times, summed (criterion's
    /// `iter_custom`).
    fn take(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let took = match self.events.recv_timeout(GAP_CAP_WALL) {
                Ok(took) => took,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no {} {} reconnected in {GAP_CAP_WALL:?} ({} missed so far)",
                    self.hub,
                    self.event,
                    self.missed.load(Ordering::Relaxed)
                ),
            };
            self.seen.push(took);
            total += took;
        }
        total
    }
}

/// The two hubs and their churn, running on a runtime of their own.
struct Run {
    clock: Scaled,
    registry: Registry,
    registry_dialer: Counted,
    baseline_dialer: Counted,
    /// When the dead peers were added.
    since: Instant,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    worker: conn_worker::Config,
}

/// A tally for the churn and the series that reads it.
fn series(hub: &'static str, event: &'static str) -> (Tally, Series) {
    let (events, receiver) = channel();
    let missed = Arc::new(AtomicUsize::new(0));
    let series = Series {
        hub,
        event,
        events: receiver,
        seen: Vec::new(),
        missed: Arc::clone(&missed),
    };
    (Tally { events, missed }, series)
}

/// A hub's report and its two series.
fn report(hub: &'static str) -> (Report, [Series; 2]) {
    let (restart, restarts) = series(hub, "restart");
    let (blip, blips) = series(hub, "blip");
    (Report { restart, blip }, [restarts, blips])
}

/// A closed port on 127.0.0.1: dials are refused at once.
async fn dead_addr() -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    listener.local_addr()
}

impl Run {
    async fn start() -> Result<(Self, Vec<Series>), Box<dyn std::error::Error>> {
        let clock = Scaled::new(SCALE);
        let dialer_config = Config::default()
            .with_connect_timeout(DIAL_TIMEOUT_WALL)?
            .with_setup_timeout(DIAL_TIMEOUT_WALL)?
            .with_poll_interval(SETUP_POLL_WALL)?;
        let stop = CancellationToken::new();

        // The registry's hub: upstream's worker config, on scaled time.
        let worker = conn_worker::Config::default()
            .with_attempt_timeout(clock.world(DIAL_TIMEOUT_WALL))?
            .with_seed(18);
        let mut config = server::Config::default();
        config.worker = worker.clone();
        let reg_hub = Arc::new(LdkNode::new(200));
        let reg_dead = LdkNode::new(210).node_id;
        let registry_dialer = Counted::new(
            LdkDialer::new(Arc::clone(&reg_hub.manager), dialer_config),
            reg_dead,
            clock,
        );
        let registry = Server::new(
            reg_hub.node_id,
            config,
            registry_dialer.clone(),
            clock,
            LdkPeerHandler,
        );
        // The baseline's hub.
        let base_hub = Arc::new(LdkNode::new(201));
        let base_dead = LdkNode::new(211).node_id;
        let baseline_dialer = Counted::new(
            LdkDialer::new(Arc::clone(&base_hub.manager), dialer_config),
            base_dead,
            clock,
        );

        let (mut reg_peers, mut base_peers, mut stored) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..PEERS {
            let p = LdkPeer::start(i + 1, 0).await?;
            registry
                .connect(NodeAddr::new(p.id(), p.addr()), true)
                .await?;
            reg_peers.push(p);
            let q = LdkPeer::start(i + 1 + PEERS, 0).await?;
            stored.push(NodeAddr::new(q.id(), q.addr()));
            base_peers.push(q);
        }
        let since = clock.now();
        registry
            .connect(NodeAddr::new(reg_dead, dead_addr().await?), true)
            .await?;
        stored.push(NodeAddr::new(base_dead, dead_addr().await?));
        let mut tasks = vec![tokio::spawn(baseline(
            baseline_dialer.clone(),
            Arc::clone(&base_hub),
            stored,
            clock,
            stop.clone(),
        ))];

        // Everyone connected before the churn starts.
        for (hub, peers) in [(&reg_hub, &reg_peers), (&base_hub, &base_peers)] {
            for p in peers {
                let both = || hub.has(&p.id()) && p.has(&hub.node_id);
                if !wait([hub, &p.node], GAP_CAP_WALL, &stop, both).await {
                    return Err(format!("peer {} never connected at the start", p.id()).into());
                }
            }
        }

        let (reg_report, reg_series) = report("registry");
        let (base_report, base_series) = report("baseline");
        let all = reg_series.into_iter().chain(base_series).collect();
        for (hub, peers, report, first_seed) in [
            (&reg_hub, reg_peers, &reg_report, 1),
            (&base_hub, base_peers, &base_report, 1 + PEERS),
        ] {
            for (i, p) in (0..).zip(peers) {
                tasks.push(tokio::spawn(churn(
                    i,
                    first_seed + i,
                    p,
                    Arc::clone(hub),
                    clock,
                    report.clone(),
                    stop.clone(),
                )));
            }
        }
        let run = Run {
            clock,
            registry,
            registry_dialer,
            baseline_dialer,
            since,
            stop,
            tasks,
            worker,
        };
        Ok((run, all))
    }

    /// Waits out the run's minimum length (only if criterion measured, not
    /// in its test or list mode), stops the churn and the hubs, and prints
    /// what was measured.
    async fn finish(mut self, mut all: Vec<Series>) {
        let measured = all.iter().any(|s| s.seen.len() > 1);
        if measured {
            let end = self.since + HOUR * MIN_HOURS;
            tokio::time::sleep(
                self.clock
                    .wall(end.saturating_duration_since(self.clock.now())),
            )
            .await;
        }
        let world = self.clock.now().saturating_duration_since(self.since);
        self.stop.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.registry.shutdown().await;
        for s in &mut all {
            s.seen.extend(s.events.try_iter());
        }
        self.print(&all, world);
    }

    fn print(&self, all: &[Series], world: Duration) {
        let policy = &self.worker.policy;
        let goal = policy.min() + self.worker.stagger;
        let hours = world.as_secs_f64() / HOUR.as_secs_f64();
        println!();
        println!(
            "time scaled 1:{f} ({f} world seconds per wall second); {PEERS} live LDK peers and a dead one per hub; {hours:.2} world hours",
            f = self.clock.factor()
        );
        println!(
            "registry worker config (conn_worker::Config::default(), attempt timeout raised): {:?}",
            self.worker
        );
        println!(
            "baseline: every {LOOP_INTERVAL:?} (world), each peer LDK does not list, dialed in turn"
        );
        println!(
            "goal: p99 within min backoff + stagger = {goal:?} world ({:.1?} wall)",
            self.clock.wall(goal)
        );
        println!("series            events missed  p50 wall (world)        p99 wall (world)        max wall (world)");
        for s in all {
            let mut sorted = s.seen.clone();
            sorted.sort();
            let cell = |d: Duration| format!("{:>8.2?} ({:>6.1?})", d, self.clock.world(d));
            println!(
                "{:<17} {:>6} {:>6}  {}  {}  {}",
                format!("{}/{}", s.hub, s.event),
                sorted.len(),
                s.missed.load(Ordering::Relaxed),
                cell(percentile(&sorted, 50.0)),
                cell(percentile(&sorted, 99.0)),
                cell(sorted.last().copied().unwrap_or_default()),
            );
        }
        for (hub, dialer) in [
            ("registry", &self.registry_dialer),
            ("baseline", &self.baseline_dialer),
        ] {
            let dials = dialer.dials_since(self.since);
            println!(
                "{hub} dials to its dead peer: {} in {hours:.2} world hours ({})",
                dials.len(),
                per_hour(&dials, world)
            );
        }
    }
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Dials in each whole world hour of the run, then in the part hour left.
fn per_hour(dials: &[Duration], world: Duration) -> String {
    let whole = (world.as_secs() / HOUR.as_secs()) as u32;
    let in_hour = |h: u32| {
        let (from, to) = (HOUR * h, HOUR * (h + 1));
        dials.iter().filter(|d| (from..to).contains(d)).count()
    };
    let mut out: Vec<String> = (0..whole)
        .map(|h| format!("hour {}: {}", h + 1, in_hour(h)))
        .collect();
    let rest = world.saturating_sub(HOUR * whole).as_secs_f64() / HOUR.as_secs_f64();
    if rest >= 0.01 {
        let which = if whole == 0 { "first" } else { "next" };
        out.push(format!("{} in the {which} {rest:.2} h", in_hour(whole)));
    }
    out.join(", ")
}

fn reconnect(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let (run, mut all) = runtime
        .block_on(Run::start())
        .unwrap_or_else(|e| panic!("reconnect bench setup: {e}"));
    let mut group = c.benchmark_group("reconnect");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_nanos(1))
        .measurement_time(Duration::from_nanos(1))
        .nresamples(10_000);
    for s in &mut all {
        group.bench_function(BenchmarkId::new(s.hub, s.event), |b| {
            b.iter_custom(|iters| s.take(iters));
        });
    }
    group.finish();
    runtime.block_on(run.finish(all));
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group!(benches, super::reconnect);
}

criterion::criterion_main!(group::benches);
