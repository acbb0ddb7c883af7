//! The registry writing through its store (issue 16), each figure beside
//! the same operation on the in-memory registry (`Server::new`, no store)
//! and on `MemoryStore` (the write path without a file), in the same run:
//!
//! - one `connect(peer, perm)` until it returns, i.e. until the change is
//!   durable (one commit, one fsync, for SQLite);
//! - a burst of 10,000 concurrent `connect(perm)` calls (10,000 tasks on a
//!   2-thread runtime) until the last returns, and how many SQLite commits
//!   (WAL fsyncs) it took: a line starting `SERVER_STORE`;
//! - startup of 10,000 stored peers: `Server::open` on a file holding them
//!   (every field set) until it returns with every worker planned, beside
//!   `Server::new` plus `startup` of the same 10,000 peers from memory.
//!
//! The dialer never completes (no dial ends), so only the registry and the
//! store are measured. The SQLite files live under `CARGO_TARGET_TMPDIR`
//! (the target directory's disk, not a tmpfs).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use conn_worker::{dial_fn, FnDialer, TokioClock};
use criterion::{criterion_main, BatchSize, Criterion, SamplingMode};
use peer_store::{Change, MemoryStore, PeerStore, SqliteStore};
use server::{
    Config, Direction, DisconnectReason, NetAddress, NodeAddr, PeerHandler, Server, StartupPeer,
};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const PEERS: usize = 10_000;

/// Holds each connection until the server cancels it (none arrives here).
struct Hold;

impl PeerHandler<()> for Hold {
    async fn run(
        &self,
        _: PublicKey,
        (): (),
        _: Direction,
        cancel: CancellationToken,
    ) -> DisconnectReason {
        cancel.cancelled().await;
        DisconnectReason::Cancelled
    }
}

type Hang = FnDialer<
    NodeAddr,
    fn(NodeAddr, CancellationToken) -> std::future::Pending<Result<(), Infallible>>,
>;

fn hang() -> Hang {
    fn never(_: NodeAddr, _: CancellationToken) -> std::future::Pending<Result<(), Infallible>> {
        std::future::pending()
    }
    dial_fn(never as fn(_, _) -> _)
}

type Node = Server<Hang, TokioClock, Hold>;

fn addr(i: usize, slot: u16) -> NetAddress {
    let [_, b, c, d] = (i as u32).to_be_bytes();
    NetAddress::Ip(([10, b, c, d], 9735 + slot).into())
}

fn local() -> PublicKey {
    benches::node_ids(1)[0]
}

fn config() -> Config {
    let mut c = Config::default();
    c.worker = c.worker.with_seed(7);
    c
}

fn sqlite(rt: &Runtime, dir: &tempfile::TempDir, name: &str) -> SqliteStore<NetAddress> {
    rt.block_on(SqliteStore::open(dir.path().join(name), Default::default()))
        .expect("the store opens")
}

fn open<S: PeerStore<Addr = NetAddress>>(rt: &Runtime, store: S) -> Node {
    rt.block_on(Server::open(
        local(),
        config(),
        hang(),
        TokioClock,
        Hold,
        store,
    ))
    .expect("the server opens")
}

fn connect_one(c: &mut Criterion) {
    let rt = benches::two_thread_runtime();
    let dir = benches::target_tmp_dir(env!("CARGO_TARGET_TMPDIR"));
    let peers = benches::node_ids(1001)[1..].to_vec();
    let on_sqlite = open(&rt, sqlite(&rt, &dir, "one.sqlite"));
    let on_memory = open(&rt, MemoryStore::new());
    let in_memory: Node =
        rt.block_on(async { Server::new(local(), config(), hang(), TokioClock, Hold) });
    let mut group = c.benchmark_group("server_store_connect_perm");
    for (name, server) in [
        ("sqlite", &on_sqlite),
        ("memory_store", &on_memory),
        ("no_store", &in_memory),
    ] {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                // 1,000 peers in turn, each at one of two addresses: every
                // call writes (the user's address goes first).
                i += 1;
                let peer = peers[i % peers.len()];
                let node = NodeAddr::new(peer, addr(i % peers.len(), (i / peers.len() % 2) as u16));
                rt.block_on(server.connect(node, true))
                    .expect("perm connect");
            })
        });
    }
    group.finish();
    for s in [on_sqlite, on_memory, in_memory] {
        rt.block_on(s.shutdown());
    }
}

async fn burst(server: &Node, keys: &[PublicKey]) {
    let calls: Vec<_> = (keys.iter().enumerate())
        .map(|(i, &k)| {
            let server = server.clone();
            tokio::spawn(async move { server.connect(NodeAddr::new(k, addr(i, 0)), true).await })
        })
        .collect();
    for c in calls {
        c.await.expect("no panic").expect("perm connect");
    }
}

fn connect_burst(c: &mut Criterion) {
    let rt = benches::two_thread_runtime();
    let dir = benches::target_tmp_dir(env!("CARGO_TARGET_TMPDIR"));
    let keys = benches::node_ids(PEERS + 1)[1..].to_vec();
    let mut group = c.benchmark_group("server_store_burst_10000_perm_connects");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let mut round = 0;
    group.bench_function("sqlite", |b| {
        b.iter_batched(
            || {
                // A new file and server each time: every burst creates
                // 10,000 peers.
                round += 1;
                let store = sqlite(&rt, &dir, &format!("burst{round}.sqlite"));
                (open(&rt, store.clone()), store)
            },
            |(server, store)| {
                let start = Instant::now();
                rt.block_on(burst(&server, &keys));
                let stats = store.stats();
                println!(
                    "SERVER_STORE burst of {PEERS} perm connects: {:.1?}, {} commits (WAL fsyncs)",
                    start.elapsed(),
                    stats.commits,
                );
                (server, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("memory_store", |b| {
        b.iter_batched(
            || open(&rt, MemoryStore::new()),
            |server| {
                rt.block_on(burst(&server, &keys));
                server
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("no_store", |b| {
        b.iter_batched(
            || rt.block_on(async { Server::new(local(), config(), hang(), TokioClock, Hold) }),
            |server: Node| {
                rt.block_on(burst(&server, &keys));
                server
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// A stored peer with every field set.
fn full(peer: PublicKey, i: usize) -> Vec<Change<NetAddress>> {
    benches::stored_peer(peer, i, |slot| addr(i, slot))
}

fn startup(c: &mut Criterion) {
    let rt = benches::two_thread_runtime();
    let dir = benches::target_tmp_dir(env!("CARGO_TARGET_TMPDIR"));
    let keys = benches::node_ids(PEERS + 1)[1..].to_vec();
    let all: Vec<_> = (keys.iter().enumerate())
        .flat_map(|(i, &k)| full(k, i))
        .collect();
    let file = sqlite(&rt, &dir, "startup.sqlite");
    rt.block_on(file.apply(all.clone())).expect("fill");
    rt.block_on(file.close()).expect("close");
    let memory = MemoryStore::new();
    rt.block_on(memory.apply(all)).expect("fill");
    let from_memory: Vec<StartupPeer> = (keys.iter().enumerate())
        .map(|(i, &k)| {
            let mut p = StartupPeer::new(k, vec![addr(i, 2), addr(i, 3), addr(i, 4)], true);
            p.user_addrs = vec![addr(i, 0), addr(i, 1)];
            p.last_good = Some(addr(i, 1));
            // Its stored connection lasted the stable 10 minutes: relaxed.
            p.backoff = None;
            p
        })
        .collect();
    let mut group = c.benchmark_group("server_store_startup_10000_peers");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("sqlite_open_and_start", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Opening the file (its check reads every page) is part of
                // a node's startup.
                let start = Instant::now();
                let store = sqlite(&rt, &dir, "startup.sqlite");
                let server = open(&rt, store.clone());
                total += start.elapsed();
                // The file is free again before the next open.
                rt.block_on(server.shutdown());
                drop(server);
                rt.block_on(store.close()).expect("close");
            }
            total
        })
    });
    group.bench_function("memory_store_start", |b| {
        b.iter_batched(
            || (),
            |()| open(&rt, memory.clone()),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("no_store_startup", |b| {
        b.iter_batched(
            || from_memory.clone(),
            |peers| {
                rt.block_on(async {
                    let server: Node = Server::new(local(), config(), hang(), TokioClock, Hold);
                    server.startup(peers);
                    server
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group! {
        name = benches;
        config = benches::criterion();
        targets = super::connect_one, super::connect_burst, super::startup
    }
}

criterion_main!(group::benches);
