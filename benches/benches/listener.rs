//! Inbound capacity of brontide's `Listener`, beside its floor, in the same
//! run:
//!
//! - ours: C honest clients (C = 8, 64, 256) each dialing a real `Listener`
//!   on 127.0.0.1 in a loop (connect, the three acts, close), client and
//!   listener on one tokio runtime of 2 worker threads; handshakes per
//!   second, and every dial that failed (reset, refused, timed out) counted.
//!   The listener runs with its defaults (50 handshakes at once, 256
//!   pending), so 64 and 256 clients are beyond its bound.
//! - the same with 8 clients while 100 silent connections (the hostile
//!   tests' flood) are held open against the listener.
//! - floor: the handshake both sides in memory (sans-IO, no socket, no
//!   runtime) on 2 threads, the work each of our handshakes cannot avoid.
//!
//! Each measurement alternates batches of ours and of the floor, so load
//! from other processes hits both alike; lines starting `PAIRED` give the
//! median ratio of floor time to our time per handshake (≥ 1 would be
//! faster than the floor) and the honest dials that failed. Goal: ≥ 0.85 at
//! 8 and 64 clients, no failed honest dial.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::SecretKey;
use brontide::{
    dial, CancellationToken, DialConfig, Initiator, Listener, ListenerConfig, ListenerMonitor,
    NodeKeyPair, PublicKey, Responder,
};
use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// Handshakes in one batch of ours or of the floor, per client (at least
/// 400 in all), so a batch is mostly steady state, not ramp-up.
const BATCH_PER_CLIENT: u64 = 8;
/// Rounds of interleaved batches for the paired ratio.
const ROUNDS: usize = 9;

fn key(i: u64) -> NodeKeyPair {
    let mut bytes = [0x11u8; 32];
    bytes[24..].copy_from_slice(&(i + 1).to_be_bytes());
    // Invariant: 0x11.. with a small counter at the end is a valid scalar.
    NodeKeyPair::new(SecretKey::from_slice(&bytes).expect("valid scalar"))
}

/// The floor: `n` in-memory handshakes, both sides, split over 2 threads.
fn floor(n: u64, alice: &NodeKeyPair, bob: &NodeKeyPair) -> Duration {
    let bob_id = bob.public_key();
    let start = Instant::now();
    std::thread::scope(|s| {
        for share in [n / 2, n - n / 2] {
            s.spawn(move || {
                for _ in 0..share {
                    let (a1, alice) = Initiator::new(alice, &bob_id)
                        .and_then(Initiator::act_one)
                        .expect("act one");
                    let (a2, bob) = Responder::new(bob)
                        .and_then(|r| r.read_act_one(&a1))
                        .expect("act two");
                    let (a3, session) = alice.read_act_two(&a2).expect("act three");
                    black_box((bob.read_act_three(&a3).expect("session"), session));
                }
            });
        }
    });
    start.elapsed()
}

/// A listener on 127.0.0.1 that accepts and drops every connection.
struct Target {
    addr: SocketAddr,
    server: PublicKey,
    monitor: ListenerMonitor,
    stop: CancellationToken,
}

fn target(rt: &Runtime) -> Target {
    let server = key(1_000_000);
    let mut listener = rt
        .block_on(Listener::bind(
            "127.0.0.1:0",
            server.clone(),
            ListenerConfig::default(),
        ))
        .expect("bind");
    let stop = CancellationToken::new();
    let target = Target {
        addr: listener.local_addr(),
        server: server.public_key(),
        monitor: listener.monitor(),
        stop: stop.clone(),
    };
    rt.spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => if accepted.is_none() { break },
                () = stop.cancelled() => break,
            }
        }
        listener.shutdown().await;
    });
    target
}

/// `n` handshakes by `clients` honest clients dialing in a loop; the time
/// they took and the dials that failed.
fn ours(rt: &Runtime, t: &Target, clients: u64, n: u64, keys: &[NodeKeyPair]) -> (Duration, u64) {
    let remaining = Arc::new(AtomicI64::new(n as i64));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for local in &keys[..clients as usize] {
            let local = local.clone();
            let (remaining, failed) = (Arc::clone(&remaining), Arc::clone(&failed));
            let (addr, server) = (t.addr, t.server);
            tasks.spawn(async move {
                let config = DialConfig::default();
                let cancel = CancellationToken::new();
                while remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
                    match dial(addr, &local, &server, &config, &cancel).await {
                        Ok(conn) => drop(black_box(conn)),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    (start.elapsed(), failed.load(Ordering::Relaxed))
}

fn capacity(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let keys: Vec<NodeKeyPair> = (0..256).map(key).collect();
    let (alice, bob) = (key(2_000_000), key(2_000_001));
    let mut group = c.benchmark_group("listener_capacity");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor_in_memory_2_threads", |b| {
        b.iter_custom(|iters| floor(iters, &alice, &bob))
    });

    let scenarios: [(&str, u64, usize); 4] = [
        ("honest", 8, 0),
        ("honest", 64, 0),
        ("honest", 256, 0),
        ("honest_beside_100_silent", 8, 100),
    ];
    for (name, clients, silent) in scenarios {
        if !benches::wanted(&format!("listener_capacity/{name}/{clients}")) {
            continue;
        }
        let t = target(&rt);
        // The flood: `silent` connections that never send a byte, each
        // reopened as soon as the listener drops it.
        for _ in 0..silent {
            let (addr, stop) = (t.addr, t.stop.clone());
            rt.spawn(async move {
                while !stop.is_cancelled() {
                    let Ok(mut s) = TcpStream::connect(addr).await else {
                        continue;
                    };
                    let mut byte = [0u8; 1];
                    tokio::select! {
                        _ = s.read(&mut byte) => {}
                        () = stop.cancelled() => {}
                    }
                }
            });
        }
        let failed_total = AtomicU64::new(0);
        group.bench_with_input(BenchmarkId::new(name, clients), &clients, |b, &clients| {
            b.iter_custom(|iters| {
                let (took, failed) = ours(&rt, &t, clients, iters, &keys);
                failed_total.fetch_add(failed, Ordering::Relaxed);
                took
            })
        });
        // Paired: batches of ours and of the floor, alternated.
        let batch = (clients * BATCH_PER_CLIENT).max(400);
        let mut ratios = Vec::with_capacity(ROUNDS);
        let (mut ours_t, mut floor_t) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let f = || floor(batch, &alice, &bob);
            let o = || {
                let (took, failed) = ours(&rt, &t, clients, batch, &keys);
                failed_total.fetch_add(failed, Ordering::Relaxed);
                took
            };
            let (o, f) = if round % 2 == 0 {
                let o = o();
                (o, f())
            } else {
                let f = f();
                (o(), f)
            };
            ratios.push(f.as_secs_f64() / o.as_secs_f64());
            ours_t.push(o);
            floor_t.push(f);
        }
        ratios.sort_by(f64::total_cmp);
        ours_t.sort();
        floor_t.sort();
        let per_s = |d: Duration| batch as f64 / d.as_secs_f64();
        let stats = t.monitor.stats();
        println!(
            "PAIRED listener {name} {clients} clients: ours {:.0} handshakes/s, floor {:.0} handshakes/s, \
             ratio {:.3} (median of per-round floor/ours); honest dials failed: {}; \
             listener: {} accepted, {} established, {} failed ({} evicted, {} timed out)",
            per_s(ours_t[ROUNDS / 2]),
            per_s(floor_t[ROUNDS / 2]),
            ratios[ROUNDS / 2],
            failed_total.load(Ordering::Relaxed),
            stats.accepted,
            stats.established,
            stats.failed(),
            stats.evicted,
            stats.timed_out,
        );
        t.stop.cancel();
    }
    group.finish();
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group! {
        name = benches;
        config = benches::criterion();
        targets = super::capacity
    }
}

criterion_main!(group::benches);
