//! One daemon per data directory: an exclusive lock on `lnconnd.lock`,
//! taken before anything else is touched and held until the daemon has
//! closed its store and removed its socket (the kernel releases it if the
//! process dies). The control socket alone cannot say this: a daemon
//! stops answering on it well before it has finished writing the store.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub(crate) const LOCK_FILE: &str = "lnconnd.lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// Another daemon holds the lock: it runs, or is still shutting down.
    #[error(
        "a daemon is already running in {0} (or still shutting down); stop it with `lnconnd stop`"
    )]
    Held(String),
    /// The lock file cannot be opened or locked.
    #[error("cannot lock {path}")]
    Io {
        /// The lock file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The held lock of a data directory; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// The lock file of a data directory.
pub(crate) fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCK_FILE)
}

impl DirLock {
    /// Takes the data directory's lock without waiting.
    pub(crate) fn take(data_dir: &Path) -> Result<DirLock, LockError> {
        let path = lock_path(data_dir);
        let io_err = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(data_dir.display().to_string())),
            Err(TryLockError::Error(e)) => Err(io_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("lnconnd-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let first = DirLock::take(&dir).expect("the first lock");
        // flock(2) locks belong to the open file: a second open in the
        // same process conflicts like another process would.
        let e = DirLock::take(&dir).expect_err("held");
        assert!(matches!(e, LockError::Held(_)), "{e}");
        assert!(e.to_string().contains("already running"), "{e}");
        drop(first);
        let again = DirLock::take(&dir).expect("free once dropped");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
