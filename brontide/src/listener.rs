//! A TCP listener that runs responder handshakes concurrently and yields
//! established connections, with every failed handshake an event and a
//! counter.
//!
//! # Admission
//!
//! A handshake costs CPU (three ECDH for us per client) only once the
//! client has sent something, so the listener keeps two bounds:
//!
//! - **Pending** ([`max_pending`](ListenerConfig::max_pending)): accepted
//!   connections that have not yet been given a handshake slot. A
//!   connection waits here until its whole act one (50 bytes) has arrived,
//!   then for a free slot: only a connection ready for its handshake takes
//!   a slot. When the pending set is full the listener takes in a new
//!   connection only if it can evict an *unready* one: accepted at least
//!   [`silence_grace`](ListenerConfig::with_silence_grace) ago and its act
//!   one not complete yet, whether it sent nothing or a few bytes (the
//!   oldest such; the listener looks at the socket itself, so a client
//!   whose act one has arrived is never taken for unready, however busy
//!   the runtime); otherwise it stops accepting and the new connections
//!   wait in the kernel's backlog, as lnd's listener (which takes a slot
//!   before `accept`) leaves them. So a flood of connections that send
//!   nothing, or a byte each, only ever evicts itself, and honest clients
//!   beyond the bound wait instead of being reset.
//! - **Handshakes** ([`max_handshakes`](ListenerConfig::max_handshakes)):
//!   handshakes in progress at once, in the order their acts one
//!   completed. A slot is held until the connection is handed to
//!   [`Listener::accept`] (or refused).
//!
//! A client that sends act one slowly (slowloris) holds no slot, is
//! evictable like a silent one, and is dropped after one act timeout; in
//! act three it holds its slot for at most the act timeout. There is no
//! bound per source address.
//!
//! Every connection that does not become an [`Accepted`] is reported as a
//! [`ListenerEvent::HandshakeFailed`] (with the act, the spec's failure code
//! for a peer fault, and the remote address) and counted in
//! [`ListenerStats`]; see [`Listener::monitor`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpSocket, TcpStream, ToSocketAddrs};
use tokio::sync::{broadcast, mpsc, Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::Connection;
use crate::dial::DEFAULT_ACT_TIMEOUT;
use crate::error::{Act, Category, ConfigError, Error, PeerFault};
use crate::handshake::ACT_ONE_LEN;
use crate::io::{respond, timeout_unless_ready};
use crate::keys::NodeSigner;
use crate::socket::{configure, configure_listener, Keepalive};
use crate::watched::Watched;

/// Default bound on handshakes in progress at once (lnd's).
pub const DEFAULT_MAX_HANDSHAKES: usize = 50;

/// Default bound on accepted connections waiting for a handshake slot.
pub const DEFAULT_MAX_PENDING: usize = 256;

/// Default time a connection may take to deliver its act one before it can
/// be evicted. An honest client sends act one as soon as its connect
/// completes, so this is far more than a busy host's scheduling delay,
/// while a full pending set of unready connections still turns over four
/// times a second.
pub const DEFAULT_SILENCE_GRACE: Duration = Duration::from_millis(250);

/// Length of the kernel's queue of connections not yet accepted, for
/// [`Listener::bind`] (the kernel caps it at `net.core.somaxconn`). The
/// listener stops accepting while its pending set is full and leaves new
/// connections there, so the queue must hold a burst of honest clients:
/// at the standard library's 128, a connect beyond it loses its SYN and
/// waits a second for the retransmission.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Events kept for a subscriber that falls behind; older ones are lost
/// (the counters in [`ListenerStats`] are never lost).
const EVENT_BUFFER: usize = 1024;

/// Decides, after act three, whether to keep a connection from a remote key.
type KeyFilter = Arc<dyn Fn(&PublicKey, &SocketAddr) -> bool + Send + Sync>;

/// Settings for a [`Listener`]. Built from [`ListenerConfig::default`];
/// the setters that can be given a value that cannot work refuse it.
#[derive(Clone)]
#[non_exhaustive]
pub struct ListenerConfig {
    max_handshakes: usize,
    max_pending: usize,
    silence_grace: Duration,
    /// Time allowed for each act. Default [`DEFAULT_ACT_TIMEOUT`]. The wait
    /// of a new connection for its first byte and a slot has the same
    /// bound.
    pub act_timeout: Duration,
    keepalive: Option<Keepalive>,
    filter: Option<KeyFilter>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_pending: DEFAULT_MAX_PENDING,
            silence_grace: DEFAULT_SILENCE_GRACE,
            act_timeout: DEFAULT_ACT_TIMEOUT,
            keepalive: Some(Keepalive::default()),
            filter: None,
        }
    }
}

impl fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("max_handshakes", &self.max_handshakes)
            .field("max_pending", &self.max_pending)
            .field("silence_grace", &self.silence_grace)
            .field("act_timeout", &self.act_timeout)
            .field("keepalive", &self.keepalive)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl ListenerConfig {
    /// Sets the bound on handshakes in progress at once. Default
    /// [`DEFAULT_MAX_HANDSHAKES`].
    ///
    /// # Errors
    /// [`ConfigError::ZeroMaxHandshakes`] for 0;
    /// [`ConfigError::TooManyHandshakes`] above tokio's
    /// `Semaphore::MAX_PERMITS` (`usize::MAX >> 3`), which the slots are.
    pub fn with_max_handshakes(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroMaxHandshakes);
        }
        if max > Semaphore::MAX_PERMITS {
            return Err(ConfigError::TooManyHandshakes {
                max: Semaphore::MAX_PERMITS,
            });
        }
        self.max_handshakes = max;
        Ok(self)
    }

    /// Sets the bound on accepted connections waiting for a handshake slot
    /// (see the module docs). Default [`DEFAULT_MAX_PENDING`].
    ///
    /// # Errors
    /// [`ConfigError::ZeroMaxPending`] for 0.
    pub fn with_max_pending(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroMaxPending);
        }
        self.max_pending = max;
        Ok(self)
    }

    /// Sets how long a connection may take to deliver its whole act one
    /// before it can be evicted from a full pending set. Default
    /// [`DEFAULT_SILENCE_GRACE`]; a grace too long for the clock (such as
    /// `Duration::MAX`) means never.
    pub fn with_silence_grace(mut self, grace: Duration) -> Self {
        self.silence_grace = grace;
        self
    }

    /// Sets the per-act timeout.
    pub fn with_act_timeout(mut self, timeout: Duration) -> Self {
        self.act_timeout = timeout;
        self
    }

    /// Sets TCP keepalive on accepted sockets (`None`: off). Default
    /// [`Keepalive::default`].
    pub fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Keeps only connections for which `filter(remote key, remote address)`
    /// returns `true`; the others are closed right after act three.
    pub fn with_filter(
        mut self,
        filter: impl Fn(&PublicKey, &SocketAddr) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// The bound on handshakes in progress at once.
    pub fn max_handshakes(&self) -> usize {
        self.max_handshakes
    }

    /// The bound on connections waiting for a handshake slot.
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// The keepalive set on accepted sockets.
    pub fn keepalive(&self) -> Option<Keepalive> {
        self.keepalive
    }
}

/// A connection the listener accepted and completed the handshake on.
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The connection.
    pub connection: Connection<TcpStream>,
    /// The remote socket address (its port is ephemeral: never dial it).
    pub remote_addr: SocketAddr,
}

impl Accepted {
    /// The remote node's static public key.
    pub fn remote_pubkey(&self) -> PublicKey {
        self.connection.remote_pubkey()
    }
}

/// Something the listener reports besides the connections it yields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenerEvent {
    /// An inbound connection did not become an [`Accepted`].
    HandshakeFailed(InboundFailure),
}

/// An inbound connection that failed: who, in which act, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundFailure {
    /// The remote socket address.
    pub remote_addr: SocketAddr,
    /// The act the handshake was in (act one before it started).
    pub act: Act,
    /// Why it failed.
    pub reason: FailureReason,
}

impl InboundFailure {
    /// The spec's failure code for a peer fault, e.g. `ACT1_BAD_VERSION`.
    pub fn code(&self) -> Option<String> {
        match &self.reason {
            FailureReason::Peer(fault) => {
                Some(format!("ACT{}_{}", self.act.number(), fault.label()))
            }
            _ => None,
        }
    }

    /// Who or what is to blame (a refused key and an eviction are
    /// [`Category::Local`]: this side's decisions).
    pub fn category(&self) -> Category {
        match &self.reason {
            FailureReason::Peer(_) => Category::Peer,
            FailureReason::TimedOut => Category::Timeout,
            FailureReason::Io(_) => Category::Network,
            FailureReason::Evicted | FailureReason::KeyRefused(_) | FailureReason::Local => {
                Category::Local
            }
        }
    }
}

impl fmt::Display for InboundFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "inbound handshake from {} failed in {}: ",
            self.remote_addr, self.act
        )?;
        match (&self.reason, self.code()) {
            (FailureReason::Peer(fault), Some(code)) => write!(f, "{fault} ({code})"),
            (reason, _) => reason.fmt(f),
        }
    }
}

/// Why an inbound connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// The client sent an invalid act.
    Peer(PeerFault),
    /// The client did not complete the act in time.
    TimedOut,
    /// The socket failed (reset, ...).
    Io(io::ErrorKind),
    /// Dropped before its whole act one had arrived, to make room for a
    /// new connection.
    Evicted,
    /// The handshake completed and the key filter refused this key.
    KeyRefused(PublicKey),
    /// This side failed: its randomness, its signer (an error or a
    /// panic), its key filter (a panic).
    Local,
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Peer(fault) => fault.fmt(f),
            FailureReason::TimedOut => f.write_str("timed out"),
            FailureReason::Io(kind) => write!(f, "i/o error: {kind}"),
            FailureReason::Evicted => f.write_str("evicted before its act one"),
            FailureReason::KeyRefused(key) => write!(f, "key {key} refused"),
            FailureReason::Local => f.write_str("local failure"),
        }
    }
}

/// The listener's counters since it started, and its two gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Handshakes completed and handed to [`Listener::accept`].
    pub established: u64,
    /// Connections refused by the key filter after act three.
    pub refused: u64,
    /// Handshakes failed by the client's fault (an invalid act).
    pub peer_faults: u64,
    /// Handshakes whose client did not complete an act in time.
    pub timed_out: u64,
    /// Connections evicted before their act one, to make room.
    pub evicted: u64,
    /// Handshakes ended by a socket error.
    pub io_errors: u64,
    /// Handshakes failed on this side.
    pub local_errors: u64,
    /// Connections now waiting for their act one or a slot.
    pub pending: usize,
    /// Handshakes now in progress (or waiting for delivery).
    pub handshaking: usize,
}

impl ListenerStats {
    /// Connections that did not become an [`Accepted`].
    pub fn failed(&self) -> u64 {
        self.refused
            + self.peer_faults
            + self.timed_out
            + self.evicted
            + self.io_errors
            + self.local_errors
    }

    fn count(&mut self, reason: &FailureReason) {
        let counter = match reason {
            FailureReason::Peer(_) => &mut self.peer_faults,
            FailureReason::TimedOut => &mut self.timed_out,
            FailureReason::Io(_) => &mut self.io_errors,
            FailureReason::Evicted => &mut self.evicted,
            FailureReason::KeyRefused(_) => &mut self.refused,
            FailureReason::Local => &mut self.local_errors,
        };
        *counter += 1;
    }
}

/// Watches a [`Listener`]: its counters and its events. Cheap to clone;
/// works after the listener has been moved elsewhere, and after it stopped.
#[derive(Debug, Clone)]
pub struct ListenerMonitor {
    stats: Arc<Watched<ListenerStats>>,
    events: broadcast::Sender<ListenerEvent>,
}

impl ListenerMonitor {
    /// The counters now.
    pub fn stats(&self) -> ListenerStats {
        self.stats.get()
    }

    /// Waits until the counters satisfy `f` (at once if they do), and
    /// returns them; `None` if the listener stops first without them having.
    pub async fn wait_until(&self, f: impl FnMut(&ListenerStats) -> bool) -> Option<ListenerStats> {
        self.stats.wait_until(f).await
    }

    /// Events from now on.
    pub fn subscribe(&self) -> ListenerEvents {
        ListenerEvents {
            rx: self.events.subscribe(),
            lost: 0,
        }
    }
}

/// A subscription to a listener's events ([`ListenerMonitor::subscribe`]).
#[derive(Debug)]
pub struct ListenerEvents {
    rx: broadcast::Receiver<ListenerEvent>,
    lost: u64,
}

impl ListenerEvents {
    /// The next event; `None` once the listener has stopped and every event
    /// has been read. A subscriber more than 1024 events behind loses the
    /// oldest ones (see [`lost`](Self::lost)).
    pub async fn recv(&mut self) -> Option<ListenerEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => self.lost += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Events lost because this subscriber fell behind.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

/// A connection accepted and not yet in a handshake slot.
struct Pending {
    id: u64,
    remote_addr: SocketAddr,
    cancel: CancellationToken,
    /// Its whole act one has arrived (it is waiting for a slot).
    ready: bool,
    /// Its socket, shared with its task until it leaves the pending set, to
    /// look for an act one that the task has not seen yet (a busy runtime
    /// may not have run the task).
    stream: Arc<TcpStream>,
    /// When it was accepted.
    since: Instant,
}

impl Pending {
    /// Whether the connection has not yet delivered its whole act one,
    /// looking at the socket itself if its task has not seen it yet. A
    /// connection that sent part of act one is as evictable as one that
    /// sent nothing: a byte costs a flooder nothing.
    fn unready(&mut self) -> bool {
        if !self.ready {
            self.ready = act_one_queued(&self.stream);
        }
        !self.ready
    }
}

/// Whether a whole act one is in the socket's receive queue (a peek: the
/// bytes stay for the handshake).
fn act_one_queued(stream: &TcpStream) -> bool {
    // tokio's sockets are non-blocking: an empty queue is `WouldBlock`.
    matches!(peek_act_one(stream), Ok(n) if n >= ACT_ONE_LEN)
}

/// How many bytes of act one are in the socket's receive queue, up to all
/// of it (0: the peer closed its side), left there.
fn peek_act_one(stream: &TcpStream) -> io::Result<usize> {
    let mut act = [MaybeUninit::<u8>::uninit(); ACT_ONE_LEN];
    SockRef::from(stream).peek(&mut act)
}

/// Waits until a whole act one has arrived (peeked, not read), or the peer
/// has closed its side (what arrived is then handed to the handshake, which
/// reports it as a short act).
async fn act_one_arrived(stream: &TcpStream) -> io::Result<()> {
    loop {
        let ready = stream.ready(Interest::READABLE).await?;
        if ready.is_read_closed() {
            return Ok(());
        }
        // Short of act one, the readiness is cleared so the wait is for
        // the next segment; tokio does not clear it if one came in after
        // the readiness was read, so none is missed.
        let peeked = stream.try_io(Interest::READABLE, || match peek_act_one(stream)? {
            n if n == 0 || n >= ACT_ONE_LEN => Ok(()),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        });
        match peeked {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// What the accept loop and the handshake tasks share.
struct Shared {
    local: Arc<dyn NodeSigner>,
    config: ListenerConfig,
    slots: Semaphore,
    pending: Mutex<VecDeque<Pending>>,
    /// A pending connection left (or the listener stops).
    room: Notify,
    stats: Arc<Watched<ListenerStats>>,
    events: broadcast::Sender<ListenerEvent>,
    accepted: mpsc::Sender<Accepted>,
    root: CancellationToken,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, VecDeque<Pending>> {
        // Plain pushes and removes: consistent across a panic.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a new connection can be taken in now; if not, when an
    /// unready one will have waited long enough to be evicted (`None`: only
    /// when a pending connection leaves).
    fn room(&self, now: Instant) -> Result<(), Option<Instant>> {
        let mut pending = self.pending();
        if pending.len() < self.config.max_pending {
            return Ok(());
        }
        let grace = self.config.silence_grace;
        let mut next = None;
        for p in pending.iter_mut().filter(|p| !p.ready) {
            // A grace past the clock's range: never evictable, nor are the
            // younger ones.
            let Some(evictable_at) = p.since.checked_add(grace) else {
                break;
            };
            if evictable_at > now {
                // Accepted in order: the rest are younger still.
                next = Some(evictable_at);
                break;
            }
            if p.unready() {
                return Ok(());
            }
        }
        Err(next)
    }

    /// Records a new pending connection, evicting the oldest unready one if
    /// the pending set is full.
    fn admit(&self, entry: Pending) {
        let evicted = {
            let mut pending = self.pending();
            let evicted = if pending.len() >= self.config.max_pending {
                let old_enough = entry.since.checked_sub(self.config.silence_grace);
                let unready = pending
                    .iter_mut()
                    .position(|p| old_enough.is_some_and(|t| p.since <= t) && p.unready());
                unready.and_then(|i| pending.remove(i))
            } else {
                None
            };
            pending.push_back(entry);
            // Cancelled, and its socket let go, under the lock: once its task
            // next takes the lock it sees the eviction.
            evicted.map(|evicted| {
                evicted.cancel.cancel();
                evicted.remote_addr
            })
        };
        let replaced = evicted.is_some();
        self.update(|s| {
            s.accepted += 1;
            if !replaced {
                s.pending += 1;
            }
        });
        if let Some(remote_addr) = evicted {
            self.fail(remote_addr, Act::One, FailureReason::Evicted);
        }
    }

    fn mark_ready(&self, id: u64) {
        if let Some(p) = self.pending().iter_mut().find(|p| p.id == id) {
            p.ready = true;
        }
    }

    /// Removes a pending connection (if it was not evicted already), and
    /// counts it as handshaking if it goes on to its handshake: one update
    /// of the counters for both.
    fn leave(&self, id: u64, handshaking: bool) {
        let removed = {
            let mut pending = self.pending();
            let before = pending.len();
            pending.retain(|p| p.id != id);
            before != pending.len()
        };
        if removed || handshaking {
            self.update(|s| {
                if removed {
                    s.pending -= 1;
                }
                if handshaking {
                    s.handshaking += 1;
                }
            });
        }
        self.room.notify_one();
    }

    fn update(&self, f: impl FnOnce(&mut ListenerStats)) {
        self.stats.update(f);
    }

    fn fail(&self, remote_addr: SocketAddr, act: Act, reason: FailureReason) {
        tracing::debug!(%remote_addr, %act, %reason, "inbound handshake failed");
        self.update(|s| s.count(&reason));
        let _ = self
            .events
            .send(ListenerEvent::HandshakeFailed(InboundFailure {
                remote_addr,
                act,
                reason,
            }));
    }
}

impl Drop for Shared {
    /// The last task has ended: the counters are final.
    fn drop(&mut self) {
        self.stats.stop();
    }
}

/// Accepts TCP connections and runs their handshakes in the background.
///
/// Dropping the listener stops accepting and ends every handshake in
/// progress; [`shutdown`](Self::shutdown) does the same and waits for the
/// tasks to end.
pub struct Listener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<Accepted>,
    monitor: ListenerMonitor,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Listener {
    /// Binds to `addr` (the first of its addresses that can be bound) and
    /// starts accepting, with `local` as the node's static key (a
    /// [`NodeKeyPair`](crate::NodeKeyPair) or any [`NodeSigner`]). The
    /// kernel's queue of connections not yet accepted holds
    /// [`LISTEN_BACKLOG`].
    ///
    /// # Errors
    /// If `addr` resolves to nothing or binding fails.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        local: impl NodeSigner,
        config: ListenerConfig,
    ) -> io::Result<Listener> {
        let mut last = None;
        for addr in tokio::net::lookup_host(addr).await? {
            match listen_on(addr) {
                Ok(listener) => return Listener::from_tcp(listener, local, config),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
    }

    /// Starts accepting on a bound TCP listener. Must be called within a
    /// tokio runtime. The socket options of accepted sockets (`TCP_NODELAY`,
    /// the configured keepalive) are set on `listener` itself where the
    /// system copies them to accepted sockets (Linux), else on each
    /// accepted socket.
    ///
    /// # Errors
    /// If the listener's local address cannot be read.
    pub fn from_tcp(
        listener: TcpListener,
        local: impl NodeSigner,
        config: ListenerConfig,
    ) -> io::Result<Listener> {
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(config.max_handshakes);
        let stats = Arc::new(Watched::default());
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let monitor = ListenerMonitor {
            stats: Arc::clone(&stats),
            events: events.clone(),
        };
        let shared = Arc::new(Shared {
            local: Arc::new(local),
            slots: Semaphore::new(config.max_handshakes),
            config,
            pending: Mutex::new(VecDeque::new()),
            room: Notify::new(),
            stats,
            events,
            accepted: tx,
            root: cancel.clone(),
        });
        let inherited = configure_listener(&listener, shared.config.keepalive);
        tracker.spawn(accept_loop(listener, shared, tracker.clone(), inherited));
        tracker.close();
        Ok(Listener {
            local_addr,
            accepted: rx,
            monitor,
            cancel,
            tracker,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next established connection; `None` once the listener has stopped.
    pub async fn accept(&mut self) -> Option<Accepted> {
        self.accepted.recv().await
    }

    /// A handle on the listener's counters and events.
    pub fn monitor(&self) -> ListenerMonitor {
        self.monitor.clone()
    }

    /// Stops accepting, ends every handshake in progress and waits until all
    /// of the listener's tasks have ended.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// A listening socket on `addr` with [`LISTEN_BACKLOG`], address reuse on
/// (as the standard library's, so a restart binds while old connections
/// linger in `TIME_WAIT`).
fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// `configured`: accepted sockets come with their options from the
/// listening socket (see `configure_listener`).
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    configured: bool,
) {
    let cancel = shared.root.clone();
    let mut next_id = 0u64;
    loop {
        // Take a connection in only if there is room for it; otherwise
        // leave it in the kernel's backlog.
        while let Err(next) = shared.room(Instant::now()) {
            let evictable = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = shared.room.notified() => {}
                () = evictable => {}
            }
        }
        let (stream, remote_addr) = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: back off briefly
                    // rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        if !configured {
            if let Err(e) = configure(&stream, shared.config.keepalive) {
                tracing::debug!(%remote_addr, error = %e, "socket options not set");
            }
        }
        next_id += 1;
        let id = next_id;
        let task_cancel = cancel.child_token();
        let stream = Arc::new(stream);
        shared.admit(Pending {
            id,
            remote_addr,
            cancel: task_cancel.clone(),
            ready: false,
            stream: Arc::clone(&stream),
            since: Instant::now(),
        });
        tracker.spawn(handshake_task(
            stream,
            remote_addr,
            Arc::clone(&shared),
            task_cancel,
            id,
        ));
    }
}

/// Removes a connection from the pending set however its task ends.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl PendingGuard<'_> {
    /// Leaves the pending set for a handshake slot.
    fn into_handshake(self) {
        let (shared, id) = (self.shared, self.id);
        std::mem::forget(self);
        shared.leave(id, true);
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.leave(self.id, false);
    }
}

/// Counts a handshake in progress however its task ends.
struct HandshakingGuard<'a>(&'a Shared);

impl HandshakingGuard<'_> {
    /// The connection is handed over: one update of the counters for the
    /// end of the handshake and the delivery.
    fn delivered(self) {
        let shared = self.0;
        std::mem::forget(self);
        shared.update(|s| {
            s.handshaking -= 1;
            s.established += 1;
        });
    }
}

impl Drop for HandshakingGuard<'_> {
    fn drop(&mut self) {
        self.0.update(|s| s.handshaking -= 1);
    }
}

async fn handshake_task(
    stream: Arc<TcpStream>,
    remote_addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    id: u64,
) {
    let timeout = shared.config.act_timeout;
    let pending = PendingGuard {
        shared: &shared,
        id,
    };
    // One wait for the cancellation (an eviction or the shutdown) for the
    // whole task.
    let mut cancelled = std::pin::pin!(cancel.cancelled());
    // Wait for the whole act one, then for a slot: only a connection that
    // is ready for its handshake waits for a slot.
    let waited = tokio::select! {
        biased;
        () = cancelled.as_mut() => None,
        waited = timeout_unless_ready(timeout, async {
            act_one_arrived(&stream).await?;
            shared.mark_ready(id);
            shared.slots.acquire().await.map_err(io::Error::other)
        }) => Some(waited),
    };
    let permit = match waited {
        // Evicted (already reported) or shut down.
        None => return,
        Some(Err(_)) => return shared.fail(remote_addr, Act::One, FailureReason::TimedOut),
        Some(Ok(Err(e))) => return shared.fail(remote_addr, Act::One, FailureReason::Io(e.kind())),
        Some(Ok(Ok(permit))) => permit,
    };
    if cancel.is_cancelled() {
        return;
    }
    // Out of the pending set (unless evicted meanwhile) the task holds the
    // only reference to the socket.
    pending.into_handshake();
    let handshaking = HandshakingGuard(&shared);
    let Ok(mut stream) = Arc::try_unwrap(stream) else {
        return shared.fail(remote_addr, Act::One, FailureReason::Local);
    };
    // The signer is the caller's code, and runs in act one only (its
    // `node_id` for the responder, its ECDH with the initiator's ephemeral
    // key): a panic in it is this side's failure in act one, reported as
    // such, and the task ends with its bookkeeping true.
    let result = tokio::select! {
        biased;
        () = cancelled.as_mut() => Err(Error::Cancelled),
        result = catch_unwind(respond(&mut stream, &shared.local, timeout)) => match result {
            Ok(result) => result,
            Err(()) => return shared.fail(remote_addr, Act::One, FailureReason::Local),
        },
    }
    .map(|session| Connection::new(stream, session));
    let connection = match result {
        Ok(connection) => connection,
        Err(e) => {
            if let Some((act, reason)) = failure(&e) {
                shared.fail(remote_addr, act, reason);
            }
            return;
        }
    };
    let remote = connection.remote_pubkey();
    // The filter is the caller's code too: a panic in it refuses nobody
    // and keeps nobody; it is this side's failure after act three.
    let keep = shared.config.filter.as_ref().map_or(Ok(true), |f| {
        std::panic::catch_unwind(AssertUnwindSafe(|| f(&remote, &remote_addr)))
    });
    match keep {
        Ok(true) => {}
        Ok(false) => {
            return shared.fail(remote_addr, Act::Three, FailureReason::KeyRefused(remote))
        }
        Err(_) => return shared.fail(remote_addr, Act::Three, FailureReason::Local),
    }
    let accepted = Accepted {
        connection,
        remote_addr,
    };
    tokio::select! {
        () = cancelled.as_mut() => {}
        room = shared.accepted.reserve() => {
            if let Ok(room) = room {
                // Counted before it can be seen, so a caller that has it
                // also sees it counted.
                handshaking.delivered();
                room.send(accepted);
            }
        }
    }
    drop(permit);
}

/// Runs `fut`, turning a panic in one of its polls into `Err(())` (the
/// future is not polled again; the panic hook has already seen the panic).
async fn catch_unwind<F: Future>(fut: F) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    })
    .await
}

/// What to report for a handshake that failed; `None` for a shutdown.
fn failure(e: &Error) -> Option<(Act, FailureReason)> {
    Some(match e {
        Error::Cancelled => return None,
        Error::HandshakeTimedOut(act) => (*act, FailureReason::TimedOut),
        Error::Handshake(h) => match h.peer_fault() {
            Some(fault) => (h.act(), FailureReason::Peer(fault)),
            None => (h.act(), FailureReason::Local),
        },
        Error::HandshakeIo { act, source } => (*act, FailureReason::Io(source.kind())),
        _ => (Act::One, FailureReason::Local),
    })
}
