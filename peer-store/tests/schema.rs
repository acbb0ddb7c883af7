//! A file written by schema version 1 opens; a new file is what the crate
//! docs describe.
#![cfg(feature = "sqlite")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use common::{addr, key};
use peer_store::{
    Ban, LastConnection, PeerRecord, PeerStore, Reason, Snapshot, SqliteConfig, SqliteStore,
    SCHEMA_VERSION,
};

/// Version 1 exactly as released, with rows written by hand: frozen here so
/// that this file keeps being a version 1 file when later versions come.
const VERSION_1: &str = "
    CREATE TABLE peer (
        id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 66),
        user_asked INTEGER NOT NULL CHECK (user_asked IN (0, 1)),
        has_channels INTEGER NOT NULL CHECK (has_channels IN (0, 1)),
        backoff_ns INTEGER,
        last_addr TEXT,
        last_connected_at_unix_ns INTEGER,
        last_connected_for_ns INTEGER,
        CHECK ((last_addr IS NULL) = (last_connected_at_unix_ns IS NULL))
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE peer_addr (
        peer TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('user', 'advertised')),
        position INTEGER NOT NULL,
        addr TEXT NOT NULL,
        PRIMARY KEY (peer, kind, position)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE ban (
        peer TEXT PRIMARY KEY NOT NULL CHECK (length(peer) = 66),
        until_unix_ns INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    PRAGMA application_id = 1819177075;
    PRAGMA user_version = 1;
";

#[tokio::test]
async fn a_version_1_file_opens_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    let (peer, banned) = (key(1), key(2));
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(VERSION_1).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO peer VALUES ('{peer}', 0, 1, 1500000000, '10.0.0.1:9736',
                                  1700000000000000007, 3600000000005);
         INSERT INTO peer_addr VALUES ('{peer}', 'user', 0, '10.0.0.1:9735'),
                                      ('{peer}', 'user', 1, '10.0.0.1:9736'),
                                      ('{peer}', 'advertised', 0, '10.0.0.1:9737');
         INSERT INTO ban VALUES ('{banned}', 2000000000000000000);"
    ))
    .unwrap();
    drop(conn);

    let store = SqliteStore::<SocketAddr>::open(&path, SqliteConfig::default())
        .await
        .unwrap();
    let mut record = PeerRecord::new(
        peer,
        Reason {
            user_asked: false,
            has_channels: true,
        },
    );
    record.user_addrs = vec![addr(1, 0), addr(1, 1)];
    record.advertised_addrs = vec![addr(1, 2)];
    record.backoff = Some(Duration::from_millis(1500));
    record.last_connection = Some(LastConnection {
        addr: addr(1, 1),
        at: UNIX_EPOCH + Duration::new(1_700_000_000, 7),
        lasted: Some(Duration::new(3600, 5)),
    });
    let ban = Ban {
        peer: banned,
        until: UNIX_EPOCH + Duration::from_secs(2_000_000_000),
    };
    assert_eq!(
        store.load().await.unwrap(),
        Snapshot::new(vec![record], vec![ban])
    );
}

#[tokio::test]
async fn a_new_file_is_in_wal_mode_at_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.sqlite");
    let store = SqliteStore::<SocketAddr>::open(&path, SqliteConfig::default())
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let pragma = |name: &str| -> String {
        conn.query_row(
            &format!("SELECT CAST({name} AS TEXT) FROM pragma_{name}"),
            [],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert_eq!(pragma("journal_mode"), "wal");
    assert_eq!(pragma("user_version"), SCHEMA_VERSION.to_string());
    assert_eq!(pragma("application_id"), 0x6c6e_7073.to_string());
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    assert_eq!(tables, ["ban", "peer", "peer_addr"]);
    drop(conn);
    store.close().await.unwrap();
}
