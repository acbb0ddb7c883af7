//! A process killed with SIGKILL at a random moment loses no acknowledged
//! change and leaves no half-written record.
#![cfg(feature = "sqlite")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{changes_for, full_record, key};
use peer_store::{PeerStore, SqliteConfig, SqliteStore};

/// Set in the child process: the store file it writes.
const CHILD: &str = "PEER_STORE_CRASH_CHILD";
const PEERS: u32 = 1000;
const TEST: &str = "sigkill_keeps_every_acknowledged_peer";

/// The child: adds the peers one `apply` at a time and prints each one as
/// soon as its `apply` has returned.
fn child(path: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::<SocketAddr>::open(path, SqliteConfig::default())
            .await
            .unwrap();
        let mut out = std::io::stdout().lock();
        for n in 0..PEERS {
            store.apply(changes_for(&full_record(n))).await.unwrap();
            writeln!(out, "ACK {n} {}", key(n)).unwrap();
            out.flush().unwrap();
        }
    });
}

/// SplitMix64 of `seed`.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// When the parent kills the child, for `seed`: after how many
/// acknowledgements, then after how many microseconds more (up to a few
/// commits' time, so that the kill falls anywhere in an `apply`: before,
/// during or after its commit, or between the commit and the print).
fn kill_at(seed: u64) -> (u32, Duration) {
    let z = mix(seed);
    let after = 1 + (z % u64::from(PEERS - 1)) as u32;
    (after, Duration::from_micros((z >> 32) % 8000))
}

#[test]
fn sigkill_keeps_every_acknowledged_peer() {
    if let Ok(path) = std::env::var(CHILD) {
        child(&path);
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ids: std::collections::HashMap<_, _> = (0..PEERS).map(|n| (key(n), n)).collect();
    for seed in 1..=8 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.sqlite");
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let (target, delay) = kill_at(seed);
        let mut acknowledged = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            // The first follows the harness's "test ... " on the same line.
            let Some(at) = line.find("ACK ") else {
                continue; // the test harness's own lines
            };
            let ack = &line[at + 4..];
            let (n, id) = ack.split_once(' ').unwrap();
            let n: u32 = n.parse().unwrap();
            assert!(
                ids.get(&id.parse().unwrap()) == Some(&n),
                "seed {seed}: id of {n}"
            );
            assert_eq!(n as usize, acknowledged.len(), "out of order");
            acknowledged.push(n);
            if n + 1 == target {
                // Spin rather than sleep: only where the kill lands depends
                // on it, never the verdict.
                let start = Instant::now();
                while start.elapsed() < delay {
                    std::hint::spin_loop();
                }
                // SIGKILL; the lines it printed before dying are still read.
                process.kill().unwrap();
            }
        }
        let status = process.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "seed {seed}: {status:?}");
        let acked = acknowledged.len() as u32;
        assert!(acked >= target, "seed {seed}");

        let loaded = runtime.block_on(async {
            let store = SqliteStore::<SocketAddr>::open(&path, SqliteConfig::default())
                .await
                .unwrap();
            store.load().await.unwrap().peers
        });
        // Every acknowledged peer, and at most the one whose `apply` was
        // under way, each whole.
        assert!(
            loaded.len() as u32 == acked || loaded.len() as u32 == acked + 1,
            "seed {seed}: {} loaded, {acked} acknowledged",
            loaded.len()
        );
        let mut found = vec![false; PEERS as usize];
        for record in &loaded {
            let n = *ids.get(&record.id).unwrap_or_else(|| {
                panic!("seed {seed}: an unknown peer {}", record.id);
            });
            assert!(n <= acked, "seed {seed}: peer {n} was never sent");
            assert_eq!(*record, full_record(n), "seed {seed}: peer {n} not whole");
            found[n as usize] = true;
        }
        assert!(
            acknowledged.iter().all(|&n| found[n as usize]),
            "seed {seed}"
        );
        eprintln!(
            "seed {seed}: killed after {acked} acknowledged, {} stored",
            loaded.len()
        );
    }
}
