//! The peer store, the SQLite store beside `MemoryStore` (the in-memory
//! floor: the same semantics and checks, no file) in the same run:
//!
//! - `apply` of one perm connect (`Persist` and `SetUserAddrs`): latency,
//!   one commit and its fsync each; beside it the disk's floor (append 200
//!   bytes to a file and fsync it), also paired with it (a line starting
//!   `PAIRED`), as fsync latency on a shared disk moves by 10×;
//! - a burst of 10,000 concurrent perm connects (10,000 tasks calling
//!   `apply` at once on a multi-thread runtime): time for the whole burst,
//!   and how many commits (fsyncs of the WAL) it took, printed as a line
//!   starting `STORE`;
//! - `load` of 10,000 stored peers, each with every field set (two user
//!   addresses, three advertised, a last connection, a backoff level): the
//!   startup read; beside it, parsing the 10,000 node ids alone (what the
//!   load spends most of its time on); and, once, opening that file.
//!
//! The SQLite file lives under `CARGO_TARGET_TMPDIR`, on the disk the
//! target directory is on (not a tmpfs), so fsyncs cost what they cost there.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use benches::{paired, report, wanted};
use bitcoin::secp256k1::PublicKey;
use criterion::{criterion_main, BatchSize, Criterion, SamplingMode};
use peer_store::{Change, MemoryStore, PeerStore, Reason, SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;

const PEERS: usize = 10_000;

fn addr(i: usize, slot: u16) -> SocketAddr {
    let [_, b, c, d] = (i as u32).to_be_bytes();
    SocketAddr::from(([10, b, c, d], 9735 + slot))
}

/// `connect(peer, perm)` with one address: what the server writes.
fn perm_connect(peer: PublicKey, i: usize) -> Vec<Change<SocketAddr>> {
    vec![
        Change::Persist {
            peer,
            reason: Reason {
                user_asked: true,
                has_channels: false,
            },
        },
        Change::SetUserAddrs {
            peer,
            addrs: vec![addr(i, 0)],
        },
    ]
}

/// Every field of peer `i`.
fn full(peer: PublicKey, i: usize) -> Vec<Change<SocketAddr>> {
    benches::stored_peer(peer, i, |slot| addr(i, slot))
}

fn open_sqlite(rt: &Runtime, dir: &tempfile::TempDir, name: &str) -> SqliteStore<SocketAddr> {
    rt.block_on(SqliteStore::open(
        dir.path().join(name),
        SqliteConfig::default(),
    ))
    .expect("open the bench store")
}

fn apply_one(c: &mut Criterion) {
    let rt = benches::two_thread_runtime();
    let dir = benches::target_tmp_dir(env!("CARGO_TARGET_TMPDIR"));
    let keys = benches::node_ids(PEERS);
    let sqlite = open_sqlite(&rt, &dir, "apply_one.sqlite");
    let memory = MemoryStore::new();
    let mut group = c.benchmark_group("store_apply_perm_connect");
    let mut i = 0;
    group.bench_function("sqlite", |b| {
        b.iter(|| {
            i = (i + 1) % PEERS;
            rt.block_on(sqlite.apply(perm_connect(keys[i], i)))
                .expect("apply")
        })
    });
    group.bench_function("memory", |b| {
        b.iter(|| {
            i = (i + 1) % PEERS;
            rt.block_on(memory.apply(perm_connect(keys[i], i)))
                .expect("apply")
        })
    });
    // The disk's floor: append a record-sized write to a file and fsync it,
    // what one durable commit cannot go below.
    let mut raw = std::fs::File::create(dir.path().join("raw")).expect("a raw file");
    let mut fsync = || {
        raw.write_all(&[7u8; 200]).expect("write");
        raw.sync_all().expect("fsync");
    };
    group.bench_function("floor_write_fsync", |b| b.iter(&mut fsync));
    group.finish();
    if wanted("store_apply_perm_connect") {
        // Paired with the fsync floor: the disk's noise hits both alike.
        let p = paired(
            21,
            10,
            || {
                i = (i + 1) % PEERS;
                rt.block_on(sqlite.apply(perm_connect(keys[i], i)))
                    .expect("apply")
            },
            &mut fsync,
        );
        report("store_apply_perm_connect sqlite vs write+fsync", &p);
    }
}

/// 10,000 tasks each applying one perm connect at once; resolves when all
/// have been answered.
async fn burst<S>(store: &S, keys: &[PublicKey])
where
    S: PeerStore<Addr = SocketAddr> + Clone,
{
    let tasks: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, &peer)| {
            let store = store.clone();
            tokio::spawn(async move { store.apply(perm_connect(peer, i)).await.is_ok() })
        })
        .collect();
    for task in tasks {
        assert!(task.await.expect("the task ends"), "an apply failed");
    }
}

fn apply_burst(c: &mut Criterion) {
    let rt = benches::two_thread_runtime();
    let dir = benches::target_tmp_dir(env!("CARGO_TARGET_TMPDIR"));
    let keys = benches::node_ids(PEERS);
    let mut group = c.benchmark_group("store_burst_10000_perm_connects");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let mut round = 0;
    group.bench_function("sqlite", |b| {
        b.iter_batched(
            || {
                // A new file each time: every burst creates 10,000 peers.
                round += 1;
                open_sqlite(&rt, &dir, &format!("burst{round}.sqlite"))
            },
            |store| {
                let start = Instant::now();
                rt.block_on(burst(&store, &keys));
                let stats = store.stats();
                println!(
                    "STORE burst of {PEERS} applies: {:.1?}, {} commits (WAL fsyncs), {} applied",
                    start.elapsed(),
                    stats.commits,
                    stats.applied
                );
                store
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("memory", |b| {
        b.iter_batched(
            MemoryStore::new,
            |store| {
                rt.block_on(burst(&store, &keys));
                store
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let rt = benches::two_thread_runtime();
    let dir = benches::target_tmp_dir(env!("CARGO_TARGET_TMPDIR"));
    let keys = benches::node_ids(PEERS);
    let sqlite = open_sqlite(&rt, &dir, "load.sqlite");
    let memory = MemoryStore::new();
    let all: Vec<_> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, &k)| full(k, i))
        .collect();
    rt.block_on(sqlite.apply(all.clone())).expect("fill");
    rt.block_on(memory.apply(all)).expect("fill");
    let mut group = c.benchmark_group("store_load_10000_peers");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("sqlite", |b| {
        b.iter(|| {
            let snapshot = rt.block_on(sqlite.load()).expect("load");
            assert_eq!(snapshot.peers.len(), PEERS);
            snapshot
        })
    });
    group.bench_function("memory", |b| {
        b.iter(|| {
            let snapshot = rt.block_on(memory.load()).expect("load");
            assert_eq!(snapshot.peers.len(), PEERS);
            snapshot
        })
    });
    // Not a store: what any store that keeps node ids as text pays to parse
    // 10,000 of them back (secp256k1 decompresses each key).
    let texts: Vec<String> = keys.iter().map(ToString::to_string).collect();
    group.bench_function("parse_10000_ids_only", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|t| t.parse::<PublicKey>().expect("a node id"))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
    // Opening the file is part of startup too: it reads every page once.
    let start = Instant::now();
    let reopened = open_sqlite(&rt, &dir, "load.sqlite");
    println!(
        "STORE open of the 10,000-peer file (quick_check included): {:.1?}",
        start.elapsed()
    );
    drop(reopened);
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group! {
        name = benches;
        config = benches::criterion();
        targets = super::apply_one, super::apply_burst, super::load
    }
}

criterion_main!(group::benches);
