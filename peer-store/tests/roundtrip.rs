//! Every field survives a close and reopen; the SQLite store and the memory
//! store agree on every sequence of changes.
#![cfg(feature = "sqlite")]

mod common;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use common::{addr, ban, changes_for, full_record, key, sorted};
use peer_store::{
    Change, LastConnection, MemoryStore, PeerRecord, PeerStore, Reason, Snapshot, SqliteConfig,
    SqliteStore, StoreError,
};
use proptest::prelude::*;

async fn open(path: &std::path::Path) -> SqliteStore<SocketAddr> {
    SqliteStore::open(path, SqliteConfig::default())
        .await
        .expect("open the store")
}

#[tokio::test]
async fn every_field_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    let records: Vec<_> = (0..12).map(full_record).collect();
    let store = open(&path).await;
    for record in &records {
        store.apply(changes_for(record)).await.unwrap();
    }
    // Edge values: the first and last storable instants, a zero backoff, a
    // connection still live, empty address lists.
    let mut edge = PeerRecord::new(key(100), Reason::default());
    edge.last_connection = Some(LastConnection {
        addr: addr(100, 0),
        at: UNIX_EPOCH - Duration::from_nanos(i64::MAX as u64),
        lasted: None,
    });
    edge.backoff = Some(Duration::ZERO);
    store.apply(changes_for(&edge)).await.unwrap();
    let late = UNIX_EPOCH + Duration::from_nanos(i64::MAX as u64);
    let bans = vec![
        ban(3),
        ban(200),
        peer_store::Ban {
            peer: key(201),
            until: late,
        },
    ];
    store
        .apply(bans.iter().copied().map(Change::Ban).collect())
        .await
        .unwrap();
    store.close().await.unwrap();

    let store = open(&path).await;
    let snapshot = store.load().await.unwrap();
    let mut expected = records;
    expected.push(edge);
    let mut expected_bans = bans;
    expected_bans.sort_by_key(|b| b.peer.serialize());
    assert_eq!(snapshot, Snapshot::new(sorted(expected), expected_bans));
}

#[tokio::test]
async fn changes_to_a_peer_without_record_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("peers.sqlite")).await;
    let mut changes = changes_for(&full_record(1));
    changes.remove(0); // no Persist
    store.apply(changes).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Snapshot::default());
}

#[tokio::test]
async fn persist_again_keeps_the_other_fields_and_remove_keeps_the_ban() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("peers.sqlite")).await;
    let mut record = full_record(5);
    store.apply(changes_for(&record)).await.unwrap();
    let reason = Reason {
        user_asked: true,
        has_channels: true,
    };
    store
        .apply(vec![Change::Persist {
            peer: record.id,
            reason,
        }])
        .await
        .unwrap();
    record.reason = reason;
    assert_eq!(store.load().await.unwrap().peers, vec![record.clone()]);

    store
        .apply(vec![
            Change::Ban(ban(5)),
            Change::Remove { peer: record.id },
        ])
        .await
        .unwrap();
    let snapshot = store.load().await.unwrap();
    assert!(snapshot.peers.is_empty());
    assert_eq!(snapshot.bans, vec![ban(5)]);
    store
        .apply(vec![Change::Unban { peer: record.id }])
        .await
        .unwrap();
    assert_eq!(store.load().await.unwrap(), Snapshot::default());
}

#[tokio::test]
async fn bans_active_at_leaves_out_expired_ones() {
    let store = MemoryStore::<SocketAddr>::new();
    store
        .apply(vec![Change::Ban(ban(1)), Change::Ban(ban(2))])
        .await
        .unwrap();
    let snapshot = store.load().await.unwrap();
    let between = ban(1).until + Duration::from_nanos(1);
    let active: Vec<_> = snapshot.bans_active_at(between).copied().collect();
    assert_eq!(active, vec![ban(2)]);
}

/// An address whose text form does not parse back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OneWay;

impl fmt::Display for OneWay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one way")
    }
}

impl FromStr for OneWay {
    type Err = ();
    fn from_str(_: &str) -> Result<Self, ()> {
        Err(())
    }
}

#[tokio::test]
async fn unstorable_changes_are_refused_whole_by_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::<OneWay>::open(dir.path().join("p.sqlite"), SqliteConfig::default())
        .await
        .unwrap();
    let memory = MemoryStore::<OneWay>::new();
    let peer = key(1);
    let persist = Change::Persist {
        peer,
        reason: Reason::default(),
    };
    let far = UNIX_EPOCH + Duration::from_nanos(i64::MAX as u64) + Duration::from_nanos(1);
    let bad = [
        Change::SetUserAddrs {
            peer,
            addrs: vec![OneWay],
        },
        Change::SetBackoff {
            peer,
            level: Duration::MAX,
        },
        Change::Ban(peer_store::Ban { peer, until: far }),
    ];
    for change in bad {
        let changes = vec![persist.clone(), change];
        let s = sqlite.apply(changes.clone()).await;
        let m = memory.apply(changes).await;
        assert!(matches!(s, Err(StoreError::Unstorable(_))), "{s:?}");
        assert_eq!(s.unwrap_err().to_string(), m.unwrap_err().to_string());
    }
    // The Persist before each bad change was not applied either.
    assert_eq!(sqlite.load().await.unwrap(), Snapshot::default());
    assert_eq!(memory.load().await.unwrap(), Snapshot::default());
}

/// One change of the generated sequences: on a few peers, so that they
/// meet.
fn change() -> impl Strategy<Value = Change<SocketAddr>> {
    let peer = (0u32..4).prop_map(key);
    let addrs = prop::collection::vec((0u32..4, 0u16..4).prop_map(|(n, s)| addr(n, s)), 0..4);
    // Up to 544 years from 1970 either way: some beyond what is storable.
    let time = (-(1i64 << 34)..(1i64 << 34)).prop_map(|s| {
        if s >= 0 {
            UNIX_EPOCH + Duration::from_secs(s as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
        }
    });
    let duration =
        (0u64..u64::from(u32::MAX), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n));
    prop_oneof![
        (peer.clone(), any::<bool>(), any::<bool>()).prop_map(
            |(peer, user_asked, has_channels)| {
                Change::Persist {
                    peer,
                    reason: Reason {
                        user_asked,
                        has_channels,
                    },
                }
            }
        ),
        (peer.clone(), addrs.clone())
            .prop_map(|(peer, addrs)| Change::SetUserAddrs { peer, addrs }),
        (peer.clone(), addrs).prop_map(|(peer, addrs)| Change::SetAdvertisedAddrs { peer, addrs }),
        (
            peer.clone(),
            0u16..4,
            time.clone(),
            prop::option::of(duration.clone())
        )
            .prop_map(|(peer, slot, at, lasted)| Change::SetLastConnection {
                peer,
                connection: LastConnection {
                    addr: addr(0, slot),
                    at,
                    lasted
                },
            }),
        (peer.clone(), duration).prop_map(|(peer, level)| Change::SetBackoff { peer, level }),
        peer.clone().prop_map(|peer| Change::Remove { peer }),
        (peer.clone(), time).prop_map(|(peer, until)| Change::Ban(peer_store::Ban { peer, until })),
        peer.prop_map(|peer| Change::Unban { peer }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sqlite_and_memory_agree(batches in prop::collection::vec(prop::collection::vec(change(), 0..6), 1..8)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("peers.sqlite");
            let sqlite = open(&path).await;
            let memory = MemoryStore::new();
            for batch in batches {
                let s = sqlite.apply(batch.clone()).await.map_err(|e| e.to_string());
                let m = memory.apply(batch).await.map_err(|e| e.to_string());
                assert_eq!(s, m);
            }
            sqlite.close().await.unwrap();
            let reopened = open(&path).await;
            assert_eq!(reopened.load().await.unwrap(), memory.load().await.unwrap());
        });
    }
}

#[tokio::test]
async fn after_close_every_clone_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("peers.sqlite")).await;
    let clone = store.clone();
    store.apply(changes_for(&full_record(1))).await.unwrap();
    store.close().await.unwrap();
    let applied = clone.apply(changes_for(&full_record(2))).await;
    assert!(matches!(applied, Err(StoreError::Closed)), "{applied:?}");
    assert!(matches!(clone.load().await, Err(StoreError::Closed)));
    assert_eq!(clone.stats().applied, 1);
}

/// Set while `Fragile::from_str` panics.
static FRAGILE_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// An address type whose parser panics on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fragile(String);

impl fmt::Display for Fragile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Fragile {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        assert!(
            !FRAGILE_PANICS.load(std::sync::atomic::Ordering::SeqCst),
            "parser panics"
        );
        Ok(Fragile(s.to_owned()))
    }
}

#[tokio::test]
async fn a_panicking_address_parser_panics_the_caller_not_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::<Fragile>::open(dir.path().join("p.sqlite"), SqliteConfig::default())
        .await
        .unwrap();
    let peer = key(1);
    store
        .apply(vec![
            Change::Persist {
                peer,
                reason: Reason::default(),
            },
            Change::SetUserAddrs {
                peer,
                addrs: vec![Fragile("a".into())],
            },
        ])
        .await
        .unwrap();
    FRAGILE_PANICS.store(true, std::sync::atomic::Ordering::SeqCst);
    let loading = tokio::spawn({
        let store = store.clone();
        async move { store.load().await }
    });
    assert!(loading.await.unwrap_err().is_panic());
    FRAGILE_PANICS.store(false, std::sync::atomic::Ordering::SeqCst);
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.peers[0].user_addrs, [Fragile("a".into())]);
}

#[test]
fn a_busy_timeout_sqlite_cannot_take_is_refused() {
    let longest = Duration::from_millis(i32::MAX as u64);
    let config = SqliteConfig::default().with_busy_timeout(longest).unwrap();
    assert_eq!(config.busy_timeout(), longest);
    let refused = SqliteConfig::default().with_busy_timeout(longest + Duration::from_millis(1));
    assert!(
        matches!(refused, Err(StoreError::InvalidConfig(_))),
        "{refused:?}"
    );
}
