//! A real Lightning peer for interop tests: an LDK (`lightning` +
//! `lightning-net-tokio`) node on 127.0.0.1 that records the custom messages
//! it receives and sends the ones it is given ([`LdkNode`]), and one that
//! can be stopped and started again on the same port with the same key, a
//! restart ([`LdkPeer`]). Behind the `ldk` feature.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::{PublicKey, Secp256k1};
use lightning::ln::msgs::{DecodeError, Init, LightningError};
use lightning::ln::peer_handler::{
    CustomMessageHandler, ErroringMessageHandler, IgnoringMessageHandler, MessageHandler,
    PeerManager,
};
use lightning::ln::wire::{CustomMessageReader, Type};
use lightning::sign::KeysManager;
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::logger::{Logger, Record};
use lightning::util::ser::{LengthLimitedRead, Writeable, Writer};
use lightning_net_tokio::SocketDescriptor;
use tokio::net::TcpListener;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A custom message (type 32768 or above) as LDK carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custom {
    /// The message type.
    pub type_id: u16,
    /// The bytes after the type.
    pub payload: Vec<u8>,
}

impl Writeable for Custom {
    fn write<W: Writer>(&self, w: &mut W) -> Result<(), lightning::io::Error> {
        w.write_all(&self.payload)
    }
}

impl Type for Custom {
    fn type_id(&self) -> u16 {
        self.type_id
    }
}

/// LDK's custom-message handler: records what arrives, queues what to send.
#[derive(Default)]
pub struct Customs {
    received: Mutex<Vec<(PublicKey, Custom)>>,
    outbox: Mutex<Vec<(PublicKey, Custom)>>,
    connected: Mutex<Vec<PublicKey>>,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain pushes and takes: consistent even after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Customs {
    /// Every custom message received so far, in order.
    pub fn received(&self) -> Vec<(PublicKey, Custom)> {
        lock(&self.received).clone()
    }

    /// Peers whose `init` LDK has accepted (and not since disconnected).
    pub fn connected(&self) -> Vec<PublicKey> {
        lock(&self.connected).clone()
    }
}

impl CustomMessageReader for Customs {
    type CustomMessage = Custom;

    fn read<R: LengthLimitedRead>(
        &self,
        message_type: u16,
        buffer: &mut R,
    ) -> Result<Option<Custom>, DecodeError> {
        if message_type < 32768 {
            return Ok(None);
        }
        let len = usize::try_from(buffer.remaining_bytes()).map_err(|_| DecodeError::ShortRead)?;
        let mut payload = vec![0u8; len];
        buffer
            .read_exact(&mut payload)
            .map_err(|_| DecodeError::ShortRead)?;
        Ok(Some(Custom {
            type_id: message_type,
            payload,
        }))
    }
}

impl CustomMessageHandler for Customs {
    fn handle_custom_message(&self, msg: Custom, sender: PublicKey) -> Result<(), LightningError> {
        lock(&self.received).push((sender, msg));
        self.changed.notify_waiters();
        Ok(())
    }

    fn get_and_clear_pending_msg(&self) -> Vec<(PublicKey, Custom)> {
        std::mem::take(&mut *lock(&self.outbox))
    }

    fn peer_disconnected(&self, their_node_id: PublicKey) {
        lock(&self.connected).retain(|k| *k != their_node_id);
        self.changed.notify_waiters();
    }

    fn peer_connected(&self, their_node_id: PublicKey, _: &Init, _: bool) -> Result<(), ()> {
        lock(&self.connected).push(their_node_id);
        self.changed.notify_waiters();
        Ok(())
    }

    fn provided_node_features(&self) -> NodeFeatures {
        NodeFeatures::empty()
    }

    fn provided_init_features(&self, _: PublicKey) -> InitFeatures {
        InitFeatures::empty()
    }
}

/// A logger that drops LDK's log lines.
#[derive(Debug)]
pub struct QuietLogger;

impl Logger for QuietLogger {
    fn log(&self, _record: Record<'_>) {}
}

/// LDK's peer manager as these tests set it up: no channels, no gossip,
/// custom messages through [`Customs`].
pub type Manager = PeerManager<
    SocketDescriptor,
    Arc<ErroringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<QuietLogger>,
    Arc<Customs>,
    Arc<KeysManager>,
    Arc<IgnoringMessageHandler>,
>;

/// An LDK node.
pub struct LdkNode {
    /// LDK's peer manager.
    pub manager: Arc<Manager>,
    /// Its custom-message handler.
    pub customs: Arc<Customs>,
    /// Its node id.
    pub node_id: PublicKey,
}

/// How long [`LdkNode::wait_for`] waits before failing the test.
pub const WAIT_CAP: Duration = Duration::from_secs(30);

impl LdkNode {
    /// A node whose keys derive from `seed`.
    ///
    /// # Panics
    ///
    /// If the system clock is before 1970.
    pub fn new(seed: u8) -> Self {
        // KeysManager wants a start time; any will do for tests.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970");
        let keys = Arc::new(KeysManager::new(
            &[seed; 32],
            now.as_secs(),
            now.subsec_nanos(),
            true,
        ));
        let node_id = PublicKey::from_secret_key(&Secp256k1::new(), &keys.get_node_secret_key());
        let customs = Arc::new(Customs::default());
        let handler = MessageHandler {
            chan_handler: Arc::new(ErroringMessageHandler::new()),
            route_handler: Arc::new(IgnoringMessageHandler {}),
            onion_message_handler: Arc::new(IgnoringMessageHandler {}),
            custom_message_handler: Arc::clone(&customs),
            send_only_message_handler: Arc::new(IgnoringMessageHandler {}),
        };
        let manager = Arc::new(PeerManager::new(
            handler,
            now.as_secs() as u32,
            &[seed.wrapping_add(1); 32],
            Arc::new(QuietLogger),
            keys,
        ));
        LdkNode {
            manager,
            customs,
            node_id,
        }
    }

    /// Listens on 127.0.0.1 (any port) and hands each connection to LDK,
    /// for as long as the runtime runs.
    ///
    /// # Panics
    ///
    /// If 127.0.0.1 cannot be bound.
    pub async fn listen(&self) -> SocketAddr {
        self.listen_on(0).await.expect("bind 127.0.0.1").addr()
    }

    /// Listens on 127.0.0.1:`port` (0: any) and hands each connection to
    /// LDK until [`Listening::stop`]. Dropping the [`Listening`] leaves the
    /// loop running until the runtime ends.
    pub async fn listen_on(&self, port: u16) -> std::io::Result<Listening> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let manager = Arc::clone(&self.manager);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(std) = stream.into_std() else { continue };
                let m = Arc::clone(&manager);
                tokio::spawn(lightning_net_tokio::setup_inbound(m, std));
            }
        });
        Ok(Listening { addr, accept })
    }

    /// Whether LDK lists `peer` as connected (its `init` accepted, not
    /// since disconnected).
    pub fn has(&self, peer: &PublicKey) -> bool {
        self.manager.peer_by_node_id(peer).is_some()
    }

    /// Completes at the next change that [`wait_for`](Self::wait_for)
    /// re-checks on: a peer connected or disconnected, a custom message
    /// received. Create it before checking a condition, so a change in
    /// between is not missed. (LDK's handler hears of a connection just
    /// before LDK lists it; [`has`](Self::has) waits for LDK's lock, so it
    /// sees the change once this has completed.)
    pub fn changed(&self) -> Notified<'_> {
        self.customs.changed.notified()
    }

    /// Dials `their_id` at `addr` on a task that runs until the connection
    /// closes; the task returns `false` if the TCP connect failed.
    pub fn connect(&self, their_id: PublicKey, addr: SocketAddr) -> tokio::task::JoinHandle<bool> {
        let manager = Arc::clone(&self.manager);
        tokio::spawn(async move {
            match lightning_net_tokio::connect_outbound(manager, their_id, addr).await {
                Some(running) => {
                    running.await;
                    true
                }
                None => false,
            }
        })
    }

    /// Queues a custom message to `peer` and lets LDK send it.
    pub fn send_custom(&self, peer: PublicKey, type_id: u16, payload: Vec<u8>) {
        lock(&self.customs.outbox).push((peer, Custom { type_id, payload }));
        self.manager.process_events();
    }

    /// Waits until `done` holds, re-checking whenever LDK's handler changes.
    ///
    /// # Panics
    ///
    /// After [`WAIT_CAP`] (a hang guard: the test failed).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Customs) -> bool) {
        let wait = async {
            loop {
                let changed = self.customs.changed.notified();
                if done(&self.customs) {
                    return;
                }
                tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        };
        if tokio::time::timeout(WAIT_CAP, wait).await.is_err() {
            panic!("timed out waiting for {what}");
        }
    }
}

/// An accept loop handing 127.0.0.1 connections to an [`LdkNode`]'s
/// `PeerManager` ([`LdkNode::listen_on`]).
#[derive(Debug)]
pub struct Listening {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Listening {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting. When this returns the listener is closed, so the
    /// port can be bound again at once; connections already handed to LDK
    /// stay up.
    pub async fn stop(self) {
        self.accept.abort();
        // The aborted task drops the listener; wait until it is gone.
        let _ = self.accept.await;
    }
}

/// An LDK node listening on 127.0.0.1 that can be stopped and started
/// again with the same key on the same port: a restart, as a peer's
/// process would do it (a new `PeerManager`, no state kept).
pub struct LdkPeer {
    /// The node.
    pub node: LdkNode,
    listening: Listening,
}

impl LdkPeer {
    /// Starts node `seed` ([`LdkNode::new`]) listening on `port` (0: any).
    pub async fn start(seed: u8, port: u16) -> std::io::Result<Self> {
        let node = LdkNode::new(seed);
        let listening = node.listen_on(port).await?;
        Ok(Self { node, listening })
    }

    /// Its node id.
    pub fn id(&self) -> PublicKey {
        self.node.node_id
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// Whether LDK on this side lists `other` as connected.
    pub fn has(&self, other: &PublicKey) -> bool {
        self.node.has(other)
    }

    /// Stops the node: no more accepts (its listener is closed when this
    /// returns, so the port can be bound again at once), then every
    /// connection closed.
    pub async fn stop(self) {
        self.listening.stop().await;
        self.node.manager.disconnect_all_peers();
    }
}
