use std::time::Duration;

use crate::{AddressPolicy, DuplicateRule};

/// How the server behaves. Every field has a documented default
/// ([`Config::default`]); change what you need and pass it to
/// [`Server::new`](crate::Server::new).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The workers' settings: backoff policy (lnd's 1 s to 1 h), stagger
    /// between a peer's addresses (lnd's 10 s), dials in flight per peer (1)
    /// and across all peers (10, as Core Lightning), and the jitter seed.
    /// See [`conn_worker::Config`].
    pub worker: conn_worker::Config,
    /// Persistent peers dialed at once by [`Server::startup`](crate::Server::startup):
    /// [`Config::DEFAULT_STARTUP_BATCH`] (lnd's 10).
    pub startup_batch: usize,
    /// The other startup peers wait a random whole number of seconds below
    /// this: [`Config::DEFAULT_STARTUP_SPREAD`] (lnd's 0..29 s).
    pub startup_spread: Duration,
    /// How long [`Server::shutdown`](crate::Server::shutdown) lets peer
    /// handlers end after cancelling them before it aborts the rest:
    /// [`Config::DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// How long a new connection that lost the duplicate rule is held
    /// (unread) in case the peer keeps it and closes the winner, and how
    /// long after winning a duplicate a connection's end counts as the
    /// peer's choice rather than a failure:
    /// [`Config::DEFAULT_DUPLICATE_GRACE`]. See [`DuplicateRule`].
    pub duplicate_grace: Duration,
    /// Which connection to keep when a peer has two:
    /// [`DuplicateRule::SmallerKeyInitiates`].
    pub duplicate_rule: DuplicateRule,
    /// Which of a peer's addresses its worker dials, in what order:
    /// IPv6, IPv4, DNS, then onion, and onion addresses skipped (with a
    /// reason) unless [`AddressPolicy::onion`] says a proxy is configured.
    pub addresses: AddressPolicy,
}

impl Config {
    /// lnd's number of peers connected at once at startup.
    pub const DEFAULT_STARTUP_BATCH: usize = 10;
    /// lnd's spread of the remaining startup connections.
    pub const DEFAULT_STARTUP_SPREAD: Duration = Duration::from_secs(30);
    /// Time for a peer to close the connection it does not keep (LDK and
    /// lnd do at once) or for a probe of the winner to fail: 5 s.
    pub const DEFAULT_DUPLICATE_GRACE: Duration = Duration::from_secs(5);
    /// Time peer handlers get to end at shutdown before they are aborted.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
}

impl Default for Config {
    fn default() -> Self {
        Self {
            worker: conn_worker::Config::default(),
            startup_batch: Self::DEFAULT_STARTUP_BATCH,
            startup_spread: Self::DEFAULT_STARTUP_SPREAD,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            duplicate_grace: Self::DEFAULT_DUPLICATE_GRACE,
            duplicate_rule: DuplicateRule::default(),
            addresses: AddressPolicy::default(),
        }
    }
}
