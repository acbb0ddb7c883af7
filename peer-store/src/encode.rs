//! The checks every store of this crate makes on a change before applying
//! it, so that what one accepts the others accept too, and what is stored
//! can always be loaded back.

use std::fmt::Display;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;

/// A duration as whole nanoseconds, as stored.
pub(crate) fn nanos(d: Duration, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(d.as_nanos()).map_err(|_| StoreError::Unstorable(what))
}

/// A wall-clock time as signed nanoseconds since the Unix epoch, as stored
/// (years 1678 to 2262).
pub(crate) fn unix_nanos(t: SystemTime, what: &'static str) -> Result<i64, StoreError> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => nanos(after, what),
        Err(before) => nanos(before.duration(), what).map(|n| -n),
    }
}

/// The inverse of [`nanos`]; `None` for a negative value.
#[cfg(feature = "sqlite")]
pub(crate) fn from_nanos(n: i64) -> Option<Duration> {
    u64::try_from(n).ok().map(Duration::from_nanos)
}

/// The inverse of [`unix_nanos`].
#[cfg(feature = "sqlite")]
pub(crate) fn from_unix_nanos(n: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_nanos(n.unsigned_abs());
    if n >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// An address's text form, refused unless it parses back: a store must never
/// hold what it cannot load.
pub(crate) fn addr_text<A: Display + FromStr>(addr: &A) -> Result<String, StoreError> {
    let text = addr.to_string();
    match text.parse::<A>() {
        Ok(_) => Ok(text),
        Err(_) => Err(StoreError::Unstorable(
            "an address's text form does not parse back",
        )),
    }
}
