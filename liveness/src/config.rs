use std::time::Duration;

use crate::wire::MAX_ANSWERED_PONG_BYTES;
use crate::Error;

/// How often to ping, how long to wait, and how much to answer.
///
/// The defaults are lnd's (`peer/brontide.go`: `pingInterval` 1 minute,
/// `pingTimeout` 30 s), because the rest of this workspace follows lnd's
/// lifecycle: a link dead without a FIN is found within 90 s of its last
/// byte. LDK is quicker and chattier: it asks to be ticked about every
/// 10 s, pings on a tick and drops a peer that has not answered by the
/// next one, so it finds the same link in 10 to 20 s; pass
/// [`Config::new`] values like those for that. Unlike lnd, which pings
/// every interval whatever the traffic, this pings only a quiet link: any
/// message received proves the link alive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    ping_interval: Duration,
    pong_timeout: Duration,
    pong_bytes: u16,
    pong_budget: u32,
}

impl Config {
    /// lnd's ping interval: a ping after a minute with nothing heard.
    pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(60);
    /// lnd's pong timeout.
    pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(30);
    /// Pong bytes our pings ask for: none (LDK's choice too).
    pub const DEFAULT_PONG_BYTES: u16 = 0;
    /// Pong bytes (type and length fields included) answered per ping
    /// interval: eight of the largest pongs. A peer asking for more gets
    /// no answer until the next interval, so a stream of 6-byte pings
    /// cannot make us send 64 KiB pongs without end.
    pub const DEFAULT_PONG_BUDGET: u32 = 8 * (4 + MAX_ANSWERED_PONG_BYTES as u32);

    /// A ping after `ping_interval` with nothing heard from the peer; the
    /// peer dead if nothing at all comes within `pong_timeout` of it.
    ///
    /// # Errors
    /// [`Error::ZeroPingInterval`], [`Error::ZeroPongTimeout`].
    pub fn new(ping_interval: Duration, pong_timeout: Duration) -> Result<Self, Error> {
        if ping_interval.is_zero() {
            return Err(Error::ZeroPingInterval);
        }
        if pong_timeout.is_zero() {
            return Err(Error::ZeroPongTimeout);
        }
        Ok(Config {
            ping_interval,
            pong_timeout,
            pong_bytes: Self::DEFAULT_PONG_BYTES,
            pong_budget: Self::DEFAULT_PONG_BUDGET,
        })
    }

    /// Our pings ask for `bytes` pong bytes (lnd varies the size so pings
    /// look like other traffic).
    ///
    /// # Errors
    /// [`Error::UnanswerablePing`] from 65532 up: the peer must not answer.
    pub fn with_pong_bytes(mut self, bytes: u16) -> Result<Self, Error> {
        if bytes > MAX_ANSWERED_PONG_BYTES {
            return Err(Error::UnanswerablePing(bytes));
        }
        self.pong_bytes = bytes;
        Ok(self)
    }

    /// At most `bytes` of pongs answered per ping interval (0: answer no
    /// ping).
    pub fn with_pong_budget(mut self, bytes: u32) -> Self {
        self.pong_budget = bytes;
        self
    }

    /// Quiet time after which we ping.
    pub fn ping_interval(&self) -> Duration {
        self.ping_interval
    }

    /// Time after a ping within which something must come.
    pub fn pong_timeout(&self) -> Duration {
        self.pong_timeout
    }

    /// Pong bytes our pings ask for.
    pub fn pong_bytes(&self) -> u16 {
        self.pong_bytes
    }

    /// Pong bytes answered per ping interval.
    pub fn pong_budget(&self) -> u32 {
        self.pong_budget
    }

    /// The longest a dead link goes unnoticed after the last byte came
    /// from it: `ping_interval + pong_timeout` (with the machine polled at
    /// its deadlines).
    pub fn detection_bound(&self) -> Duration {
        self.ping_interval.saturating_add(self.pong_timeout)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ping_interval: Self::DEFAULT_PING_INTERVAL,
            pong_timeout: Self::DEFAULT_PONG_TIMEOUT,
            pong_bytes: Self::DEFAULT_PONG_BYTES,
            pong_budget: Self::DEFAULT_PONG_BUDGET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_durations_are_refused() {
        let s = Duration::from_secs(1);
        assert_eq!(Config::new(Duration::ZERO, s), Err(Error::ZeroPingInterval));
        assert_eq!(Config::new(s, Duration::ZERO), Err(Error::ZeroPongTimeout));
    }

    #[test]
    fn unanswerable_pong_size_is_refused() {
        let c = Config::default();
        assert_eq!(
            c.clone().with_pong_bytes(65532),
            Err(Error::UnanswerablePing(65532))
        );
        assert_eq!(c.with_pong_bytes(65531).map(|c| c.pong_bytes()), Ok(65531));
    }

    #[test]
    fn default_is_lnds() {
        let c = Config::default();
        assert_eq!(c.ping_interval(), Duration::from_secs(60));
        assert_eq!(c.pong_timeout(), Duration::from_secs(30));
        assert_eq!(c.detection_bound(), Duration::from_secs(90));
    }
}
