//! The schema, its versions and the migrations between them.

use rusqlite::Connection;

/// `PRAGMA application_id` of a peer store file: "lnps" in ASCII.
pub(crate) const APPLICATION_ID: i64 = 0x6c6e_7073;

/// The schema each migration leads to: `MIGRATIONS[i]` turns version `i`
/// into version `i + 1` (the first creates version 1 on an empty file).
/// Append only: a released migration is never edited.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
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
    ",
];

/// The schema version this build writes, and the newest it reads.
pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// What [`migrate`] found.
pub(crate) enum Version {
    /// At the current version, after running the migrations it needed.
    Current,
    /// A version this build cannot read (newer, or negative): nothing was
    /// changed.
    Unknown(i64),
}

/// Brings the schema from `PRAGMA user_version` to [`CURRENT_VERSION`] in one
/// transaction that takes the write lock first (so a locked file is found
/// here, at open). A file at a version it does not know is left untouched.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<Version> {
    migrate_with(conn, MIGRATIONS)
}

/// [`migrate`] through the given list of migrations.
fn migrate_with(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<Version> {
    let target = migrations.len() as i64;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let Some(pending) = usize::try_from(found)
        .ok()
        .and_then(|from| migrations.get(from..))
    else {
        return Ok(Version::Unknown(found));
    };
    for migration in pending {
        tx.execute_batch(migration)?;
    }
    if !pending.is_empty() {
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", target)?;
    }
    tx.commit()?;
    Ok(Version::Current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    /// A second version, as a later release would append it.
    const V2: &str = "ALTER TABLE peer ADD COLUMN note TEXT NOT NULL DEFAULT 'v1'";

    #[test]
    fn a_version_1_file_is_migrated_to_a_later_version_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        assert!(matches!(
            migrate_with(&mut conn, &MIGRATIONS[..1]).unwrap(),
            Version::Current
        ));
        assert_eq!(version(&conn), 1);
        conn.execute_batch(&format!(
            "INSERT INTO peer (id, user_asked, has_channels) VALUES ('{}', 1, 0)",
            "02".repeat(33)
        ))
        .unwrap();
        drop(conn);

        let mut conn = Connection::open(&path).unwrap();
        assert!(matches!(
            migrate_with(&mut conn, &[MIGRATIONS[0], V2]).unwrap(),
            Version::Current
        ));
        assert_eq!(version(&conn), 2);
        let note: String = conn
            .query_row("SELECT note FROM peer", [], |row| row.get(0))
            .unwrap();
        assert_eq!(note, "v1");
        // Once at the newest version, nothing more runs.
        assert!(matches!(
            migrate_with(&mut conn, &[MIGRATIONS[0], V2]).unwrap(),
            Version::Current
        ));
        assert_eq!(version(&conn), 2);
    }

    #[test]
    fn a_failing_migration_leaves_the_file_at_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("peers.sqlite")).unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..1]).unwrap();
        let broken = [
            MIGRATIONS[0],
            "CREATE TABLE extra (x); SELECT * FROM missing",
        ];
        assert!(migrate_with(&mut conn, &broken).is_err());
        assert_eq!(version(&conn), 1);
        let extra: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'extra'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(extra, 0);
    }

    #[test]
    fn a_newer_or_negative_version_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("peers.sqlite")).unwrap();
        for found in [CURRENT_VERSION + 1, -1] {
            conn.pragma_update(None, "user_version", found).unwrap();
            assert!(matches!(migrate(&mut conn).unwrap(), Version::Unknown(v) if v == found));
            assert_eq!(version(&conn), found);
        }
    }
}
