//! Issue 16: a node killed with SIGKILL at a random moment, while 1,000
//! `connect(peer, perm)` calls are under way (32 at a time), loses no perm
//! peer whose `connect` had returned: after the restart each is there,
//! whole, and the server started from the file keeps it persistent.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use common::{Handler, Mock};
use peer_store::{PeerStore, SqliteStore};
use server::{Config, NetAddress, NodeAddr, Server};
use testkit::{Behavior, ManualClock, MockDialer};

/// Set in the child process: the store file it writes.
const CHILD: &str = "SERVER_CRASH_CHILD";
const PEERS: u32 = 1000;
const IN_FLIGHT: usize = 32;
const TEST: &str = "sigkill_keeps_every_perm_peer_whose_connect_returned";

fn key(n: u32) -> PublicKey {
    let mut secret = [0u8; 32];
    secret[0] = 1;
    secret[28..].copy_from_slice(&n.to_be_bytes());
    let secret = SecretKey::from_slice(&secret).expect("a valid scalar");
    PublicKey::from_secret_key(&Secp256k1::signing_only(), &secret)
}

fn addr(n: u32) -> NetAddress {
    let [_, b, c, d] = n.to_be_bytes();
    NetAddress::Ip(([10, b, c, d], 9735).into())
}

async fn open(path: &std::path::Path) -> Server<Mock, ManualClock, Handler> {
    let clock = ManualClock::new();
    let dialer = MockDialer::new(clock.clone());
    // No dial ends: only the store is exercised.
    dialer.set_fallback(Behavior::Hang);
    let store = SqliteStore::<NetAddress>::open(path, Default::default())
        .await
        .expect("the store opens");
    Server::open(
        key(PEERS + 1),
        Config::default(),
        Mock(dialer),
        clock,
        Handler::default(),
        store,
    )
    .await
    .expect("the server opens")
}

/// The child: connects the peers with `perm`, 32 calls at a time, and
/// prints each peer as soon as its `connect` has returned.
fn child(path: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let server = open(path.as_ref()).await;
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..PEERS {
            let permit = Arc::clone(&slots).acquire_owned().await.expect("open");
            let (server, acks) = (server.clone(), acks.clone());
            tokio::spawn(async move {
                let node = NodeAddr::new(key(n), addr(n));
                server.connect(node, true).await.expect("written");
                let _ = acks.send(n);
                drop(permit);
            });
            while let Ok(n) = acked.try_recv() {
                ack(n);
            }
        }
        drop(acks);
        while let Some(n) = acked.recv().await {
            ack(n);
        }
    });
}

fn ack(n: u32) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {n}").expect("stdout");
    out.flush().expect("stdout");
}

/// When the parent kills the child: after how many acknowledgements, then
/// after how many microseconds more (so the kill falls anywhere in a
/// write: before, during or after its commit, or before the print).
fn kill_at(seed: u64) -> (usize, Duration) {
    let z = backoff::SplitMix64::new(seed).next_u64();
    let after = 1 + (z % u64::from(PEERS - 1)) as usize;
    (after, Duration::from_micros((z >> 32) % 8000))
}

#[test]
fn sigkill_keeps_every_perm_peer_whose_connect_returned() {
    if let Ok(path) = std::env::var(CHILD) {
        child(&path);
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ids: HashMap<PublicKey, u32> = (0..PEERS).map(|n| (key(n), n)).collect();
    for seed in 1..=6 {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("peers.sqlite");
        let mut process = Command::new(std::env::current_exe().expect("the test binary"))
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the child starts");
        let stdout = process.stdout.take().expect("piped");
        let (target, delay) = kill_at(seed);
        let mut acknowledged = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("a line");
            // The first follows the harness's "test ... " on the same line.
            let Some(at) = line.find("ACK ") else {
                continue;
            };
            let n: u32 = line[at + 4..].parse().expect("a peer number");
            acknowledged.push(n);
            if acknowledged.len() == target {
                // Spin rather than sleep: only where the kill lands depends
                // on it, never the verdict.
                let start = Instant::now();
                while start.elapsed() < delay {
                    std::hint::spin_loop();
                }
                process.kill().expect("SIGKILL");
            }
        }
        let status = process.wait().expect("the child ends");
        assert_eq!(status.signal(), Some(9), "seed {seed}: {status:?}");
        assert!(acknowledged.len() >= target, "seed {seed}");

        let (stored, restarted) = runtime.block_on(async {
            let store = SqliteStore::<NetAddress>::open(&path, Default::default())
                .await
                .expect("the file opens after the crash");
            let peers = store.load().await.expect("loads").peers;
            store.close().await.expect("closes");
            let server = open(&path).await;
            let persistent: Vec<bool> = (acknowledged.iter())
                .map(|&n| server.persistence(&key(n)) == Some(true))
                .collect();
            server.shutdown().await;
            (peers, persistent)
        });
        let mut found = vec![false; PEERS as usize];
        for record in &stored {
            let n = *ids
                .get(&record.id)
                .unwrap_or_else(|| panic!("seed {seed}: an unknown peer {}", record.id));
            assert!(record.reason.user_asked, "seed {seed}: peer {n}");
            assert_eq!(
                record.user_addrs,
                [addr(n)],
                "seed {seed}: peer {n} not whole"
            );
            found[n as usize] = true;
        }
        for &n in &acknowledged {
            assert!(found[n as usize], "seed {seed}: acknowledged peer {n} lost");
        }
        assert!(
            restarted.iter().all(|p| *p),
            "seed {seed}: not persistent after restart"
        );
        // At most the calls under way at the kill were written unacknowledged.
        assert!(
            stored.len() <= acknowledged.len() + IN_FLIGHT,
            "seed {seed}"
        );
        eprintln!(
            "seed {seed}: killed after {} acknowledged, {} stored",
            acknowledged.len(),
            stored.len()
        );
    }
}
