//! The daemon's persistence seam: the only place that knows where the
//! persistent peers and bans live.
//!
//! The daemon calls [`Store::open`] at startup (which loads what it holds)
//! and records each change before it answers the caller: `record_perm`,
//! `forget`, `ban`, `unban`. For now the state is one small JSON file,
//! replaced atomically on every change (written to a temporary file,
//! fsynced, renamed over the old one, and the directory fsynced), so a
//! crash leaves either the old state or the new one. The SQLite peer store
//! of the `peer-store` crate is meant to take this module's place.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bitcoin::secp256k1::PublicKey;
use serde::{Deserialize, Serialize};
use server::NetAddress;

/// The store's file name inside the data directory.
pub(crate) const STORE_FILE: &str = "peers.json";

/// The format written; a file from a newer version is refused.
const VERSION: u32 = 1;

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// Reading or writing the file failed.
    #[error("peer store {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a store this version can read.
    #[error("peer store {path} is unreadable: {message} (move it away to start empty)")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The writer thread went away (the runtime is shutting down).
    #[error("peer store writer ended")]
    Gone,
}

/// A persistent peer as stored: its key and the addresses given for it,
/// most recent first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredPeer {
    pub(crate) pubkey: PublicKey,
    pub(crate) addrs: Vec<NetAddress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    version: u32,
    /// Peer key (hex) to its addresses, most recent first.
    peers: BTreeMap<String, Vec<String>>,
    /// Banned peer keys (hex).
    banned: BTreeSet<String>,
}

/// The persistent peers and bans, on disk. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    path: Arc<PathBuf>,
    /// What the file holds now. Held only while a write runs on a blocking
    /// thread, never across an `.await`.
    state: Arc<Mutex<Snapshot>>,
}

/// What a peer's record was before a change, to put it back if the change
/// cannot complete elsewhere.
#[derive(Debug)]
pub(crate) struct Previous(Option<Vec<String>>);

impl Previous {
    /// Whether the peer had a record.
    pub(crate) fn existed(&self) -> bool {
        self.0.is_some()
    }
}

impl Store {
    /// Opens (or starts) the store in `dir` and returns what it holds.
    pub(crate) fn open(dir: &Path) -> Result<(Store, Vec<StoredPeer>, Vec<PublicKey>), StoreError> {
        let path = dir.join(STORE_FILE);
        let shown = path.display().to_string();
        let snapshot = match std::fs::read(&path) {
            Ok(bytes) => {
                let snap: Snapshot =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                        path: shown.clone(),
                        message: e.to_string(),
                    })?;
                if snap.version != VERSION {
                    return Err(StoreError::Corrupt {
                        path: shown,
                        message: format!(
                            "format version {} (this program writes {VERSION})",
                            snap.version
                        ),
                    });
                }
                snap
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot {
                version: VERSION,
                ..Snapshot::default()
            },
            Err(source) => {
                return Err(StoreError::Io {
                    path: shown,
                    source,
                })
            }
        };
        let corrupt = |message: String| StoreError::Corrupt {
            path: shown.clone(),
            message,
        };
        let mut peers = Vec::with_capacity(snapshot.peers.len());
        for (key, addrs) in &snapshot.peers {
            let pubkey =
                PublicKey::from_str(key).map_err(|_| corrupt(format!("bad peer key {key:?}")))?;
            let addrs = addrs
                .iter()
                .map(|a| {
                    a.parse()
                        .map_err(|e| corrupt(format!("peer {key}: {a:?}: {e}")))
                })
                .collect::<Result<_, _>>()?;
            peers.push(StoredPeer { pubkey, addrs });
        }
        let banned = (snapshot.banned.iter())
            .map(|k| PublicKey::from_str(k).map_err(|_| corrupt(format!("bad banned key {k:?}"))))
            .collect::<Result<_, _>>()?;
        let store = Store {
            path: Arc::new(path),
            state: Arc::new(Mutex::new(snapshot)),
        };
        Ok((store, peers, banned))
    }

    /// The addresses stored for a peer, most recent first.
    pub(crate) fn addrs(&self, peer: &PublicKey) -> Vec<NetAddress> {
        let state = self.lock();
        let list = state.peers.get(&peer.to_string());
        list.into_iter()
            .flatten()
            .filter_map(|a| a.parse().ok())
            .collect()
    }

    /// Whether the peer is banned.
    pub(crate) fn is_banned(&self, peer: &PublicKey) -> bool {
        self.lock().banned.contains(&peer.to_string())
    }

    /// Every banned peer.
    pub(crate) fn banned(&self) -> Vec<PublicKey> {
        let state = self.lock();
        (state.banned.iter())
            .filter_map(|k| PublicKey::from_str(k).ok())
            .collect()
    }

    /// Records a perm peer reached at `addr` (put first among its
    /// addresses). Returns what was there, for [`Store::restore`].
    pub(crate) async fn record_perm(
        &self,
        peer: PublicKey,
        addr: &NetAddress,
    ) -> Result<Previous, StoreError> {
        let addr = addr.to_string();
        self.change(move |s| {
            let key = peer.to_string();
            let previous = s.peers.get(&key).cloned();
            let list = s.peers.entry(key).or_default();
            list.retain(|a| *a != addr);
            list.insert(0, addr);
            Previous(previous)
        })
        .await
    }

    /// Puts a peer's record back as it was before a change.
    pub(crate) async fn restore(
        &self,
        peer: PublicKey,
        previous: Previous,
    ) -> Result<(), StoreError> {
        self.change(move |s| {
            let key = peer.to_string();
            match previous.0 {
                Some(list) => s.peers.insert(key, list),
                None => s.peers.remove(&key),
            };
        })
        .await
    }

    /// Removes a persistent peer. Returns what was there.
    pub(crate) async fn forget(&self, peer: PublicKey) -> Result<Previous, StoreError> {
        self.change(move |s| Previous(s.peers.remove(&peer.to_string())))
            .await
    }

    /// Records a ban. Returns whether it is new.
    pub(crate) async fn ban(&self, peer: PublicKey) -> Result<bool, StoreError> {
        self.change(move |s| s.banned.insert(peer.to_string()))
            .await
    }

    /// Lifts a ban. Returns whether there was one.
    pub(crate) async fn unban(&self, peer: PublicKey) -> Result<bool, StoreError> {
        self.change(move |s| s.banned.remove(&peer.to_string()))
            .await
    }

    /// Applies `f` to a copy of the state, writes the copy, and only then
    /// makes it the state: on an error nothing changed, on disk or here.
    /// An unchanged state is not written.
    async fn change<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Snapshot) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = store.lock();
            let mut next = state.clone();
            let result = f(&mut next);
            if next != *state {
                write_atomically(&store.path, &next).map_err(|source| StoreError::Io {
                    path: store.path.display().to_string(),
                    source,
                })?;
                *state = next;
            }
            Ok(result)
        })
        .await
        .map_err(|_| StoreError::Gone)?
    }

    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        // A panic while holding the lock happened before `*state = next`:
        // the state is still the file's.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes `snapshot` to `path` so that a crash leaves the old file or the
/// new one, never a mix.
fn write_atomically(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn key(b: u8) -> PublicKey {
        let secret = SecretKey::from_slice(&[b; 32]).expect("valid");
        PublicKey::from_secret_key(&Secp256k1::new(), &secret)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lnconnd-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[tokio::test]
    async fn changes_survive_a_reopen() {
        let dir = temp_dir("reopen");
        let (store, peers, banned) = Store::open(&dir).expect("open");
        assert!(peers.is_empty() && banned.is_empty());
        let a: NetAddress = "127.0.0.1:1".parse().expect("addr");
        let b: NetAddress = "127.0.0.1:2".parse().expect("addr");
        store.record_perm(key(1), &a).await.expect("write");
        store.record_perm(key(1), &b).await.expect("write");
        store.record_perm(key(2), &a).await.expect("write");
        store.forget(key(2)).await.expect("write");
        assert!(store.ban(key(3)).await.expect("write"));
        assert!(store.ban(key(4)).await.expect("write"));
        assert!(store.unban(key(4)).await.expect("write"));
        let (_, peers, banned) = Store::open(&dir).expect("reopen");
        assert_eq!(
            peers,
            vec![StoredPeer {
                pubkey: key(1),
                addrs: vec![b, a]
            }]
        );
        assert_eq!(banned, vec![key(3)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn restore_puts_back_the_previous_record() {
        let dir = temp_dir("restore");
        let (store, _, _) = Store::open(&dir).expect("open");
        let a: NetAddress = "127.0.0.1:1".parse().expect("addr");
        let prev = store.record_perm(key(1), &a).await.expect("write");
        store.restore(key(1), prev).await.expect("write");
        assert!(store.addrs(&key(1)).is_empty());
        let (_, peers, _) = Store::open(&dir).expect("reopen");
        assert!(peers.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_or_newer_file_is_refused_and_kept() {
        let dir = temp_dir("corrupt");
        let path = dir.join(STORE_FILE);
        for text in ["{not json", r#"{"version":2,"peers":{},"banned":[]}"#] {
            std::fs::write(&path, text).expect("write");
            let e = Store::open(&dir).expect_err(text);
            assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
            assert_eq!(
                std::fs::read_to_string(&path).expect("read"),
                text,
                "not overwritten"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_failed_write_changes_nothing() {
        let dir = temp_dir("failed");
        let (store, _, _) = Store::open(&dir).expect("open");
        // A directory where the temporary file goes makes the write fail.
        std::fs::create_dir_all(dir.join("peers.json.tmp")).expect("block the write");
        let a: NetAddress = "127.0.0.1:1".parse().expect("addr");
        assert!(store.record_perm(key(1), &a).await.is_err());
        assert!(store.addrs(&key(1)).is_empty());
        assert!(!dir.join(STORE_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
