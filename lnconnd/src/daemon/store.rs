//! The daemon's persistence seam: the only place that knows where the
//! persistent peers and bans live.
//!
//! They live in `peers.sqlite` in the data directory, a
//! [`peer_store::SqliteStore`] (its crate docs describe the tables, which
//! the `sqlite3` tool reads while the daemon runs). [`Store::open`] loads
//! it at startup; each operation of the control API (`record_perm`,
//! `forget`, `ban`, `unban`) returns only once the store's `apply` has
//! made the change durable, or returns the error with nothing changed.
//! What the node learns about its stored peers (where a connection was
//! established and how long it lasted, the backoff level) is recorded as
//! it happens ([`Store::record`]). A copy of the records is kept in memory
//! for the control API to read without touching the file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use peer_store::{Ban, Change, LastConnection, PeerRecord, PeerStore, Reason, SqliteConfig};
use server::NetAddress;
use tokio::sync::Notify;

/// The store's file name inside the data directory.
pub(crate) const STORE_FILE: &str = "peers.sqlite";

/// The expiry stored for a ban given without one: 2200-01-01 00:00 UTC,
/// far in the future yet inside what the store can represent.
pub(crate) fn permanent() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(7_258_118_400)
}

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The file could not be opened or loaded: corrupt, from a newer
    /// version, locked by another process, unreadable. It is left as it was.
    #[error("peer store {path}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: peer_store::StoreError,
    },
    /// A change could not be made durable; nothing of it was applied.
    #[error("peer store write failed")]
    Write(#[source] peer_store::StoreError),
}

/// A stored persistent peer, as the node needs it at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredPeer {
    pub(crate) pubkey: PublicKey,
    /// Whether a user asked for it (rather than a channel).
    pub(crate) user_asked: bool,
    /// The addresses a user gave, most recent first.
    pub(crate) user_addrs: Vec<NetAddress>,
    /// The addresses it advertised.
    pub(crate) advertised: Vec<NetAddress>,
    /// The address of its last established connection, and how long that
    /// lasted (`None` if its end was never recorded).
    pub(crate) last_good: Option<(NetAddress, Option<Duration>)>,
    /// The backoff level its worker had reached.
    pub(crate) backoff: Option<Duration>,
}

impl From<&PeerRecord<NetAddress>> for StoredPeer {
    fn from(r: &PeerRecord<NetAddress>) -> Self {
        StoredPeer {
            pubkey: r.id,
            user_asked: r.reason.user_asked,
            user_addrs: r.user_addrs.clone(),
            advertised: r.advertised_addrs.clone(),
            last_good: (r.last_connection.as_ref()).map(|c| (c.addr.clone(), c.lasted)),
            backoff: r.backoff,
        }
    }
}

/// What the store held at startup.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Every persistent peer.
    pub(crate) peers: Vec<StoredPeer>,
    /// The bans in force (expired ones were removed).
    pub(crate) banned: Vec<PublicKey>,
}

/// What the node learned about a peer, to record if it is stored.
#[derive(Debug, Clone)]
pub(crate) enum Learned {
    /// An outbound connection was established at this address.
    Connected { peer: PublicKey, addr: NetAddress },
    /// The connection recorded by `Connected` ended after `lasted`.
    Ended { peer: PublicKey, lasted: Duration },
    /// The peer's worker is at this backoff level.
    Backoff { peer: PublicKey, level: Duration },
}

#[derive(Debug, Default)]
struct Mirror {
    peers: HashMap<PublicKey, PeerRecord<NetAddress>>,
    bans: HashMap<PublicKey, SystemTime>,
}

/// The persistent peers and bans, on disk. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: peer_store::SqliteStore<NetAddress>,
    /// What the file holds, updated after each durable change. Never held
    /// across an `.await`.
    mirror: Arc<Mutex<Mirror>>,
    /// Serializes the control API's read-modify-write changes.
    ops: Arc<tokio::sync::Mutex<()>>,
    /// Woken when a ban is added or lifted (the expiry timer re-plans).
    bans_changed: Arc<Notify>,
}

/// A peer's record before a change, to put back if the change cannot
/// complete elsewhere.
#[derive(Debug)]
pub(crate) struct Previous(Option<PeerRecord<NetAddress>>);

impl Previous {
    /// Whether the peer had a record.
    pub(crate) fn existed(&self) -> bool {
        self.0.is_some()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`, removes the bans that have
    /// expired, and returns what it holds.
    pub(crate) async fn open(dir: &Path) -> Result<(Store, Loaded), StoreError> {
        let path = dir.join(STORE_FILE);
        let failed = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let db = peer_store::SqliteStore::<NetAddress>::open(&path, SqliteConfig::default())
            .await
            .map_err(failed)?;
        let snapshot = match db.load().await {
            Ok(s) => s,
            Err(e) => {
                let _ = db.close().await;
                return Err(failed(e));
            }
        };
        let now = SystemTime::now();
        let expired: Vec<Change<NetAddress>> = (snapshot.bans.iter())
            .filter(|b| b.until <= now)
            .map(|b| Change::Unban { peer: b.peer })
            .collect();
        if let Err(e) = db.apply(expired).await {
            let _ = db.close().await;
            return Err(failed(e));
        }
        let mirror = Mirror {
            peers: (snapshot.peers.iter()).map(|p| (p.id, p.clone())).collect(),
            bans: (snapshot.bans_active_at(now))
                .map(|b| (b.peer, b.until))
                .collect(),
        };
        let loaded = Loaded {
            peers: snapshot.peers.iter().map(StoredPeer::from).collect(),
            banned: snapshot.bans_active_at(now).map(|b| b.peer).collect(),
        };
        let store = Store {
            db,
            mirror: Arc::new(Mutex::new(mirror)),
            ops: Arc::new(tokio::sync::Mutex::new(())),
            bans_changed: Arc::new(Notify::new()),
        };
        Ok((store, loaded))
    }

    /// The addresses known for a peer, in the order to try them: its last
    /// good one, then those a user gave, then the advertised ones.
    pub(crate) fn addrs(&self, peer: &PublicKey) -> Vec<NetAddress> {
        let mirror = self.lock();
        let Some(r) = mirror.peers.get(peer) else {
            return Vec::new();
        };
        let mut list = Vec::new();
        let last = r.last_connection.as_ref().map(|c| &c.addr);
        for a in last
            .into_iter()
            .chain(&r.user_addrs)
            .chain(&r.advertised_addrs)
        {
            if !list.contains(a) {
                list.push(a.clone());
            }
        }
        list
    }

    /// When the peer's ban ends, if it is banned.
    pub(crate) fn ban_of(&self, peer: &PublicKey) -> Option<SystemTime> {
        self.lock().bans.get(peer).copied()
    }

    /// Whether the peer is banned.
    pub(crate) fn is_banned(&self, peer: &PublicKey) -> bool {
        self.ban_of(peer).is_some()
    }

    /// Every banned peer.
    pub(crate) fn banned(&self) -> Vec<PublicKey> {
        self.lock().bans.keys().copied().collect()
    }

    /// Records a perm peer reached at `addr` (put first among the
    /// addresses a user gave). Returns what was there, for
    /// [`Store::restore`].
    pub(crate) async fn record_perm(
        &self,
        peer: PublicKey,
        addr: &NetAddress,
    ) -> Result<Previous, StoreError> {
        let _op = self.ops.lock().await;
        let previous = self.lock().peers.get(&peer).cloned();
        let (mut reason, mut addrs) = previous
            .as_ref()
            .map_or_else(Default::default, |r| (r.reason, r.user_addrs.clone()));
        reason.user_asked = true;
        addrs.retain(|a| a != addr);
        addrs.insert(0, addr.clone());
        self.set_user(peer, reason, addrs).await?;
        Ok(Previous(previous))
    }

    /// Puts a peer's record back as it was before a change.
    pub(crate) async fn restore(
        &self,
        peer: PublicKey,
        previous: Previous,
    ) -> Result<(), StoreError> {
        let _op = self.ops.lock().await;
        let stored = self.lock().peers.contains_key(&peer);
        match previous.0 {
            // Only the reason and the user's addresses were changed: the
            // history recorded meanwhile stays.
            Some(r) if stored => self.set_user(peer, r.reason, r.user_addrs).await,
            Some(r) => self.put(r).await,
            None => self.remove(peer).await,
        }
    }

    /// Removes a persistent peer. Returns what was there.
    pub(crate) async fn forget(&self, peer: PublicKey) -> Result<Previous, StoreError> {
        let _op = self.ops.lock().await;
        let previous = self.lock().peers.get(&peer).cloned();
        if previous.is_some() {
            self.remove(peer).await?;
        }
        Ok(Previous(previous))
    }

    /// Bans a peer until `until`, replacing any ban it had. Returns whether
    /// it is new.
    pub(crate) async fn ban(&self, peer: PublicKey, until: SystemTime) -> Result<bool, StoreError> {
        let _op = self.ops.lock().await;
        self.apply(vec![Change::Ban(Ban { peer, until })]).await?;
        let new = self.lock().bans.insert(peer, until).is_none();
        self.bans_changed.notify_one();
        Ok(new)
    }

    /// Lifts a ban. Returns whether there was one.
    pub(crate) async fn unban(&self, peer: PublicKey) -> Result<bool, StoreError> {
        let _op = self.ops.lock().await;
        if !self.lock().bans.contains_key(&peer) {
            return Ok(false);
        }
        self.apply(vec![Change::Unban { peer }]).await?;
        let was = self.lock().bans.remove(&peer).is_some();
        self.bans_changed.notify_one();
        Ok(was)
    }

    /// The earliest expiry among the bans.
    pub(crate) fn next_ban_expiry(&self) -> Option<SystemTime> {
        self.lock().bans.values().min().copied()
    }

    /// Waits until a ban is added or lifted.
    pub(crate) async fn bans_changed(&self) {
        self.bans_changed.notified().await;
    }

    /// Removes the bans expired at `now`; returns their peers.
    pub(crate) async fn unban_expired(
        &self,
        now: SystemTime,
    ) -> Result<Vec<PublicKey>, StoreError> {
        let _op = self.ops.lock().await;
        let expired: Vec<PublicKey> = (self.lock().bans.iter())
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        let changes = expired.iter().map(|&peer| Change::Unban { peer }).collect();
        self.apply(changes).await?;
        let mut mirror = self.lock();
        for peer in &expired {
            mirror.bans.remove(peer);
        }
        Ok(expired)
    }

    /// Records what the node learned about its stored peers, in one
    /// durable change; facts about peers not stored are dropped.
    pub(crate) async fn record(&self, learned: Vec<Learned>) -> Result<(), StoreError> {
        let mut changes = Vec::new();
        let mut updated: HashMap<PublicKey, PeerRecord<NetAddress>> = HashMap::new();
        {
            let mirror = self.lock();
            for fact in learned {
                let peer = match &fact {
                    Learned::Connected { peer, .. }
                    | Learned::Ended { peer, .. }
                    | Learned::Backoff { peer, .. } => *peer,
                };
                let Some(r) = updated.get(&peer).or_else(|| mirror.peers.get(&peer)) else {
                    continue;
                };
                let mut r = r.clone();
                match fact {
                    Learned::Connected { addr, .. } => {
                        let connection = LastConnection {
                            addr,
                            at: SystemTime::now(),
                            lasted: None,
                        };
                        r.last_connection = Some(connection.clone());
                        changes.push(Change::SetLastConnection { peer, connection });
                    }
                    Learned::Ended { lasted, .. } => {
                        let Some(c) = &mut r.last_connection else {
                            continue;
                        };
                        if c.lasted.is_some() {
                            continue;
                        }
                        c.lasted = Some(lasted);
                        let connection = c.clone();
                        changes.push(Change::SetLastConnection { peer, connection });
                    }
                    Learned::Backoff { level, .. } => {
                        if r.backoff == Some(level) {
                            continue;
                        }
                        r.backoff = Some(level);
                        changes.push(Change::SetBackoff { peer, level });
                    }
                }
                updated.insert(peer, r);
            }
        }
        self.apply(changes).await?;
        let mut mirror = self.lock();
        for (peer, r) in updated {
            // A peer removed meanwhile stays removed (as in the store).
            if let Some(slot) = mirror.peers.get_mut(&peer) {
                slot.last_connection = r.last_connection;
                slot.backoff = r.backoff;
            }
        }
        Ok(())
    }

    /// Closes the file once the changes sent before are durable.
    pub(crate) async fn close(self) -> Result<(), StoreError> {
        self.db.close().await.map_err(StoreError::Write)
    }

    /// Writes why a peer is persistent and the addresses a user gave
    /// (creating its record if needed), then mirrors them; the rest of its
    /// record is kept.
    async fn set_user(
        &self,
        peer: PublicKey,
        reason: Reason,
        addrs: Vec<NetAddress>,
    ) -> Result<(), StoreError> {
        self.apply(vec![
            Change::Persist { peer, reason },
            Change::SetUserAddrs {
                peer,
                addrs: addrs.clone(),
            },
        ])
        .await?;
        let mut mirror = self.lock();
        let r = (mirror.peers)
            .entry(peer)
            .or_insert_with(|| PeerRecord::new(peer, reason));
        r.reason = reason;
        r.user_addrs = addrs;
        Ok(())
    }

    /// Writes a whole record (a removed one put back), then mirrors it.
    async fn put(&self, r: PeerRecord<NetAddress>) -> Result<(), StoreError> {
        let peer = r.id;
        let mut changes = vec![
            Change::Persist {
                peer,
                reason: r.reason,
            },
            Change::SetUserAddrs {
                peer,
                addrs: r.user_addrs.clone(),
            },
            Change::SetAdvertisedAddrs {
                peer,
                addrs: r.advertised_addrs.clone(),
            },
        ];
        if let Some(connection) = r.last_connection.clone() {
            changes.push(Change::SetLastConnection { peer, connection });
        }
        if let Some(level) = r.backoff {
            changes.push(Change::SetBackoff { peer, level });
        }
        self.apply(changes).await?;
        self.lock().peers.insert(peer, r);
        Ok(())
    }

    async fn remove(&self, peer: PublicKey) -> Result<(), StoreError> {
        self.apply(vec![Change::Remove { peer }]).await?;
        self.lock().peers.remove(&peer);
        Ok(())
    }

    async fn apply(&self, changes: Vec<Change<NetAddress>>) -> Result<(), StoreError> {
        self.db.apply(changes).await.map_err(StoreError::Write)
    }

    fn lock(&self) -> MutexGuard<'_, Mirror> {
        // The mirror is changed only after a durable write, in one step: a
        // panic elsewhere cannot leave it half changed.
        self.mirror.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn key(b: u8) -> PublicKey {
        let secret = SecretKey::from_slice(&[b; 32]).expect("valid");
        PublicKey::from_secret_key(&Secp256k1::new(), &secret)
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lnconnd-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn addr(s: &str) -> NetAddress {
        s.parse().expect("addr")
    }

    #[tokio::test]
    async fn changes_survive_a_reopen() {
        let dir = temp_dir("reopen");
        let (store, loaded) = Store::open(&dir).await.expect("open");
        assert!(loaded.peers.is_empty() && loaded.banned.is_empty());
        let (a, b) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        store.record_perm(key(1), &a).await.expect("write");
        store.record_perm(key(1), &b).await.expect("write");
        store.record_perm(key(2), &a).await.expect("write");
        store.forget(key(2)).await.expect("write");
        let far = SystemTime::now() + Duration::from_secs(3600);
        assert!(store.ban(key(3), far).await.expect("write"));
        assert!(store.ban(key(4), far).await.expect("write"));
        assert!(store.unban(key(4)).await.expect("write"));
        // Expired by the next start.
        let past = SystemTime::now() - Duration::from_secs(1);
        store.ban(key(5), past).await.expect("write");
        store
            .record(vec![
                Learned::Connected {
                    peer: key(1),
                    addr: a.clone(),
                },
                Learned::Ended {
                    peer: key(1),
                    lasted: Duration::from_secs(700),
                },
                Learned::Backoff {
                    peer: key(1),
                    level: Duration::from_secs(4),
                },
                // Not stored: dropped.
                Learned::Backoff {
                    peer: key(9),
                    level: Duration::from_secs(4),
                },
            ])
            .await
            .expect("write");
        // A user's change keeps the recorded history.
        store.record_perm(key(1), &b).await.expect("write");
        store.close().await.expect("close");

        let (store, loaded) = Store::open(&dir).await.expect("reopen");
        assert_eq!(
            loaded.peers,
            vec![StoredPeer {
                pubkey: key(1),
                user_asked: true,
                user_addrs: vec![b.clone(), a.clone()],
                advertised: Vec::new(),
                last_good: Some((a.clone(), Some(Duration::from_secs(700)))),
                backoff: Some(Duration::from_secs(4)),
            }]
        );
        assert_eq!(loaded.banned, vec![key(3)]);
        assert_eq!(store.addrs(&key(1)), vec![a, b]);
        store.close().await.expect("close");
        // The expired ban was removed from the file, not only skipped.
        let (store, _) = Store::open(&dir).await.expect("reopen");
        assert_eq!(store.next_ban_expiry(), Some(far_secs(far)));
        store.close().await.expect("close");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `t` as the store keeps it (nanoseconds since 1970).
    fn far_secs(t: SystemTime) -> SystemTime {
        let d = t.duration_since(UNIX_EPOCH).expect("after 1970");
        UNIX_EPOCH + Duration::from_nanos(d.as_nanos() as u64)
    }

    #[tokio::test]
    async fn restore_puts_back_the_previous_record() {
        let dir = temp_dir("restore");
        let (store, _) = Store::open(&dir).await.expect("open");
        let a = addr("127.0.0.1:1");
        let prev = store.record_perm(key(1), &a).await.expect("write");
        assert!(!prev.existed());
        store.restore(key(1), prev).await.expect("write");
        assert!(store.addrs(&key(1)).is_empty());
        store.close().await.expect("close");
        let (store, loaded) = Store::open(&dir).await.expect("reopen");
        assert!(loaded.peers.is_empty());
        store.close().await.expect("close");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_refused_and_kept() {
        let dir = temp_dir("corrupt");
        let path = dir.join(STORE_FILE);
        let garbage = vec![0x5a_u8; 8192];
        std::fs::write(&path, &garbage).expect("write");
        let e = Store::open(&dir).await.expect_err("corrupt");
        let text = crate::daemon::chain(&e);
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            matches!(
                e,
                StoreError::Open {
                    source: peer_store::StoreError::Corrupt { .. }
                        | peer_store::StoreError::NotAStore,
                    ..
                }
            ),
            "{text}"
        );
        assert_eq!(std::fs::read(&path).expect("read"), garbage, "untouched");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_failed_write_changes_nothing() {
        let dir = temp_dir("failed");
        let (store, _) = Store::open(&dir).await.expect("open");
        store.clone().close().await.expect("close");
        // The file is closed: every write fails.
        let a = addr("127.0.0.1:1");
        assert!(store.record_perm(key(1), &a).await.is_err());
        assert!(store.addrs(&key(1)).is_empty());
        assert!(store.ban(key(2), permanent()).await.is_err());
        assert!(!store.is_banned(&key(2)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
