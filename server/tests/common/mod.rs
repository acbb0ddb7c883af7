//! Shared fixtures for the server's integration tests: keys, a connection
//! type both ends of an in-memory link share, a dialer over testkit's
//! `MockDialer`, an in-memory network of servers, and a peer handler the
//! test can drive.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use brontide::Connection;
use conn_worker::Dialer;
use futures::{SinkExt, StreamExt};
use server::{Config, Direction, DisconnectReason, NetAddress, NodeAddr, PeerHandler, Server};
use testkit::{ManualClock, MockConn, MockDialer, MockError};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub fn key(b: u8) -> PublicKey {
    let sk = SecretKey::from_slice(&[b; 32]).expect("1..=255 repeated is a valid scalar");
    PublicKey::from_secret_key(&Secp256k1::signing_only(), &sk)
}

/// A key that sorts above `peer`'s: a node with it keeps inbound
/// connections from `peer` under the smaller-key rule.
pub fn key_above(peer: PublicKey) -> PublicKey {
    (2..=255u8)
        .map(key)
        .find(|k| k.serialize() > peer.serialize())
        .expect("some key sorts above")
}

/// A key that sorts below `peer`'s.
pub fn key_below(peer: PublicKey) -> PublicKey {
    (2..=255u8)
        .map(key)
        .find(|k| k.serialize() < peer.serialize())
        .expect("some key sorts below")
}

pub fn addr(port: u16) -> NetAddress {
    NetAddress::Ip(([10, 0, 0, 1], port).into())
}

pub fn node(peer: PublicKey, port: u16) -> NodeAddr {
    NodeAddr::new(peer, addr(port))
}

/// One end of a connection. Both ends of an in-memory link share `id` and
/// `closed`; dropping either end closes the link for both.
pub struct Conn {
    pub id: u64,
    closed: CancellationToken,
    _mock: Option<MockConn>,
    /// Runs when this end is dropped (user code in a connection's `Drop`).
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1_000_000);

impl Conn {
    /// A link's two ends.
    pub fn pair() -> (Conn, Conn) {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let closed = CancellationToken::new();
        let a = Conn {
            id,
            closed: closed.clone(),
            _mock: None,
            on_drop: None,
        };
        let b = Conn {
            id,
            closed,
            _mock: None,
            on_drop: None,
        };
        (a, b)
    }

    /// A lone end: its other end is the test, which never closes it.
    pub fn lone() -> Conn {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Conn {
            id,
            closed: CancellationToken::new(),
            _mock: None,
            on_drop: None,
        }
    }

    /// A lone end whose `Drop` runs `f` (after closing the link), as a
    /// connection type of the user's may: it may call the server, or panic.
    pub fn lone_dropping(f: impl FnOnce() + Send + 'static) -> Conn {
        let mut conn = Conn::lone();
        conn.on_drop = Some(Box::new(f));
        conn
    }

    /// A token that fires when this link closes.
    pub fn watch(&self) -> CancellationToken {
        self.closed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.closed.cancel();
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

/// testkit's scripted dialer, its connections wrapped as [`Conn`].
#[derive(Clone)]
pub struct Mock(pub MockDialer<PublicKey, NodeAddr>);

impl Dialer for Mock {
    type Addr = NodeAddr;
    type Conn = Conn;
    type Error = MockError;

    async fn dial(&self, addr: &NodeAddr, cancel: CancellationToken) -> Result<Conn, MockError> {
        let mock = self.0.dial(addr, cancel).await?;
        Ok(Conn {
            id: mock.id(),
            closed: CancellationToken::new(),
            _mock: Some(mock),
            on_drop: None,
        })
    }

    fn classify(&self, error: &MockError) -> conn_worker::FailureClass {
        self.0.classify(error)
    }
}

/// What the handler saw of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub peer: PublicKey,
    pub id: u64,
    pub direction: Direction,
}

#[derive(Default)]
struct HandlerState {
    runs: Vec<Run>,
    closers: HashMap<PublicKey, Vec<(u64, oneshot::Sender<()>)>>,
}

/// A peer handler that holds each connection until the server cancels it,
/// the other end closes it, or the test [`close`](Self::close)s it.
#[derive(Clone, Default)]
pub struct Handler {
    state: Arc<Mutex<HandlerState>>,
    /// A badly written application: ignores the server's cancellation.
    stubborn: Arc<std::sync::atomic::AtomicBool>,
    /// A buggy application: the next runs panic.
    panics: Arc<AtomicU64>,
}

impl Handler {
    /// Every connection the handler was given, in order.
    pub fn runs(&self) -> Vec<Run> {
        self.state.lock().expect("test lock").runs.clone()
    }

    /// From now on, ignore the server's cancellation (as a badly written
    /// application would).
    pub fn ignore_cancellation(&self) {
        self.stubborn.store(true, Ordering::SeqCst);
    }

    /// The next `n` connections panic in the handler (after being
    /// recorded), as a buggy application would.
    pub fn panic_next(&self, n: u64) {
        self.panics.store(n, Ordering::SeqCst);
    }

    /// Ends the peer's connections as if the peer had closed them.
    pub fn close(&self, peer: &PublicKey) {
        let closers = self.state.lock().expect("test lock").closers.remove(peer);
        for (_, tx) in closers.into_iter().flatten() {
            let _ = tx.send(());
        }
    }
}

impl PeerHandler<Conn> for Handler {
    async fn run(
        &self,
        peer: PublicKey,
        conn: Conn,
        direction: Direction,
        cancel: CancellationToken,
    ) -> DisconnectReason {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.state.lock().expect("test lock");
            s.runs.push(Run {
                peer,
                id: conn.id,
                direction,
            });
            s.closers.entry(peer).or_default().push((conn.id, tx));
        }
        let panic = self
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if panic {
            panic!("a buggy peer handler");
        }
        let closed = conn.closed.clone();
        let cancelled = async {
            if self.stubborn.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            cancel.cancelled().await;
        };
        tokio::select! {
            () = cancelled => DisconnectReason::Cancelled,
            () = closed.cancelled() => DisconnectReason::Remote("other end closed".into()),
            _ = rx => DisconnectReason::Remote("closed by the test".into()),
        }
    }
}

pub type MockServer = Server<Mock, ManualClock, Handler>;

/// A server on a manual clock and a mock dialer with a fixed seed.
pub struct Fixture {
    pub clock: ManualClock,
    pub dialer: MockDialer<PublicKey, NodeAddr>,
    pub handler: Handler,
    pub server: MockServer,
}

pub fn config() -> Config {
    let mut c = Config::default();
    c.worker = c.worker.with_seed(7);
    c
}

impl Fixture {
    pub fn new(local: PublicKey) -> Self {
        Self::with_config(local, config())
    }

    pub fn with_config(local: PublicKey, config: Config) -> Self {
        let clock = ManualClock::new();
        let dialer = MockDialer::new(clock.clone());
        let handler = Handler::default();
        let server = Server::new(
            local,
            config,
            Mock(dialer.clone()),
            clock.clone(),
            handler.clone(),
        );
        Fixture {
            clock,
            dialer,
            handler,
            server,
        }
    }

    /// The most dials in flight at once for `peer`, from the dialer's record.
    pub fn max_in_flight_for(&self, peer: &PublicKey) -> usize {
        max_overlap(
            self.dialer
                .attempts()
                .iter()
                .filter(|a| a.addr.pubkey == *peer)
                .map(|a| (a.started, a.ended)),
        )
    }
}

/// The most intervals open at once (an interval with no end is still open).
pub fn max_overlap(
    intervals: impl Iterator<Item = (tokio::time::Instant, Option<tokio::time::Instant>)>,
) -> usize {
    let mut points = Vec::new();
    for (start, end) in intervals {
        points.push((start, 1i64));
        if let Some(end) = end {
            points.push((end, -1));
        }
    }
    // Ends before starts at the same instant: back-to-back is not overlap.
    points.sort_by_key(|&(t, d)| (t, d));
    let (mut open, mut max) = (0i64, 0i64);
    for (_, d) in points {
        open += d;
        max = max.max(open);
    }
    max as usize
}

/// Servers that dial each other in memory: a dial from one hands the other
/// end of a fresh link to the target's `inbound`.
#[derive(Clone)]
pub struct Net {
    local: PublicKey,
    servers: Arc<Mutex<HashMap<PublicKey, Weak<NetServer>>>>,
    pub dials: Arc<AtomicU64>,
}

pub type NetServer = Server<Net, ManualClock, Handler>;

/// Why an in-memory dial failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("no server listens for that key")]
    Unreachable,
    #[error("dial cancelled")]
    Cancelled,
}

impl Dialer for Net {
    type Addr = NodeAddr;
    type Conn = Conn;
    type Error = NetError;

    async fn dial(&self, addr: &NodeAddr, cancel: CancellationToken) -> Result<Conn, NetError> {
        self.dials.fetch_add(1, Ordering::Relaxed);
        // Let every other dial start too: both sides are in flight at once.
        tokio::task::yield_now().await;
        if cancel.is_cancelled() {
            return Err(NetError::Cancelled);
        }
        let target = self
            .servers
            .lock()
            .expect("test lock")
            .get(&addr.pubkey)
            .and_then(Weak::upgrade);
        let target = target.ok_or(NetError::Unreachable)?;
        let (ours, theirs) = Conn::pair();
        target.inbound(self.local, theirs, None);
        Ok(ours)
    }
}

/// Builds servers on one in-memory network, sharing one clock.
pub struct Network {
    pub clock: ManualClock,
    servers: Arc<Mutex<HashMap<PublicKey, Weak<NetServer>>>>,
    keep: Vec<Arc<NetServer>>,
}

impl Network {
    pub fn new() -> Self {
        Network {
            clock: ManualClock::new(),
            servers: Arc::default(),
            keep: Vec::new(),
        }
    }

    pub fn server(&mut self, local: PublicKey, config: Config) -> (Arc<NetServer>, Handler) {
        let handler = Handler::default();
        let net = Net {
            local,
            servers: Arc::clone(&self.servers),
            dials: Arc::default(),
        };
        let server = Arc::new(Server::new(
            local,
            config,
            net,
            self.clock.clone(),
            handler.clone(),
        ));
        self.servers
            .lock()
            .expect("test lock")
            .insert(local, Arc::downgrade(&server));
        self.keep.push(Arc::clone(&server));
        (server, handler)
    }
}

pub const SECOND: Duration = Duration::from_secs(1);

/// Reads each connection until it ends, answering each message; with
/// `cut`, also gives up (as an application's idle timeout would, but when
/// the test says so) on every connection it runs while `cut` is `true`.
pub struct Reader {
    /// Ends the connections while `true`; `None`: never.
    pub cut: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Reader {
    /// Holds each connection until the server cancels it or the peer closes it.
    pub const HOLD: Reader = Reader { cut: None };
}

/// Waits until `settled` holds of state that no event announces (the task
/// count, a mock's dials in flight, open file descriptors), which follows
/// what the test awaited by a few turns of the runtime: re-checked after
/// each yield, no sleep. Bounded by a hang guard, never a timing margin.
pub async fn settle_on(what: &str, mut settled: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !settled() {
        assert!(std::time::Instant::now() < deadline, "hung: never {what}");
        tokio::task::yield_now().await;
    }
}

/// Waits, event by event, until `done` holds (it reads the server's
/// state, which is updated before the event that announces it goes out).
/// Subscribe `events` before the awaited change can happen.
pub async fn until_event<T: Clone>(
    events: &mut tokio::sync::broadcast::Receiver<T>,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let wait = async {
        while !done() {
            match events.recv().await {
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended waiting for {what}: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("hung: never {what}"));
}

impl PeerHandler<Connection<TcpStream>> for Reader {
    async fn run(
        &self,
        _: PublicKey,
        conn: Connection<TcpStream>,
        _: Direction,
        cancel: CancellationToken,
    ) -> DisconnectReason {
        let mut framed = conn.into_framed();
        let mut cut = self.cut.clone();
        loop {
            let cutting = async {
                match &mut cut {
                    // The sender lives as long as the test: an error is its end.
                    Some(cut) => drop(cut.wait_for(|c| *c).await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return DisconnectReason::Cancelled,
                () = cutting => return DisconnectReason::Local("idle".into()),
                msg = framed.next() => match msg {
                    Some(Ok(_)) => {
                        if framed.send(b"pong".as_slice()).await.is_err() {
                            return DisconnectReason::Remote("write failed".into());
                        }
                    }
                    Some(Err(e)) => return DisconnectReason::Remote(e.to_string()),
                    None => return DisconnectReason::Remote("closed".into()),
                },
            }
        }
    }
}
