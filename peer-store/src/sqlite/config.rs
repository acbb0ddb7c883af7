//! The SQLite store's settings.

use std::time::Duration;

use crate::error::StoreError;

/// How long [`SqliteStore`](crate::SqliteStore) waits for a lock another
/// connection holds before failing with [`StoreError::Locked`]: 5 s.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a [`SqliteStore`](crate::SqliteStore).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    busy_timeout: Duration,
}

impl Default for SqliteConfig {
    /// [`DEFAULT_BUSY_TIMEOUT`].
    fn default() -> Self {
        Self {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

impl SqliteConfig {
    /// The longest busy timeout SQLite takes (`i32::MAX` milliseconds, about
    /// 24.8 days).
    const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

    /// Waits at most `timeout` for a lock another connection holds (zero:
    /// fail at once). Refused above `i32::MAX` milliseconds.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Result<Self, StoreError> {
        if timeout > Self::MAX_BUSY_TIMEOUT {
            return Err(StoreError::InvalidConfig(
                "busy timeout above i32::MAX milliseconds",
            ));
        }
        self.busy_timeout = timeout;
        Ok(self)
    }

    /// How long the store waits for a lock.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }
}
