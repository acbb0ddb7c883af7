//! What the integration tests share: keys, full records, files that cannot
//! be written.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use peer_store::{Ban, Change, LastConnection, PeerRecord, Reason};

/// The node id of secret key `n + 1` (so `n` may be 0).
pub fn key(n: u32) -> PublicKey {
    let mut secret = [0u8; 32];
    secret[28..].copy_from_slice(&(n + 1).to_be_bytes());
    let secret = SecretKey::from_slice(&secret).expect("1..=u32::MAX is a valid secret key");
    PublicKey::from_secret_key(&Secp256k1::signing_only(), &secret)
}

/// An address derived from `n` and `slot`.
pub fn addr(n: u32, slot: u16) -> SocketAddr {
    let [a, b, c, d] = n.to_be_bytes();
    SocketAddr::from(([10 ^ a, b, c, d], 9735 + slot))
}

/// The complete record of peer `n`: every field set, different per peer.
pub fn full_record(n: u32) -> PeerRecord<SocketAddr> {
    let mut record = PeerRecord::new(
        key(n),
        Reason {
            user_asked: n % 3 != 1,
            has_channels: n % 3 != 0,
        },
    );
    record.user_addrs = vec![addr(n, 0), addr(n, 1)];
    record.advertised_addrs = vec![addr(n, 2), addr(n, 3), addr(n, 4)];
    record.last_connection = Some(LastConnection {
        addr: addr(n, 1),
        at: UNIX_EPOCH + Duration::new(1_700_000_000 + u64::from(n), n * 7 + 1),
        lasted: (n % 2 == 0).then(|| Duration::new(u64::from(n) * 60, n + 3)),
    });
    record.backoff = Some(Duration::new(u64::from(n % 3600), n * 11 + 5));
    record
}

/// The changes that store `record` from nothing, as one `apply`.
pub fn changes_for(record: &PeerRecord<SocketAddr>) -> Vec<Change<SocketAddr>> {
    let peer = record.id;
    let mut changes = vec![
        Change::Persist {
            peer,
            reason: record.reason,
        },
        Change::SetUserAddrs {
            peer,
            addrs: record.user_addrs.clone(),
        },
        Change::SetAdvertisedAddrs {
            peer,
            addrs: record.advertised_addrs.clone(),
        },
    ];
    if let Some(connection) = &record.last_connection {
        changes.push(Change::SetLastConnection {
            peer,
            connection: connection.clone(),
        });
    }
    if let Some(level) = record.backoff {
        changes.push(Change::SetBackoff { peer, level });
    }
    changes
}

/// A ban of peer `n`.
pub fn ban(n: u32) -> Ban {
    Ban {
        peer: key(n),
        until: SystemTime::UNIX_EPOCH + Duration::new(2_000_000_000 + u64::from(n), 999),
    }
}

/// Records ordered as the stores return them (by node id).
pub fn sorted(mut records: Vec<PeerRecord<SocketAddr>>) -> Vec<PeerRecord<SocketAddr>> {
    records.sort_by_key(|r| r.id.serialize());
    records
}

/// Whether this process can write where permissions say it may not (root).
fn ignores_permissions(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let writable = fs::write(&probe, b"").is_ok();
    let _ = fs::remove_file(&probe);
    writable
}

/// A file or directory made read-only for this process: by permissions
/// when they bind it, else (as root) by a read-only bind mount over it.
/// Undone on drop.
#[derive(Debug)]
pub struct ReadOnly {
    path: PathBuf,
    mounted: bool,
    mode: u32,
}

impl ReadOnly {
    /// Makes `path` read-only, or `None` when neither way is open to this
    /// process (root without the right to mount).
    pub fn new(path: &Path) -> Option<Self> {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode();
        let read_only = if path.is_dir() { 0o555 } else { 0o444 };
        fs::set_permissions(path, fs::Permissions::from_mode(read_only)).ok()?;
        let guard = Self {
            path: path.to_owned(),
            mounted: false,
            mode,
        };
        let dir = if path.is_dir() {
            path.to_owned()
        } else {
            path.parent()?.to_owned()
        };
        let still_writable = if path.is_dir() {
            ignores_permissions(&dir)
        } else {
            fs::OpenOptions::new().append(true).open(path).is_ok()
        };
        if !still_writable {
            return Some(guard);
        }
        let run = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let p = path.to_str()?;
        if !run(&["--bind", p, p]) {
            return None;
        }
        let mut guard = guard;
        guard.mounted = true;
        if !run(&["-o", "remount,bind,ro", p]) {
            return None;
        }
        Some(guard)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        }
        let _ = fs::set_permissions(&self.path, fs::Permissions::from_mode(self.mode));
    }
}

/// A tmpfs of `bytes` mounted on a new directory under `parent`, unmounted on
/// drop; `None` when this process may not mount.
#[derive(Debug)]
pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    pub fn new(parent: &Path, bytes: u64) -> Option<Self> {
        let dir = parent.join("small-disk");
        fs::create_dir(&dir).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
