//! Real LDK nodes on 127.0.0.1 for the tests and the churn example (the
//! part of testkit's LDK helper these need, without custom messages).

// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::{PublicKey, Secp256k1};
use lightning::ln::peer_handler::{
    ErroringMessageHandler, IgnoringMessageHandler, MessageHandler, PeerManager,
};
use lightning::sign::KeysManager;
use lightning::util::logger::{Logger, Record};
use lightning_net_tokio::SocketDescriptor;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A logger that drops LDK's log lines.
pub(crate) struct QuietLogger;

impl Logger for QuietLogger {
    fn log(&self, _record: Record<'_>) {}
}

/// LDK's peer manager without channels, gossip or custom messages.
pub(crate) type Manager = PeerManager<
    SocketDescriptor,
    Arc<ErroringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<QuietLogger>,
    Arc<IgnoringMessageHandler>,
    Arc<KeysManager>,
    Arc<IgnoringMessageHandler>,
>;

/// A fresh LDK `PeerManager` whose node key derives from `seed` (the same
/// seed is the same node: a restart).
pub(crate) fn manager(seed: u8) -> (Arc<Manager>, PublicKey) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let keys = Arc::new(KeysManager::new(
        &[seed; 32],
        now.as_secs(),
        now.subsec_nanos(),
        true,
    ));
    let node_id = PublicKey::from_secret_key(&Secp256k1::new(), &keys.get_node_secret_key());
    let handler = MessageHandler {
        chan_handler: Arc::new(ErroringMessageHandler::new()),
        route_handler: Arc::new(IgnoringMessageHandler {}),
        onion_message_handler: Arc::new(IgnoringMessageHandler {}),
        custom_message_handler: Arc::new(IgnoringMessageHandler {}),
        send_only_message_handler: Arc::new(IgnoringMessageHandler {}),
    };
    let manager = Arc::new(PeerManager::new(
        handler,
        now.as_secs() as u32,
        &[seed.wrapping_add(1); 32],
        Arc::new(QuietLogger),
        keys,
    ));
    (manager, node_id)
}

/// An LDK peer listening on 127.0.0.1: its own `PeerManager` accepting with
/// `lightning_net_tokio::setup_inbound`.
pub(crate) struct Peer {
    /// The peer's manager.
    pub(crate) manager: Arc<Manager>,
    /// Its node id.
    pub(crate) id: PublicKey,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Peer {
    /// Starts node `seed` on `port` (0: any).
    pub(crate) async fn start(seed: u8, port: u16) -> std::io::Result<Peer> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (manager, id) = manager(seed);
        let m = Arc::clone(&manager);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(std) = stream.into_std() else { continue };
                tokio::spawn(lightning_net_tokio::setup_inbound(Arc::clone(&m), std));
            }
        });
        Ok(Peer {
            manager,
            id,
            addr,
            accept,
        })
    }

    /// Stops the node: no more accepts (its listener is closed when this
    /// returns, so the port can be bound again at once), every connection
    /// closed.
    pub(crate) async fn stop(self) {
        self.accept.abort();
        // The aborted task drops the listener; wait for it to be gone.
        let _ = self.accept.await;
        self.manager.disconnect_all_peers();
    }

    /// Whether LDK on this side has `other` connected.
    pub(crate) fn has(&self, other: &PublicKey) -> bool {
        self.manager.peer_by_node_id(other).is_some()
    }
}

/// How long a test waits for anything before failing (a hang guard).
pub(crate) const CAP: Duration = Duration::from_secs(60);
