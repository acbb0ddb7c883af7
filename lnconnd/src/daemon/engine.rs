//! The daemon's only contact with the `server` crate: building the node,
//! its operations, its status and its events, turned into the daemon's own
//! plain types ([`PeerView`], [`Fact`]) that the control API and the
//! metrics read. When the server's API changes, this file changes.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use brontide::{DialConfig, Listener, ListenerConfig, NodeKeyPair};
use conn_worker::State;
use conn_worker::TokioClock;
use server::{AddressPolicy, BrontideDialer, Config, Direction, Server, ServerError, ServerEvent};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::config::Settings;
use crate::node::Node;
use crate::peer::{App, SessionOpts};
/// A node's key and address, `pubkey@host:port`.
pub(crate) use server::NodeAddr;

/// Why a dial failed, in the four categories an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    /// The other node is to blame (bad handshake data).
    PeerFault,
    /// The network: refused, unreachable, reset.
    Network,
    /// Connect or a handshake act took too long.
    Timeout,
    /// Our side: cancelled, a local error.
    Local,
}

impl From<server::FailureClass> for Category {
    fn from(class: server::FailureClass) -> Self {
        match class {
            server::FailureClass::Peer => Category::PeerFault,
            server::FailureClass::Network => Category::Network,
            server::FailureClass::Timeout => Category::Timeout,
            _ => Category::Local,
        }
    }
}

impl Category {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Category::PeerFault => "peer_fault",
            Category::Network => "network",
            Category::Timeout => "timeout",
            Category::Local => "local",
        }
    }

    fn of(e: &brontide::Error) -> Category {
        use brontide::Error as E;
        match e {
            _ if e.is_peer_fault() => Category::PeerFault,
            E::ConnectTimedOut | E::HandshakeTimedOut(_) => Category::Timeout,
            E::Connect(_) | E::HandshakeIo { .. } | E::Io(_) => Category::Network,
            _ => Category::Local,
        }
    }

    /// The category of a dial error known only as text (the server's
    /// `DialFailed` event carries the dialer error's message today), read
    /// from brontide's messages.
    fn of_failure(f: &server::DialFailure<brontide::Error>) -> Category {
        match f {
            server::DialFailure::Error(e) => Category::of(e),
            server::DialFailure::TimedOut { .. } => Category::Timeout,
            _ => Category::Local,
        }
    }
}

/// Who dialed.
pub(crate) fn direction_name(d: Direction) -> &'static str {
    crate::peer::direction_name(d)
}

/// What the worker of a peer does, or that it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerState {
    Connected,
    Dialing,
    Waiting,
    AwaitingAddrs,
    Idle,
    Stopped,
    /// Connected or known, but nothing keeps it connected.
    NotPersistent,
}

impl PeerState {
    pub(crate) const ALL: [PeerState; 7] = [
        PeerState::Connected,
        PeerState::Dialing,
        PeerState::Waiting,
        PeerState::AwaitingAddrs,
        PeerState::Idle,
        PeerState::Stopped,
        PeerState::NotPersistent,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            PeerState::Connected => "connected",
            PeerState::Dialing => "dialing",
            PeerState::Waiting => "waiting",
            PeerState::AwaitingAddrs => "awaiting_addrs",
            PeerState::Idle => "idle",
            PeerState::Stopped => "stopped",
            PeerState::NotPersistent => "not_persistent",
        }
    }
}

/// A live connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnView {
    pub(crate) direction: &'static str,
    pub(crate) addr: Option<String>,
    /// Wall-clock time it was established, in milliseconds since 1970.
    pub(crate) since_unix_ms: u64,
    pub(crate) lasted: Duration,
}

/// One peer, as the control API shows it.
#[derive(Debug, Clone)]
pub(crate) struct PeerView {
    pub(crate) id: PublicKey,
    /// `Some(true)`: a user asked (`connect --perm`); `Some(false)`: kept
    /// for a channel; `None`: not persistent.
    pub(crate) perm: Option<bool>,
    pub(crate) state: PeerState,
    pub(crate) connection: Option<ConnView>,
    /// The addresses the worker will try, in that order.
    pub(crate) addresses: Vec<String>,
    /// Addresses not tried, and why.
    pub(crate) skipped: Vec<(String, String)>,
    pub(crate) last_error: Option<(String, Category)>,
    pub(crate) next_attempt_in: Option<Duration>,
    pub(crate) attempts: u64,
    pub(crate) backoff: Option<Duration>,
    pub(crate) dials_in_flight: usize,
}

impl PeerView {
    /// A peer the node knows nothing about (a banned one, say).
    pub(crate) fn bare(id: PublicKey) -> PeerView {
        PeerView {
            id,
            perm: None,
            state: PeerState::NotPersistent,
            connection: None,
            addresses: Vec::new(),
            skipped: Vec::new(),
            last_error: None,
            next_attempt_in: None,
            attempts: 0,
            backoff: None,
            dials_in_flight: 0,
        }
    }
}

/// Something the node did, for logs, metrics and subscribers.
#[derive(Debug, Clone)]
pub(crate) enum Fact {
    Connected {
        peer: PublicKey,
        direction: &'static str,
        addr: Option<String>,
    },
    Disconnected {
        peer: PublicKey,
        direction: &'static str,
        reason: String,
        lasted: Duration,
        reconnecting: bool,
    },
    DialStarted {
        peer: PublicKey,
        addr: String,
    },
    DialFailed {
        peer: PublicKey,
        addr: String,
        error: String,
        category: Category,
    },
    DuplicateResolved {
        peer: PublicKey,
        kept: &'static str,
    },
    RefusedBanned {
        peer: PublicKey,
    },
    Waiting {
        peer: PublicKey,
        wait: Duration,
        /// The worker's backoff level.
        backoff: Option<Duration>,
    },
    AddressSkipped {
        peer: PublicKey,
        addr: String,
        reason: String,
    },
    AwaitingAddrs {
        peer: PublicKey,
    },
    Idle {
        peer: PublicKey,
    },
    WorkerStopped {
        peer: PublicKey,
    },
    /// A ban reached its expiry and was lifted (the daemon's own fact).
    BanExpired {
        peer: PublicKey,
    },
    /// An inbound connection failed before the node saw a peer.
    InboundFailed {
        /// The remote socket address.
        from: SocketAddr,
        /// The spec's failure code (`ACT1_BAD_VERSION`) for a peer fault,
        /// else what happened (`timed_out`, `io_error`, `evicted`,
        /// `key_refused`, `local`).
        code: String,
        /// The failure, in words.
        error: String,
    },
}

/// A failed operation, as the control API reports it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpError {
    #[error("refusing to connect to ourselves")]
    SelfConnect,
    #[error("already connected to {0}")]
    AlreadyConnected(PublicKey),
    #[error("not connected to {0}")]
    NotConnected(PublicKey),
    #[error("peer {0} is banned")]
    Banned(PublicKey),
    #[error("{0}")]
    Unreachable(String),
    #[error("dial timed out")]
    TimedOut,
    #[error("{0}")]
    DialFailed(String, Category),
    #[error("the daemon is shutting down")]
    ShutDown,
    /// The peer store could not make the change durable (the message is
    /// the whole cause chain); nothing changed.
    #[error("peer store write failed: {0}; nothing changed")]
    Store(String),
}

impl OpError {
    /// The category of a failed one-off dial, if this is one.
    pub(crate) fn dial_category(&self) -> Option<Category> {
        match self {
            OpError::TimedOut => Some(Category::Timeout),
            OpError::DialFailed(_, c) => Some(*c),
            _ => None,
        }
    }
}

impl From<ServerError> for OpError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::SelfConnect => OpError::SelfConnect,
            ServerError::AlreadyConnected(p) => OpError::AlreadyConnected(p),
            ServerError::NotConnected(p) => OpError::NotConnected(p),
            ServerError::Banned(p) => OpError::Banned(p),
            ServerError::ShutDown => OpError::ShutDown,
            ServerError::DialTimedOut => OpError::TimedOut,
            e @ ServerError::Unreachable { .. } => OpError::Unreachable(e.to_string()),
            ServerError::Dial { class, source } => {
                let category = match source.downcast_ref::<brontide::Error>() {
                    Some(e) => Category::of(e),
                    None => Category::from(class),
                };
                OpError::DialFailed(crate::error_chain(&*source), category)
            }
            ServerError::Store(source) => OpError::Store(crate::error_chain(&*source)),
            e => OpError::DialFailed(e.to_string(), Category::Local),
        }
    }
}

/// The node the daemon runs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    node: Node,
}

impl Engine {
    /// The node with our key and the settings' dialer and tuning, its
    /// persistent peers and bans in `store`, and a subscription to its facts
    /// taken before the stored peers start (none of theirs is missed):
    /// every stored peer is dialed
    /// under the startup stagger, its last good address first, at its
    /// stored backoff level (or relaxed if its last connection lasted the
    /// policy's stable duration); every later change is written through
    /// (see [`server::Server::open`]).
    pub(crate) async fn open(
        key: &NodeKeyPair,
        settings: &Settings,
        store: peer_store::SqliteStore<server::NetAddress>,
    ) -> Result<(Engine, Facts), ServerError> {
        let t = &settings.peers;
        let mut config = Config::default();
        config.worker = (config.worker)
            .with_policy(t.policy)
            .with_max_dials_in_flight(t.max_dials_in_flight)
            .with_seed(crate::keys::random_u64());
        // The connect timeout bounds every attempt, one-off ones too (the
        // config's durations are never zero: parsing refuses it).
        if let Ok(worker) = config
            .worker
            .clone()
            .with_attempt_timeout(t.connect_timeout)
        {
            config.worker = worker;
        }
        config.startup_batch = t.startup_batch;
        config.startup_spread = t.startup_spread;
        // One deadline for the whole connect, proxy included.
        let dial = DialConfig::default().with_connect_timeout(t.connect_timeout);
        let transport = crate::node::transport(
            settings.proxy,
            settings.proxy_all,
            settings.stream_isolation,
        );
        let dialer = BrontideDialer::new(key.clone(), dial).with_transport(transport);
        // The proxy is configured once: what the server dials follows.
        config.addresses = AddressPolicy::for_dialer(&dialer);
        let (node, events) = Server::open_with_events(
            key.public_key(),
            config,
            dialer,
            TokioClock,
            App::new(SessionOpts::default()),
            store,
        )
        .await?;
        Ok((Engine { node }, Facts(events)))
    }

    /// Our node key.
    pub(crate) fn id(&self) -> PublicKey {
        self.node.local_pubkey()
    }

    /// Listens at `addr`; inbound connections go to the node until it
    /// shuts down. Banned peers are refused by the node (which reports
    /// each refusal as a fact). Returns the bound address.
    /// The listener's failed handshakes come as facts through
    /// [`Inbound::next`].
    pub(crate) async fn listen(
        &self,
        key: &NodeKeyPair,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, Inbound)> {
        let listener = Listener::bind(addr, key.clone(), ListenerConfig::default()).await?;
        let inbound = Inbound(listener.monitor().subscribe());
        Ok((self.node.serve(listener), inbound))
    }

    /// Connects: `perm` writes the peer to the store and hands it to its
    /// worker; otherwise one dial that this awaits.
    pub(crate) async fn connect(&self, node: NodeAddr, perm: bool) -> Result<(), OpError> {
        Ok(self.node.connect(node, perm).await?)
    }

    /// Closes a peer's connection and stops its worker (and removes it
    /// from the store).
    pub(crate) async fn disconnect(&self, peer: &PublicKey) -> Result<(), OpError> {
        Ok(self.node.disconnect(peer).await?)
    }

    /// Stops keeping a peer connected. Returns whether it was persistent.
    pub(crate) async fn forget(&self, peer: &PublicKey) -> Result<bool, OpError> {
        Ok(self.node.forget(peer).await?)
    }

    /// Bans a peer until `until` (`None`: for good), written first.
    pub(crate) async fn ban(
        &self,
        peer: PublicKey,
        until: Option<SystemTime>,
    ) -> Result<(), OpError> {
        Ok(self.node.ban(peer, until).await?)
    }

    /// Lifts a ban, in the store too.
    pub(crate) async fn unban(&self, peer: &PublicKey) -> Result<(), OpError> {
        Ok(self.node.unban(peer).await?)
    }

    /// The earliest end among the bans.
    pub(crate) fn next_ban_end(&self) -> Option<SystemTime> {
        self.node.next_ban_end()
    }

    /// Lifts the bans that have ended, in the store too; returns their
    /// peers.
    pub(crate) async fn unban_ended(&self) -> Result<Vec<PublicKey>, OpError> {
        Ok(self.node.unban_ended().await?)
    }

    /// How many peers are persistent.
    pub(crate) fn persistent_peers(&self) -> usize {
        self.node
            .status()
            .iter()
            .filter(|p| p.persistent.is_some())
            .count()
    }

    /// Whether the peer is banned now.
    pub(crate) fn is_banned(&self, peer: &PublicKey) -> bool {
        self.node.is_banned(peer)
    }

    /// Every ban in force and its end (`None`: permanent), sorted by key.
    pub(crate) fn bans(&self) -> Vec<(PublicKey, Option<SystemTime>)> {
        let mut bans = self.node.bans();
        bans.sort_by_key(|(p, _)| p.serialize());
        bans
    }

    /// The addresses known for a persistent peer, in the order its worker
    /// tries them: the last good one, those a user gave, the advertised.
    pub(crate) fn known_addrs(&self, peer: &PublicKey) -> Vec<server::NetAddress> {
        let worker = self.node.peer_status(peer).and_then(|p| p.worker);
        worker.map_or_else(Vec::new, |w| w.addrs.into_iter().map(|n| n.addr).collect())
    }

    pub(crate) fn is_connected(&self, peer: &PublicKey) -> bool {
        self.node.is_connected(peer)
    }

    /// Whether the peer is persistent, and if so whether a user asked.
    pub(crate) fn persistence(&self, peer: &PublicKey) -> Option<bool> {
        self.node.persistence(peer)
    }

    /// Dials in flight across all peers (the global dial slots in use).
    pub(crate) fn dials_in_flight(&self) -> usize {
        self.node.dials_in_flight()
    }

    /// Every peer the node knows of, sorted by key.
    pub(crate) fn peers(&self) -> Vec<PeerView> {
        let now = Instant::now();
        let wall = SystemTime::now();
        self.node
            .status()
            .into_iter()
            .map(|p| {
                let connection = p.connection.map(|c| {
                    let lasted = now.saturating_duration_since(c.since);
                    let since = wall.checked_sub(lasted).unwrap_or(UNIX_EPOCH);
                    ConnView {
                        direction: direction_name(c.direction),
                        addr: c.addr.map(|a| a.to_string()),
                        since_unix_ms: since
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64),
                        lasted,
                    }
                });
                let worker = p.worker;
                let state = match (&connection, worker.as_ref().map(|w| w.state)) {
                    (Some(_), _) => PeerState::Connected,
                    (None, None) => PeerState::NotPersistent,
                    (None, Some(State::Dialing)) => PeerState::Dialing,
                    (None, Some(State::Waiting)) => PeerState::Waiting,
                    (None, Some(State::AwaitingAddrs)) => PeerState::AwaitingAddrs,
                    (None, Some(State::Idle)) => PeerState::Idle,
                    (None, Some(_)) => PeerState::Stopped,
                };
                // The worker dials its last good address first, then the
                // others in the order it was given them.
                let mut addresses = Vec::new();
                if let Some(w) = &worker {
                    if let Some(good) = &w.last_good {
                        addresses.push(good.addr.to_string());
                    }
                    for a in &w.addrs {
                        let a = a.addr.to_string();
                        if !addresses.contains(&a) {
                            addresses.push(a);
                        }
                    }
                }
                PeerView {
                    id: p.pubkey,
                    perm: p.persistent,
                    state,
                    connection,
                    addresses,
                    skipped: (p.skipped.iter())
                        .map(|s| (s.addr.to_string(), s.reason.to_string()))
                        .collect(),
                    last_error: (worker.as_ref())
                        .and_then(|w| w.last_error.as_ref())
                        .map(|e| (crate::error_chain(e), Category::of_failure(e))),
                    next_attempt_in: (worker.as_ref())
                        .and_then(|w| w.next_attempt)
                        .map(|t| t.saturating_duration_since(now)),
                    attempts: worker.as_ref().map_or(0, |w| w.attempts),
                    backoff: worker.as_ref().and_then(|w| w.backoff),
                    dials_in_flight: worker.as_ref().map_or(0, |w| w.in_flight),
                }
            })
            .collect()
    }

    /// Stops every worker and connection and waits for their tasks.
    pub(crate) async fn shutdown(&self) {
        self.node.shutdown().await;
    }
}

/// A subscription to the node's facts.
pub(crate) struct Facts(tokio::sync::broadcast::Receiver<ServerEvent<brontide::Error>>);

/// What [`Facts::next`] yields.
pub(crate) enum Next {
    Fact(Fact),
    /// The subscriber fell behind and missed this many.
    Missed(u64),
    /// The node has shut down.
    Closed,
}

impl Facts {
    /// The next fact.
    pub(crate) async fn next(&mut self) -> Next {
        loop {
            match self.0.recv().await {
                Ok(event) => {
                    if let Some(fact) = fact(event) {
                        return Next::Fact(fact);
                    }
                }
                Err(RecvError::Lagged(n)) => return Next::Missed(n),
                Err(RecvError::Closed) => return Next::Closed,
            }
        }
    }
}

fn fact(event: ServerEvent<brontide::Error>) -> Option<Fact> {
    Some(match event {
        ServerEvent::Connected {
            peer,
            direction,
            addr,
        } => Fact::Connected {
            peer,
            direction: direction_name(direction),
            addr: addr.map(|a| a.to_string()),
        },
        ServerEvent::Disconnected {
            peer,
            direction,
            reason,
            lasted,
            reconnecting,
        } => Fact::Disconnected {
            peer,
            direction: direction_name(direction),
            reason: match reason {
                server::DisconnectReason::Remote(r) => format!("remote: {r}"),
                server::DisconnectReason::Local(r) => format!("local: {r}"),
                server::DisconnectReason::Cancelled => "cancelled".into(),
                other => format!("{other:?}"),
            },
            lasted,
            reconnecting,
        },
        ServerEvent::DialStarted { peer, addr } => Fact::DialStarted {
            peer,
            addr: addr.to_string(),
        },
        ServerEvent::DialFailed {
            peer,
            addr,
            failure,
            ..
        } => Fact::DialFailed {
            peer,
            addr: addr.to_string(),
            category: Category::of_failure(&failure),
            error: crate::error_chain(&failure),
        },
        ServerEvent::DuplicateResolved { peer, kept } => Fact::DuplicateResolved {
            peer,
            kept: direction_name(kept),
        },
        ServerEvent::RefusedBanned { peer } => Fact::RefusedBanned { peer },
        ServerEvent::Waiting {
            peer,
            wait,
            backoff,
            ..
        } => Fact::Waiting {
            peer,
            wait,
            backoff,
        },
        ServerEvent::AddressSkipped { peer, addr, reason } => Fact::AddressSkipped {
            peer,
            addr: addr.to_string(),
            reason: reason.to_string(),
        },
        ServerEvent::AwaitingAddrs { peer } => Fact::AwaitingAddrs { peer },
        ServerEvent::Idle { peer } => Fact::Idle { peer },
        ServerEvent::WorkerStopped { peer } => Fact::WorkerStopped { peer },
        _ => return None,
    })
}

/// The failed handshakes of one listener.
pub(crate) struct Inbound(brontide::ListenerEvents);

impl Inbound {
    /// The next failed handshake; `None` once the listener has stopped.
    pub(crate) async fn next(&mut self) -> Option<Fact> {
        loop {
            match self.0.recv().await? {
                brontide::ListenerEvent::HandshakeFailed(f) => {
                    let code = f.code().unwrap_or_else(|| {
                        match f.reason {
                            brontide::FailureReason::TimedOut => "timed_out",
                            brontide::FailureReason::Io(_) => "io_error",
                            brontide::FailureReason::Evicted => "evicted",
                            brontide::FailureReason::KeyRefused(_) => "key_refused",
                            _ => "local",
                        }
                        .to_owned()
                    });
                    return Some(Fact::InboundFailed {
                        from: f.remote_addr,
                        code,
                        error: f.to_string(),
                    });
                }
                _ => continue,
            }
        }
    }
}

/// Parses `pubkey@host[:port]`.
pub(crate) fn parse_node(s: &str) -> Result<NodeAddr, String> {
    s.parse().map_err(|e: server::AddressError| e.to_string())
}

/// Parses `host[:port]` for a known key.
pub(crate) fn node_at(pubkey: PublicKey, addr: &str) -> Result<NodeAddr, String> {
    let addr: server::NetAddress = addr
        .parse()
        .map_err(|e: server::AddressError| e.to_string())?;
    Ok(NodeAddr::new(pubkey, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_dial_errors_fall_in_their_category() {
        use brontide::Error as E;
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Category::of(&E::ConnectTimedOut), Category::Timeout);
        assert_eq!(
            Category::of(&E::Connect(brontide::ConnectError::Other(refused()))),
            Category::Network
        );
        assert_eq!(Category::of(&E::TruncatedFrame), Category::PeerFault);
        assert_eq!(Category::of(&E::Cancelled), Category::Local);
        // Worker-side failures: a timeout is a timeout, a panic is ours.
        let timed_out = server::DialFailure::<E>::TimedOut {
            after: std::time::Duration::from_secs(10),
        };
        assert_eq!(Category::of_failure(&timed_out), Category::Timeout);
        let panicked = server::DialFailure::<E>::Panicked("bug".into());
        assert_eq!(Category::of_failure(&panicked), Category::Local);
    }
}
