//! Opening a store file: creating it atomically, refusing every bad file.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, MAIN_DB};

use super::config::SqliteConfig;
use super::schema::{migrate, Version, APPLICATION_ID, CURRENT_VERSION};
use crate::error::StoreError;

/// A file system error, typed where it has a type of ours.
pub(crate) fn io_error(e: io::Error) -> StoreError {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly,
        io::ErrorKind::StorageFull => StoreError::DiskFull,
        _ => StoreError::Io(e),
    }
}

/// Replaces a generic SQLite error by the typed one its code calls for.
pub(crate) fn classify(e: StoreError, config: &SqliteConfig) -> StoreError {
    use rusqlite::ErrorCode;
    let StoreError::Sqlite(e) = e else {
        return e;
    };
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
            waited: config.busy_timeout(),
        },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly,
        Some(ErrorCode::DiskFull) => StoreError::DiskFull,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite(e),
    }
}

/// Opens the store at `path`, creating it if there is no file there.
///
/// Every check that only reads comes before the first write, so a file this
/// refuses is left byte for byte as it was.
pub(crate) fn open(path: &Path, config: &SqliteConfig) -> Result<Connection, StoreError> {
    if !path.try_exists().map_err(io_error)? {
        create(path, config)?;
    }
    // No `SQLITE_OPEN_CREATE`: a file that vanished since is an error, not
    // a new empty store.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(config.busy_timeout())?;
    // SQLite opens a write-protected file read-only without saying so.
    if conn.is_readonly(MAIN_DB)? {
        return Err(StoreError::ReadOnly);
    }
    // The first read of page 1: random bytes fail here as "not a database".
    let application_id: i64 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    if application_id != APPLICATION_ID {
        return Err(StoreError::NotAStore);
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > CURRENT_VERSION {
        return Err(StoreError::NewerVersion {
            found: version,
            supported: CURRENT_VERSION,
        });
    }
    quick_check(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // SQLite keeps the old mode when it cannot create the `-wal` file.
        return Err(StoreError::ReadOnly);
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    match migrate(&mut conn)? {
        Version::Current => Ok(conn),
        Version::Unknown(found) if found > CURRENT_VERSION => Err(StoreError::NewerVersion {
            found,
            supported: CURRENT_VERSION,
        }),
        Version::Unknown(found) => Err(StoreError::Corrupt {
            detail: format!("schema version {found}"),
        }),
    }
}

/// Reads every page once: a truncated or damaged file fails here, at open,
/// not at the first write.
fn quick_check(conn: &Connection) -> Result<(), StoreError> {
    let mut statement = conn.prepare("PRAGMA quick_check")?;
    let findings = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if findings.len() == 1 && findings[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        detail: findings.join("; "),
    })
}

/// Creates a store file at `path` that holds the current schema, atomically:
/// the schema is written to `<path>.new`, synced, then linked to `path`,
/// which fails rather than replace a file that appeared there meanwhile. So
/// a file at `path` is always a whole store, and an empty file there is
/// never mistaken for a new one.
fn create(path: &Path, config: &SqliteConfig) -> Result<(), StoreError> {
    let staging = staging_path(path)?;
    // `<path>.new` is this crate's: one left by a crash mid-creation is reset.
    File::create(&staging).map_err(io_error)?;
    {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&staging, flags)?;
        conn.busy_timeout(config.busy_timeout())?;
        // The rollback journal while creating, so that everything is in the
        // one file when it is linked; `open` turns on WAL.
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        conn.close().map_err(|(_, e)| e)?;
    }
    File::open(&staging)
        .and_then(|file| file.sync_all())
        .map_err(io_error)?;
    let linked = fs::hard_link(&staging, path);
    fs::remove_file(&staging).map_err(io_error)?;
    match linked {
        Ok(()) => {}
        // Someone else created the file meanwhile: open theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(e)),
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error)
}

fn staging_path(path: &Path) -> Result<PathBuf, StoreError> {
    let mut name: OsString = path
        .file_name()
        .ok_or_else(|| {
            StoreError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "store path names no file",
            ))
        })?
        .to_owned();
    name.push(".new");
    Ok(path.with_file_name(name))
}
