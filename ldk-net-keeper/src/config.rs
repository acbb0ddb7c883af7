//! The adapter's timeouts.

use std::time::Duration;

/// A configuration value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A timeout or interval of zero.
    #[error("{0} must be above zero")]
    Zero(&'static str),
}

/// How long a dial may take and how often LDK is asked about a new peer.
///
/// Built from [`Config::default`] and validated by each `with_` method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    connect_timeout: Duration,
    setup_timeout: Duration,
    poll_interval: Duration,
}

impl Config {
    /// The default connect timeout: lightning-net-tokio's own 10 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default time for LDK's noise handshake and `init` after the
    /// stream is open.
    pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default interval at which a pending connection's state is read
    /// from the `PeerManager`.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(10);

    /// Sets the connect timeout (the whole transport connect: DNS, TCP,
    /// the proxy).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::Zero("connect timeout"));
        }
        self.connect_timeout = timeout;
        Ok(self)
    }

    /// Sets the setup timeout (LDK's handshake and `init`).
    pub fn with_setup_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::Zero("setup timeout"));
        }
        self.setup_timeout = timeout;
        Ok(self)
    }

    /// Sets the poll interval.
    pub fn with_poll_interval(mut self, interval: Duration) -> Result<Self, ConfigError> {
        if interval.is_zero() {
            return Err(ConfigError::Zero("poll interval"));
        }
        self.poll_interval = interval;
        Ok(self)
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The setup timeout.
    pub fn setup_timeout(&self) -> Duration {
        self.setup_timeout
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            setup_timeout: Self::DEFAULT_SETUP_TIMEOUT,
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
        }
    }
}
