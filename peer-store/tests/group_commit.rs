//! Queued applies share one commit; one failing call in a group fails
//! alone.
#![cfg(feature = "sqlite")]

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{ban, changes_for, full_record, key};
use peer_store::{Change, PeerStore, SqliteConfig, SqliteStore, StoreError};

type Applying = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// Sends every call (the first poll of `apply` queues its request) while
/// another connection holds the write lock, so the store's thread cannot
/// commit any of them until `release` is called; then awaits them all.
async fn queued_while_locked(
    path: &Path,
    store: &SqliteStore<SocketAddr>,
    calls: Vec<Vec<Change<SocketAddr>>>,
) -> Vec<Result<(), StoreError>> {
    let blocker = rusqlite::Connection::open(path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut pending: Vec<Applying> = calls
        .into_iter()
        .map(|changes| {
            let store = store.clone();
            Box::pin(async move { store.apply(changes).await }) as Applying
        })
        .collect();
    let mut cx = Context::from_waker(Waker::noop());
    for call in &mut pending {
        // Cannot be ready: the lock is held.
        assert!(matches!(call.as_mut().poll(&mut cx), Poll::Pending));
    }
    blocker.execute_batch("COMMIT").unwrap();
    let mut results = Vec::new();
    for call in pending {
        results.push(call.await);
    }
    results
}

fn config() -> SqliteConfig {
    // Long enough never to expire while the test holds the lock.
    SqliteConfig::default()
        .with_busy_timeout(Duration::from_secs(600))
        .unwrap()
}

#[tokio::test]
async fn queued_applies_are_committed_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    let store = SqliteStore::open(&path, config()).await.unwrap();
    let calls = (0..50).map(|n| changes_for(&full_record(n))).collect();
    let results = queued_while_locked(&path, &store, calls).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = store.stats();
    assert_eq!(stats.applied, 50);
    // The thread may have taken the first call alone before the rest were
    // queued; all the others share one transaction.
    assert!(stats.commits <= 2, "{stats:?}");
    assert_eq!(store.load().await.unwrap().peers.len(), 50);
}

#[tokio::test]
async fn a_failing_call_in_a_group_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    let store = SqliteStore::open(&path, config()).await.unwrap();
    // A trigger that refuses one ban: a write that fails inside the store's
    // transaction, after its checks.
    let poison = key(999);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON ban WHEN NEW.peer = '{poison}'
             BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ))
        .unwrap();
    let mut calls: Vec<_> = (0..10).map(|n| changes_for(&full_record(n))).collect();
    let mut poisoned = changes_for(&full_record(999));
    poisoned.push(Change::Ban(ban(999)));
    calls.insert(5, poisoned);
    let results = queued_while_locked(&path, &store, calls).await;
    for (i, result) in results.iter().enumerate() {
        if i == 5 {
            assert!(matches!(result, Err(StoreError::Sqlite(_))), "{result:?}");
        } else {
            assert!(result.is_ok(), "call {i}: {result:?}");
        }
    }
    let stats = store.stats();
    assert_eq!(
        (stats.applied, stats.failed, stats.retried_groups),
        (10, 1, 1)
    );
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.peers.len(), 10);
    assert!(snapshot.peers.iter().all(|p| p.id != poison));
    assert!(snapshot.bans.is_empty());
}

/// Generation `g` of peer `p`'s record: every field says `g`.
fn generation(p: u32, g: u32) -> Vec<Change<SocketAddr>> {
    let mut record = full_record(p);
    let stamp = |slot| common::addr(g, slot);
    record.user_addrs = vec![stamp(0), stamp(1)];
    record.advertised_addrs = vec![stamp(2)];
    if let Some(connection) = &mut record.last_connection {
        connection.addr = stamp(3);
        connection.lasted = Some(Duration::from_secs(u64::from(g)));
    }
    record.backoff = Some(Duration::from_secs(u64::from(g)));
    changes_for(&record)
}

/// Which generation a loaded record is, if all its fields agree.
fn whole_generation(record: &peer_store::PeerRecord<SocketAddr>) -> Option<u32> {
    let g = u32::try_from(record.backoff?.as_secs()).ok()?;
    let expected = generation(0, g);
    let Change::SetUserAddrs { addrs, .. } = &expected[1] else {
        return None;
    };
    let lasted = record.last_connection.as_ref()?.lasted?;
    (record.user_addrs == *addrs && lasted.as_secs() == u64::from(g)).then_some(g)
}

#[test]
fn loads_between_concurrent_applies_never_see_half_a_batch() {
    const WRITERS: u32 = 8;
    const GENERATIONS: u32 = 30;
    for seed in 0..4 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::<SocketAddr>::open(dir.path().join("p.sqlite"), config())
                .await
                .unwrap();
            let writers: Vec<_> = (0..WRITERS)
                .map(|p| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for g in 1..=GENERATIONS {
                            // Writers start at different generations per seed
                            // so that the interleaving differs.
                            let g = (g + seed * p) % GENERATIONS + 1;
                            store.apply(generation(p, g)).await.unwrap();
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            let loader = {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut loads = 0;
                    for _ in 0..40 {
                        for record in store.load().await.unwrap().peers {
                            assert!(
                                whole_generation(&record).is_some(),
                                "half a batch: {record:?}"
                            );
                        }
                        loads += 1;
                        tokio::task::yield_now().await;
                    }
                    loads
                })
            };
            for writer in writers {
                writer.await.unwrap();
            }
            assert_eq!(loader.await.unwrap(), 40);
            let last = store.load().await.unwrap().peers;
            assert_eq!(last.len(), WRITERS as usize);
            for record in last {
                let p = (0..WRITERS).find(|&p| key(p) == record.id).unwrap();
                let g = (GENERATIONS + seed * p) % GENERATIONS + 1;
                assert_eq!(whole_generation(&record), Some(g), "seed {seed}, peer {p}");
            }
        });
    }
}

#[tokio::test]
async fn a_lock_held_past_the_timeout_fails_the_queued_calls_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    let short = SqliteConfig::default()
        .with_busy_timeout(Duration::from_millis(50))
        .unwrap();
    let store = SqliteStore::open(&path, short).await.unwrap();
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.apply(changes_for(&full_record(n))).await })
        })
        .collect();
    for call in calls {
        let result = call.await.unwrap();
        assert!(
            matches!(result, Err(StoreError::Locked { .. })),
            "{result:?}"
        );
    }
    let stats = store.stats();
    // Not retried call by call: that would wait the timeout once per call.
    assert_eq!(
        (stats.failed, stats.retried_groups, stats.commits),
        (20, 0, 0)
    );
    blocker.execute_batch("COMMIT").unwrap();
    store.apply(changes_for(&full_record(1))).await.unwrap();
}
