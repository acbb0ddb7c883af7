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
//! - two references on the same runtime, to tell the listener's cost from
//!   the clients' and from tokio's: ours with *bare clients* (the sans-IO
//!   `Initiator` on a plain tokio `TcpStream`: no timers, no socket
//!   options, no `Connection`), and *bare tokio*: the same bare clients
//!   against a bare tokio server (accept, spawn a task, the sans-IO
//!   `Responder`; no bounds, no timeouts, no events), what any tokio
//!   listener pays per connection.
//! - floor: the handshake both sides in memory (sans-IO, no socket, no
//!   runtime) on 2 threads, the work each of our handshakes cannot avoid.
//! - floor over TCP (a reference, not the goal's floor): the same in-memory
//!   handshake with each act carried by a real loopback connection made and
//!   closed with blocking std sockets, nothing else, on 2 threads: what no
//!   TCP listener can go below on this machine's kernel, so `floor ÷ floor
//!   over TCP` is the best ratio any listener could reach here.
//!
//! Each measurement alternates batches of the five (the order rotates
//! every round), so load from other processes hits all alike; lines
//! starting `PAIRED` give the median ratio of floor time to our time per
//! handshake (≥ 1 would be faster than the floor), the same for the two
//! references and the floor over TCP, the CPU time per handshake of each
//! (from `/proc`'s `schedstat`, every thread of the process for ours: load
//! from other processes moves it far less than wall time) and the honest
//! dials that failed. In the flood scenario the flood targets the listener
//! only, beside all five. Goal: ≥ 0.85 at 8 and 64 clients, no failed honest dial.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::SecretKey;
use brontide::{
    dial, CancellationToken, DialConfig, Initiator, Listener, ListenerConfig, ListenerMonitor,
    NodeKeyPair, PublicKey, Responder, ACT_ONE_LEN, ACT_THREE_LEN, ACT_TWO_LEN,
};
use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::runtime::Runtime;

/// Handshakes in one batch of ours or of the floor, per client (at least
/// 400 in all), so a batch is mostly steady state, not ramp-up.
const BATCH_PER_CLIENT: u64 = 8;
/// Rounds of interleaved batches for the paired ratio.
const ROUNDS: usize = 15;

/// The paired workloads, by index: ours (`brontide::dial` clients against
/// the `Listener`), the in-memory floor, the floor over TCP, ours with bare
/// clients, bare tokio.
const WORKLOADS: usize = 5;
const OURS: usize = 0;
const FLOOR: usize = 1;
const TCP_FLOOR: usize = 2;
const OURS_BARE_CLIENTS: usize = 3;
const BARE_TOKIO: usize = 4;

fn key(i: u64) -> NodeKeyPair {
    let mut bytes = [0x11u8; 32];
    bytes[24..].copy_from_slice(&(i + 1).to_be_bytes());
    // Invariant: 0x11.. with a small counter at the end is a valid scalar.
    NodeKeyPair::new(SecretKey::from_slice(&bytes).expect("valid scalar"))
}

/// CPU time (on Linux; zero elsewhere) of the calling thread, or of every
/// thread of the process alive now, from `/proc`'s `schedstat` (ns).
fn cpu_time(path: &str) -> Duration {
    let read = |p: &std::path::Path| -> Option<u64> {
        std::fs::read_to_string(p)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let nanos = if path == "self" {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter_map(|t| read(&t.path().join("schedstat")))
                    .sum()
            })
            .unwrap_or(0)
    } else {
        read(std::path::Path::new("/proc/thread-self/schedstat")).unwrap_or(0)
    };
    Duration::from_nanos(nanos)
}

/// A wall time and the CPU time it took.
#[derive(Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Duration,
}

/// Runs `n` calls of `one` split over 2 threads (`one` is given the
/// thread's index); the wall time, and the CPU time of the 2 threads.
fn on_two_threads(n: u64, one: impl Fn(usize) + Sync) -> Took {
    let one = &one;
    let start = Instant::now();
    let cpu = std::thread::scope(|s| {
        let threads: Vec<_> = [n / 2, n - n / 2]
            .into_iter()
            .enumerate()
            .map(|(i, share)| {
                s.spawn(move || {
                    let cpu = cpu_time("thread");
                    for _ in 0..share {
                        one(i);
                    }
                    cpu_time("thread").saturating_sub(cpu)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("floor thread"))
            .sum()
    });
    Took {
        wall: start.elapsed(),
        cpu,
    }
}

/// The floor: `n` in-memory handshakes, both sides, split over 2 threads.
fn floor(n: u64, alice: &NodeKeyPair, bob: &NodeKeyPair) -> Took {
    let bob_id = bob.public_key();
    on_two_threads(n, |_| {
        let (a1, alice) = Initiator::new(alice, &bob_id)
            .and_then(Initiator::act_one)
            .expect("act one");
        let (a2, bob) = Responder::new(bob)
            .and_then(|r| r.read_act_one(&a1))
            .expect("act two");
        let (a3, session) = alice.read_act_two(&a2).expect("act three");
        black_box((bob.read_act_three(&a3).expect("session"), session));
    })
}

/// The floor over TCP: the in-memory handshake of [`floor`] with each act
/// carried by a real loopback connection, and nothing else: blocking std
/// sockets, both ends on one thread (loopback delivers within the sending
/// call, so no call waits), no runtime, no socket option; per handshake a
/// connect, an accept, a write and a read per act, two closes. `n`
/// handshakes split over 2 threads, one loopback listener each. What no
/// TCP listener can go below, on this machine's kernel.
fn tcp_floor(n: u64, alice: &NodeKeyPair, bob: &NodeKeyPair) -> Took {
    let bob_id = bob.public_key();
    let listeners: Vec<(std::net::TcpListener, SocketAddr)> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = l.local_addr().expect("local address");
            (l, addr)
        })
        .collect();
    on_two_threads(n, |i| {
        let (listener, addr) = &listeners[i];
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let (a1, alice) = Initiator::new(alice, &bob_id)
            .and_then(Initiator::act_one)
            .expect("act one");
        client.write_all(&a1).expect("write act one");
        let mut r1 = [0u8; ACT_ONE_LEN];
        server.read_exact(&mut r1).expect("read act one");
        let (a2, bob) = Responder::new(bob)
            .and_then(|r| r.read_act_one(&r1))
            .expect("act two");
        server.write_all(&a2).expect("write act two");
        let mut r2 = [0u8; ACT_TWO_LEN];
        client.read_exact(&mut r2).expect("read act two");
        let (a3, session) = alice.read_act_two(&r2).expect("act three");
        client.write_all(&a3).expect("write act three");
        let mut r3 = [0u8; ACT_THREE_LEN];
        server.read_exact(&mut r3).expect("read act three");
        black_box((bob.read_act_three(&r3).expect("session"), session));
        // The client closes first, as ours do.
        drop(client);
        drop(server);
    })
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
/// they took (CPU: of every thread of the process, the runtime's and this
/// one) and the dials that failed.
fn ours(
    rt: &Runtime,
    addr: SocketAddr,
    server: PublicKey,
    kind: Clients,
    clients: u64,
    n: u64,
    keys: &[NodeKeyPair],
) -> (Took, u64) {
    let remaining = Arc::new(AtomicI64::new(n as i64));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu = cpu_time("self");
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for local in &keys[..clients as usize] {
            let local = local.clone();
            let (remaining, failed) = (Arc::clone(&remaining), Arc::clone(&failed));
            tasks.spawn(async move {
                let config = DialConfig::default();
                let cancel = CancellationToken::new();
                while remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
                    let ok = match kind {
                        Clients::Dial => dial(addr, &local, &server, &config, &cancel)
                            .await
                            .map(|conn| drop(black_box(conn)))
                            .is_ok(),
                        Clients::Bare => bare_client(addr, &local, &server).await,
                    };
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    let took = Took {
        wall: start.elapsed(),
        cpu: cpu_time("self").saturating_sub(cpu),
    };
    (took, failed.load(Ordering::Relaxed))
}

/// The clients of [`ours`]: `brontide::dial`, or bare ones.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clients {
    /// `brontide::dial` with its defaults, as a node dials.
    Dial,
    /// [`bare_client`].
    Bare,
}

/// One bare client's handshake: a plain tokio connect and the sans-IO
/// initiator, nothing else.
async fn bare_client(addr: SocketAddr, local: &NodeKeyPair, server: &PublicKey) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let Ok((act_one, initiator)) = Initiator::new(local, server).and_then(Initiator::act_one)
    else {
        return false;
    };
    if stream.write_all(&act_one).await.is_err() {
        return false;
    }
    let mut act_two = [0u8; ACT_TWO_LEN];
    if stream.read_exact(&mut act_two).await.is_err() {
        return false;
    }
    let Ok((act_three, session)) = initiator.read_act_two(&act_two) else {
        return false;
    };
    black_box(session);
    stream.write_all(&act_three).await.is_ok()
}

/// A bare tokio server on 127.0.0.1 (the same accept queue as the
/// listener's): accept, one task per connection running the sans-IO
/// responder with the listener's one trick for the socket (act one read
/// with room behind it), `TCP_NODELAY` on; no bound, timeout, event or
/// counter. Stops with `stop`.
fn bare_server(rt: &Runtime, stop: &CancellationToken) -> SocketAddr {
    let server = key(1_000_000);
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let addr = socket.local_addr().expect("local address");
    let stop = stop.clone();
    rt.spawn(async move {
        let listener = socket.listen(brontide::LISTEN_BACKLOG).expect("listen");
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = stop.cancelled() => break,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                // Act one read with room behind it, as ours is (a short
                // read spares act three's read a try on an empty socket).
                let mut first = [0u8; ACT_ONE_LEN + ACT_THREE_LEN];
                let mut n = 0;
                while n < ACT_ONE_LEN {
                    match stream.read(&mut first[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(got) => n += got,
                    }
                }
                let Ok((act_two, responder)) =
                    Responder::new(&server).and_then(|r| r.read_act_one(&first[..ACT_ONE_LEN]))
                else {
                    return;
                };
                if stream.write_all(&act_two).await.is_err() {
                    return;
                }
                let mut act_three = [0u8; ACT_THREE_LEN];
                let early = n - ACT_ONE_LEN;
                act_three[..early].copy_from_slice(&first[ACT_ONE_LEN..n]);
                if stream.read_exact(&mut act_three[early..]).await.is_ok() {
                    black_box(responder.read_act_three(&act_three).ok());
                }
            });
        }
    });
    addr
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
        b.iter_custom(|iters| floor(iters, &alice, &bob).wall)
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
                let (took, failed) =
                    ours(&rt, t.addr, t.server, Clients::Dial, clients, iters, &keys);
                failed_total.fetch_add(failed, Ordering::Relaxed);
                took.wall
            })
        });
        // Paired: batches of the five workloads (`OURS` .. `BARE_TOKIO`),
        // in an order that rotates every round.
        let bare_addr = bare_server(&rt, &t.stop);
        let bare_key = key(1_000_000).public_key();
        let bare_failed = AtomicU64::new(0);
        let batch = (clients * BATCH_PER_CLIENT).max(400);
        let mut rounds: Vec<[Took; WORKLOADS]> = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            let mut took = [Took {
                wall: Duration::ZERO,
                cpu: Duration::ZERO,
            }; WORKLOADS];
            for k in 0..WORKLOADS {
                let which = (round + k) % WORKLOADS;
                let (addr, server, kind, failures) = match which {
                    OURS => (t.addr, t.server, Clients::Dial, &failed_total),
                    OURS_BARE_CLIENTS => (t.addr, t.server, Clients::Bare, &failed_total),
                    BARE_TOKIO => (bare_addr, bare_key, Clients::Bare, &bare_failed),
                    FLOOR => {
                        took[which] = floor(batch, &alice, &bob);
                        continue;
                    }
                    _ => {
                        took[which] = tcp_floor(batch, &alice, &bob);
                        continue;
                    }
                };
                let (time, failed) = ours(&rt, addr, server, kind, clients, batch, &keys);
                failures.fetch_add(failed, Ordering::Relaxed);
                took[which] = time;
            }
            rounds.push(took);
        }
        // The median over rounds of `f(the round's five times)`.
        let median = |f: &dyn Fn(&[Took; WORKLOADS]) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[ROUNDS / 2]
        };
        let wall = |i: usize| move |r: &[Took; WORKLOADS]| r[i].wall.as_secs_f64();
        let cpu = |i: usize| move |r: &[Took; WORKLOADS]| r[i].cpu.as_secs_f64();
        let per_s = |i: usize| batch as f64 / median(&wall(i));
        let cpu_us = |i: usize| median(&cpu(i)) * 1e6 / batch as f64;
        let ratio = |i: usize| median(&|r| wall(FLOOR)(r) / wall(i)(r));
        let stats = t.monitor.stats();
        println!(
            "PAIRED listener {name} {clients} clients: ours {:.0} handshakes/s, \
             floor {:.0} handshakes/s, ratio {:.3} (median of per-round floor/ours); \
             ours with bare clients {:.0} handshakes/s, ratio {:.3}; \
             bare tokio {:.0} handshakes/s, ratio {:.3}; \
             floor over TCP {:.0} handshakes/s, ratio {:.3}; \
             CPU per handshake: ours {:.0} us, ours with bare clients {:.0} us, \
             bare tokio {:.0} us, floor over TCP {:.0} us, floor {:.0} us; \
             honest dials failed: {} (bare tokio: {}); \
             listener: {} accepted, {} established, {} failed ({} evicted, {} timed out)",
            per_s(OURS),
            per_s(FLOOR),
            ratio(OURS),
            per_s(OURS_BARE_CLIENTS),
            ratio(OURS_BARE_CLIENTS),
            per_s(BARE_TOKIO),
            ratio(BARE_TOKIO),
            per_s(TCP_FLOOR),
            ratio(TCP_FLOOR),
            cpu_us(OURS),
            cpu_us(OURS_BARE_CLIENTS),
            cpu_us(BARE_TOKIO),
            cpu_us(TCP_FLOOR),
            cpu_us(FLOOR),
            failed_total.load(Ordering::Relaxed),
            bare_failed.load(Ordering::Relaxed),
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
