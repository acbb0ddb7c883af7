//! Each bad file or file system is a typed error, never a panic, never an
//! empty store in its place, and the file is left as it was.
#![cfg(feature = "sqlite")]

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{changes_for, full_record, key, ReadOnly, SmallDisk};
use peer_store::{PeerStore, SqliteConfig, SqliteStore, StoreError, SCHEMA_VERSION};

async fn open(path: &Path) -> Result<SqliteStore<SocketAddr>, StoreError> {
    let config = SqliteConfig::default()
        .with_busy_timeout(Duration::from_millis(100))
        .unwrap();
    SqliteStore::open(path, config).await
}

/// A closed store holding `peers` full records.
async fn store_with(path: &Path, peers: u32) {
    let store = open(path).await.unwrap();
    let changes = (0..peers)
        .flat_map(|n| changes_for(&full_record(n)))
        .collect();
    store.apply(changes).await.unwrap();
    store.close().await.unwrap();
}

/// Opens `path`, which must fail, and checks that the file was not touched.
async fn refused(path: &Path) -> StoreError {
    let before = fs::read(path).ok();
    let error = match open(path).await {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    };
    assert_eq!(fs::read(path).ok(), before, "the file changed");
    error
}

/// Deterministic bytes that are no database.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test]
async fn random_bytes_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    fs::write(&path, noise(8192)).unwrap();
    let error = refused(&path).await;
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
}

#[tokio::test]
async fn a_truncated_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    store_with(&path, 500).await;
    let len = fs::metadata(&path).unwrap().len();
    assert!(len > 16 * 4096, "the store is {len} bytes");
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let error = refused(&path).await;
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
}

#[tokio::test]
async fn a_file_truncated_inside_its_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    store_with(&path, 10).await;
    for len in [60, 0] {
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len).unwrap();
        drop(file);
        let error = refused(&path).await;
        assert!(
            matches!(error, StoreError::Corrupt { .. } | StoreError::NotAStore),
            "{len} bytes: {error:?}"
        );
    }
}

#[tokio::test]
async fn another_applications_database_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let error = refused(&path).await;
    assert!(matches!(error, StoreError::NotAStore), "{error:?}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    store_with(&path, 3).await;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let error = refused(&path).await;
    assert!(
        matches!(error, StoreError::NewerVersion { found, supported }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_locked_file_is_refused_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    store_with(&path, 3).await;
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let error = refused(&path).await;
    assert!(
        matches!(error, StoreError::Locked { waited } if waited == Duration::from_millis(100)),
        "{error:?}"
    );
    holder.execute_batch("COMMIT").unwrap();
    assert_eq!(
        open(&path).await.unwrap().load().await.unwrap().peers.len(),
        3
    );
}

#[tokio::test]
async fn an_apply_on_a_locked_file_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    let store = open(&path).await.unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let error = store.apply(changes_for(&full_record(1))).await.unwrap_err();
    assert!(matches!(error, StoreError::Locked { .. }), "{error:?}");
    holder.execute_batch("COMMIT").unwrap();
    assert!(store.load().await.unwrap().peers.is_empty());
    store.apply(changes_for(&full_record(1))).await.unwrap();
    assert_eq!(store.load().await.unwrap().peers, vec![full_record(1)]);
    assert_eq!((store.stats().applied, store.stats().failed), (1, 1));
}

#[tokio::test]
async fn a_read_only_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    store_with(&path, 3).await;
    let Some(_guard) = ReadOnly::new(&path) else {
        eprintln!("skipped: cannot make a file read-only for this process");
        return;
    };
    let error = refused(&path).await;
    assert!(matches!(error, StoreError::ReadOnly), "{error:?}");
}

#[tokio::test]
async fn a_store_in_a_read_only_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let path = data.join("peers.sqlite");
    store_with(&path, 3).await;
    let Some(_guard) = ReadOnly::new(&data) else {
        eprintln!("skipped: cannot make a directory read-only for this process");
        return;
    };
    let error = refused(&path).await;
    assert!(matches!(error, StoreError::ReadOnly), "{error:?}");
}

#[tokio::test]
async fn no_store_is_created_in_a_read_only_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let Some(_guard) = ReadOnly::new(&data) else {
        eprintln!("skipped: cannot make a directory read-only for this process");
        return;
    };
    let path = data.join("peers.sqlite");
    let error = refused(&path).await;
    assert!(matches!(error, StoreError::ReadOnly), "{error:?}");
    assert_eq!(fs::read_dir(&data).unwrap().count(), 0);
}

#[tokio::test]
async fn a_full_disk_fails_the_apply_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::new(dir.path(), 256 * 1024) else {
        eprintln!("skipped: cannot mount a small tmpfs");
        return;
    };
    let path = disk.dir.join("peers.sqlite");
    let filler = disk.dir.join("filler");
    fs::write(&filler, vec![0u8; 64 * 1024]).unwrap();
    let store = open(&path).await.unwrap();
    let mut acknowledged = Vec::new();
    let full = loop {
        let n = acknowledged.len() as u32;
        assert!(n < 100_000, "the disk never filled");
        match store.apply(changes_for(&full_record(n))).await {
            Ok(()) => acknowledged.push(full_record(n)),
            Err(e) => break e,
        }
    };
    assert!(matches!(full, StoreError::DiskFull), "{full:?}");
    assert!(!acknowledged.is_empty());
    // Still usable for reading, and whole once space is freed.
    assert_eq!(store.load().await.unwrap().peers.len(), acknowledged.len());
    drop(store);
    fs::remove_file(&filler).unwrap();
    let store = open(&path).await.unwrap();
    let mut loaded = store.load().await.unwrap().peers;
    loaded.sort_by_key(|r| r.id.serialize());
    acknowledged.sort_by_key(|r| r.id.serialize());
    assert_eq!(loaded, acknowledged);
    store
        .apply(changes_for(&full_record(999_999)))
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_record_that_does_not_decode_fails_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    let edits = [
        (
            "peer_addr",
            "UPDATE peer_addr SET addr = 'nowhere' WHERE position = 1",
        ),
        ("peer", "UPDATE peer SET backoff_ns = -1"),
        ("peer", "UPDATE peer SET last_addr = '300.0.0.1:1'"),
        ("ban", "INSERT INTO ban VALUES (printf('%066d', 0), 0)"),
        (
            "peer_addr",
            "INSERT INTO peer_addr VALUES (printf('%066d', 1), 'user', 0, '1.2.3.4:5')",
        ),
    ];
    for (table, edit) in edits {
        let _ = fs::remove_file(&path);
        store_with(&path, 2).await;
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(edit)
            .unwrap();
        let store = open(&path).await.unwrap();
        let error = store.load().await.unwrap_err();
        assert!(
            matches!(&error, StoreError::CorruptRecord { table: t, .. } if *t == table),
            "{edit}: {error:?}"
        );
        store.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_staging_file_left_by_a_crash_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    fs::write(dir.path().join("peers.sqlite.new"), noise(3000)).unwrap();
    let store = open(&path).await.unwrap();
    store.apply(changes_for(&full_record(1))).await.unwrap();
    assert!(!dir.path().join("peers.sqlite.new").exists());
    assert_eq!(store.load().await.unwrap().peers[0].id, key(1));
}
