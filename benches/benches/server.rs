//! The registry (server), each figure beside a floor of the raw operations
//! it is built from, in the same run:
//!
//! - 10 rapid perm connects to one peer (one worker, its dial re-planned):
//!   the 10 calls, and the 10 calls until the worker has re-planned, against
//!   10 raw "look up the peer under a mutex and post to its channel";
//! - startup of 10,000 persistent peers on a mock dialer and the manual
//!   clock: wall time to plan them all (every worker created, the first
//!   batch dialing, the others asleep), against 10,000 raw tasks sleeping on
//!   the same clock; then, once, the whole startup run to the end on the
//!   manual clock, printing the peak dials in flight (must equal the limit);
//! - get-or-create and status from 2 threads at once, each alone and both
//!   together, against the same shape on a raw `Mutex<HashMap>`.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benches::{paired, report, wanted};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use conn_worker::{dial_fn, Clock, TokioClock};
use criterion::{criterion_main, Criterion, SamplingMode};
use futures::FutureExt;
use server::{
    Config, Direction, DisconnectReason, NetAddress, NodeAddr, PeerHandler, Server, StartupPeer,
};
use testkit::{settle, Behavior, ManualClock, MockDialer};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Holds each connection until the server cancels it.
struct Hold;

impl<C: Send + 'static> PeerHandler<C> for Hold {
    async fn run(
        &self,
        _: PublicKey,
        conn: C,
        _: Direction,
        cancel: CancellationToken,
    ) -> DisconnectReason {
        cancel.cancelled().await;
        drop(conn);
        DisconnectReason::Cancelled
    }
}

fn keys(n: usize) -> Vec<PublicKey> {
    let secp = Secp256k1::signing_only();
    (1..=n as u64)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[24..].copy_from_slice(&i.to_be_bytes());
            // Invariant: 1..=n is a valid non-zero scalar below the order.
            PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&bytes).expect("scalar"))
        })
        .collect()
}

fn addr(port: u16) -> NetAddress {
    NetAddress::Ip(([10, 0, 0, 1], port).into())
}

/// A current-thread runtime with tokio's time paused, as testkit's `settle`
/// and the manual clock need.
fn paused_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn rapid_connects(c: &mut Criterion) {
    let rt = paused_runtime();
    let all = keys(2);
    let (local, peer) = (all[0], all[1]);
    let node = NodeAddr::new(peer, addr(9735));
    // A dialer that hangs until cancelled: every connect re-plans its dial.
    let hang = dial_fn(|_: NodeAddr, cancel: CancellationToken| async move {
        cancel.cancelled().await;
        Err::<(), _>(io::Error::other("cancelled"))
    });
    let clock = ManualClock::new();
    let server = rt.block_on(async {
        let s = Server::new(local, Config::default(), hang, clock, Hold);
        s.connect(node.clone(), true).await.unwrap();
        settle().await;
        s
    });

    let mut group = c.benchmark_group("server_10_perm_connects_one_peer");
    group.bench_function("calls_only", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..10 {
                        server.connect(node.clone(), true).await.unwrap();
                    }
                }
                let elapsed = start.elapsed();
                settle().await;
                elapsed
            })
        })
    });
    group.bench_function("calls_until_replanned", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..10 {
                        server.connect(node.clone(), true).await.unwrap();
                    }
                    settle().await;
                }
                start.elapsed()
            })
        })
    });
    let status = server.status();
    assert_eq!(status.len(), 1, "one worker for one peer");
    assert_eq!(server.dials_in_flight(), 1, "one dial in flight");

    // Paired: the 10 calls against 10 raw locked lookups and sends.
    let (tx, mut rx) = mpsc::unbounded_channel::<NodeAddr>();
    let map: Mutex<HashMap<PublicKey, mpsc::UnboundedSender<NodeAddr>>> =
        Mutex::new(HashMap::from([(peer, tx)]));
    let result = wanted("server_10_perm_connects_one_peer/calls_only").then(|| {
        let _guard = rt.enter();
        paired(
            41,
            1000,
            || {
                for _ in 0..10 {
                    // A perm connect never waits: it is ready at once.
                    let call = server.connect(node.clone(), true).now_or_never();
                    call.expect("perm connect is ready at once").unwrap();
                }
            },
            || {
                for _ in 0..10 {
                    let map = map.lock().unwrap();
                    map[&peer].send(node.clone()).unwrap();
                }
                while rx.try_recv().is_ok() {}
            },
        )
    });
    if let Some(result) = result {
        report(
            "server 10 perm connects (calls) / 10 locked lookups+sends",
            &result,
        );
    }
    rt.block_on(settle());
    let status = server.status();
    assert_eq!(status.len(), 1, "one worker for one peer");
    assert_eq!(server.dials_in_flight(), 1, "one dial in flight");
    rt.block_on(server.shutdown());

    // Floor: look the peer up under a mutex and post to its channel.
    let (tx, mut rx) = mpsc::unbounded_channel::<NodeAddr>();
    let map: Mutex<HashMap<PublicKey, mpsc::UnboundedSender<NodeAddr>>> =
        Mutex::new(HashMap::from([(peer, tx)]));
    group.bench_function("floor_10_locked_lookups_and_sends", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..10 {
                    let map = map.lock().unwrap();
                    map[&peer].send(node.clone()).unwrap();
                }
            }
            let elapsed = start.elapsed();
            while rx.try_recv().is_ok() {}
            elapsed
        })
    });
    group.bench_function("floor_settle_alone", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    settle().await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

const STARTUP_PEERS: usize = 10_000;

type MockServer = Server<MockDialer<PublicKey, NodeAddr>, ManualClock, Hold>;

fn startup_server(local: PublicKey) -> (MockServer, MockDialer<PublicKey, NodeAddr>, ManualClock) {
    let clock = ManualClock::new();
    let dialer = MockDialer::new(clock.clone());
    dialer.set_fallback(Behavior::SucceedAfter(Duration::from_millis(100)));
    let server = Server::new(
        local,
        Config::default(),
        dialer.clone(),
        clock.clone(),
        Hold,
    );
    (server, dialer, clock)
}

fn startup_peers(peers: &[PublicKey]) -> Vec<StartupPeer> {
    peers
        .iter()
        .map(|p| StartupPeer::new(*p, vec![addr(9735)], false))
        .collect()
}

/// Every tenth peer is dead (its address never answers), the first ones
/// among them listed first.
fn kill_every_tenth(dialer: &MockDialer<PublicKey, NodeAddr>, peers: &[PublicKey]) -> usize {
    let mut dead = 0;
    for p in peers.iter().step_by(10) {
        dialer.set(NodeAddr::new(*p, addr(9735)), Behavior::Hang);
        dead += 1;
    }
    dead
}

/// Runs one startup of 10,000 peers to the end on the manual clock (10%
/// of them dead if `dead`) and prints when every live peer was connected
/// and the peak dials in flight.
fn startup_to_the_end(rt: &Runtime, local: PublicKey, peers: &[PublicKey], dead: bool) {
    rt.block_on(async {
        let (server, dialer, clock) = startup_server(local);
        let dead = if dead {
            kill_every_tenth(&dialer, peers)
        } else {
            0
        };
        let live = (STARTUP_PEERS - dead) as u64;
        let wall = Instant::now();
        server.startup(startup_peers(peers));
        settle().await;
        let planned = wall.elapsed();
        let limit = Config::default().worker.max_dials_in_flight.get();
        let mut peak_sampled = 0;
        while dialer.conns_made() < live {
            clock.advance(Duration::from_millis(100)).await;
            peak_sampled = peak_sampled.max(server.dials_in_flight());
            assert!(
                clock.elapsed() < Duration::from_secs(3600),
                "startup stalled"
            );
        }
        let total = wall.elapsed();
        println!(
            "server_startup_10k ({dead} dead): planned in {planned:.2?} wall; all {live} live \
             peers connected after {:.1?} on the manual clock ({total:.2?} wall); peak dials \
             in flight {} (server), {} (mock dialer), {peak_sampled} (sampled); limit {limit}",
            clock.elapsed(),
            server.peak_dials_in_flight(),
            dialer.max_in_flight(),
        );
        server.shutdown().await;
    });
}

fn startup(c: &mut Criterion) {
    let rt = paused_runtime();
    let mut all = keys(STARTUP_PEERS + 1);
    let local = all.remove(0);
    if wanted("server_startup_10k_peers") {
        startup_to_the_end(&rt, local, &all, false);
        startup_to_the_end(&rt, local, &all, true);
    }

    let mut group = c.benchmark_group("server_startup_10k_peers");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("plan_all", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (server, dialer, _clock) = startup_server(local);
                    let peers = startup_peers(&all);
                    let start = Instant::now();
                    server.startup(peers);
                    settle().await;
                    total += start.elapsed();
                    assert_eq!(dialer.in_flight(), 10);
                    server.shutdown().await;
                }
                total
            })
        })
    });
    group.bench_function("plan_all_10pct_dead", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (server, dialer, _clock) = startup_server(local);
                    kill_every_tenth(&dialer, &all);
                    let peers = startup_peers(&all);
                    let start = Instant::now();
                    server.startup(peers);
                    settle().await;
                    total += start.elapsed();
                    server.shutdown().await;
                }
                total
            })
        })
    });
    // Floor: 10,000 raw tasks, the first 10 "dialing" at once, the others
    // asleep on the same manual clock for a whole number of seconds < 30.
    group.bench_function("floor_10k_tasks_sleeping_on_the_clock", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let clock = ManualClock::new();
                    let root = CancellationToken::new();
                    let tracker = TaskTracker::new();
                    let start = Instant::now();
                    for i in 0..STARTUP_PEERS as u64 {
                        let clock = clock.clone();
                        let cancel = root.child_token();
                        tracker.spawn(async move {
                            let delay = if i < 10 { 0 } else { (i * 7919) % 30 };
                            let until = clock.now() + Duration::from_secs(delay);
                            tokio::select! {
                                () = clock.sleep_until(until) => {}
                                () = cancel.cancelled() => {}
                            }
                            cancel.cancelled().await;
                        });
                    }
                    settle().await;
                    total += start.elapsed();
                    root.cancel();
                    tracker.close();
                    tracker.wait().await;
                }
                total
            })
        })
    });
    group.finish();
}

const REGISTERED: usize = 100;

/// Runs `a` and `b` on two threads at once; returns `a`'s time for `iters`
/// calls (`b` loops until `a` is done).
fn contended(iters: u64, a: impl Fn() + Sync, b: impl Fn() + Sync) -> Duration {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                b();
            }
        });
        let start = Instant::now();
        for _ in 0..iters {
            a();
        }
        let elapsed = start.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        elapsed
    })
}

fn two_threads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut all = keys(REGISTERED + 1);
    let local = all.remove(0);
    let hang = dial_fn(|_: NodeAddr, cancel: CancellationToken| async move {
        cancel.cancelled().await;
        Err::<(), _>(io::Error::other("cancelled"))
    });
    let server = Server::new(local, Config::default(), hang, TokioClock, Hold);
    for p in &all {
        server.channel_opened(*p);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let get_or_create = || {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % REGISTERED;
        server.channel_opened(all[i]);
    };
    let status = || {
        let s = server.status();
        assert_eq!(s.len(), REGISTERED);
    };

    // Floor: the same shapes on a raw mutex-guarded map of handles.
    let map: Mutex<HashMap<PublicKey, Arc<u64>>> =
        Mutex::new(all.iter().map(|p| (*p, Arc::new(0))).collect());
    let raw_get_or_create = || {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % REGISTERED;
        let mut map = map.lock().unwrap();
        let handle = map.entry(all[i]).or_insert_with(|| Arc::new(0)).clone();
        std::hint::black_box(handle);
    };
    let raw_status = || {
        let map = map.lock().unwrap();
        let mut snap: Vec<(PublicKey, u64)> = map.iter().map(|(k, v)| (*k, **v)).collect();
        drop(map);
        snap.sort_unstable_by_key(|(k, _)| *k);
        std::hint::black_box(snap);
    };

    // The same snapshot sorted by serialized key, computed once per key:
    // `PublicKey`'s `Ord` serializes both keys at every comparison.
    let raw_status_cached_sort = || {
        let map = map.lock().unwrap();
        let mut snap: Vec<(PublicKey, u64)> = map.iter().map(|(k, v)| (*k, **v)).collect();
        drop(map);
        snap.sort_by_cached_key(|(k, _)| k.serialize());
        std::hint::black_box(snap);
    };

    let mut group = c.benchmark_group("server_two_threads_100_peers");
    group.bench_function("get_or_create_alone", |b| {
        b.iter(get_or_create);
    });
    group.bench_function("get_or_create_while_status_runs", |b| {
        b.iter_custom(|iters| contended(iters, get_or_create, status));
    });
    group.bench_function("status_alone", |b| {
        b.iter(status);
    });
    group.bench_function("status_while_get_or_create_runs", |b| {
        b.iter_custom(|iters| contended(iters, status, get_or_create));
    });
    group.bench_function("floor_get_or_create_while_status_runs", |b| {
        b.iter_custom(|iters| contended(iters, raw_get_or_create, raw_status));
    });
    group.bench_function("floor_status_while_get_or_create_runs", |b| {
        b.iter_custom(|iters| contended(iters, raw_status, raw_get_or_create));
    });
    group.bench_function("floor_status_alone", |b| {
        b.iter(raw_status);
    });
    group.bench_function("floor_status_alone_sorted_by_serialized_key", |b| {
        b.iter(raw_status_cached_sort);
    });
    group.finish();
    rt.block_on(server.shutdown());
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group! {
        name = benches;
        config = benches::criterion();
        targets = super::rapid_connects, super::startup, super::two_threads
    }
}

criterion_main!(group::benches);
