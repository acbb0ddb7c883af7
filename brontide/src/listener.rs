//! A TCP listener that runs responder handshakes concurrently and yields
//! established connections.
//!
//! Each accepted socket gets its own task, so a slow or silent client never
//! holds up anyone else's handshake. At most
//! [`max_handshakes`](ListenerConfig::max_handshakes) handshakes run at once;
//! when a new connection arrives at the bound, one handshake in progress is
//! dropped to make room: the oldest of those still waiting for act one (a
//! silent client has had the longest time), and only if there is none, the
//! oldest of those whose act one was valid. A stream of connections that
//! send nothing therefore cannot evict an honest client that has sent its
//! act one, however slow its path; to compete with it an attacker must send
//! valid acts one (an ECDH each, for anyone who knows our node id). There
//! is no bound per source address. Each act has its own timeout.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::Connection;
use crate::dial::DEFAULT_ACT_TIMEOUT;
use crate::error::Error;
use crate::io::{cancellable, respond};
use crate::keys::NodeKeyPair;

/// Default bound on handshakes in progress at once (lnd's).
pub const DEFAULT_MAX_HANDSHAKES: usize = 50;

/// Decides, after act three, whether to keep a connection from a remote key.
type KeyFilter = Arc<dyn Fn(&PublicKey, &SocketAddr) -> bool + Send + Sync>;

/// Settings for a [`Listener`].
#[derive(Clone)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// Handshakes in progress at once. Default [`DEFAULT_MAX_HANDSHAKES`].
    pub max_handshakes: usize,
    /// Time allowed for each act. Default [`DEFAULT_ACT_TIMEOUT`].
    pub act_timeout: Duration,
    filter: Option<KeyFilter>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            act_timeout: DEFAULT_ACT_TIMEOUT,
            filter: None,
        }
    }
}

impl std::fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("max_handshakes", &self.max_handshakes)
            .field("act_timeout", &self.act_timeout)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl ListenerConfig {
    /// Sets the bound on handshakes in progress at once (at least 1).
    pub fn with_max_handshakes(mut self, max: usize) -> Self {
        self.max_handshakes = max.max(1);
        self
    }

    /// Sets the per-act timeout.
    pub fn with_act_timeout(mut self, timeout: Duration) -> Self {
        self.act_timeout = timeout;
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

struct Slot {
    id: u64,
    cancel: CancellationToken,
    handshaking: bool,
    /// The client's act one was read and valid: it speaks BOLT 8.
    past_act_one: bool,
}

/// Handshakes in progress or waiting to be delivered.
#[derive(Default)]
struct Slots {
    slots: Mutex<VecDeque<Slot>>,
    freed: Notify,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Slot>> {
        // The data stays consistent across a panic (plain pushes and
        // removes), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot, evicting the oldest handshake in progress if `max` are
    /// taken. Returns `false` if every slot holds a finished handshake
    /// waiting for delivery (the caller waits for `freed` then).
    fn try_take(&self, id: u64, cancel: &CancellationToken, max: usize) -> bool {
        let mut slots = self.lock();
        if slots.len() >= max {
            let oldest = slots
                .iter()
                .position(|s| s.handshaking && !s.past_act_one)
                .or_else(|| slots.iter().position(|s| s.handshaking));
            let Some(oldest) = oldest else {
                return false;
            };
            if let Some(evicted) = slots.remove(oldest) {
                tracing::debug!("handshake bound reached, dropping the oldest handshake");
                evicted.cancel.cancel();
            }
        }
        slots.push_back(Slot {
            id,
            cancel: cancel.clone(),
            handshaking: true,
            past_act_one: false,
        });
        true
    }

    fn passed_act_one(&self, id: u64) {
        if let Some(slot) = self.lock().iter_mut().find(|s| s.id == id) {
            slot.past_act_one = true;
        }
    }

    fn finished_handshake(&self, id: u64) {
        if let Some(slot) = self.lock().iter_mut().find(|s| s.id == id) {
            slot.handshaking = false;
        }
    }

    fn release(&self, id: u64) {
        self.lock().retain(|s| s.id != id);
        self.freed.notify_one();
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
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Listener {
    /// Binds to `addr` and starts accepting.
    ///
    /// # Errors
    /// If binding fails.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        local: NodeKeyPair,
        config: ListenerConfig,
    ) -> io::Result<Listener> {
        Listener::from_tcp(TcpListener::bind(addr).await?, local, config)
    }

    /// Starts accepting on a bound TCP listener. Must be called within a
    /// tokio runtime.
    ///
    /// # Errors
    /// If the listener's local address cannot be read.
    pub fn from_tcp(
        listener: TcpListener,
        local: NodeKeyPair,
        config: ListenerConfig,
    ) -> io::Result<Listener> {
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(config.max_handshakes.max(1));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            Arc::new(local),
            config,
            tx,
            cancel.clone(),
            tracker.clone(),
        ));
        tracker.close();
        Ok(Listener {
            local_addr,
            accepted: rx,
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

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: TcpListener,
    local: Arc<NodeKeyPair>,
    config: ListenerConfig,
    tx: mpsc::Sender<Accepted>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Slots::default());
    let max = config.max_handshakes.max(1);
    let mut next_id = 0u64;
    loop {
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
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let slot_cancel = cancel.child_token();
        while !slots.try_take(id, &slot_cancel, max) {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = slots.freed.notified() => {}
            }
        }
        tracker.spawn(handshake_task(
            stream,
            remote_addr,
            Arc::clone(&local),
            config.clone(),
            tx.clone(),
            slot_cancel,
            Arc::clone(&slots),
            id,
        ));
    }
}

#[allow(clippy::too_many_arguments)]
async fn handshake_task(
    stream: TcpStream,
    remote_addr: SocketAddr,
    local: Arc<NodeKeyPair>,
    config: ListenerConfig,
    tx: mpsc::Sender<Accepted>,
    cancel: CancellationToken,
    slots: Arc<Slots>,
    id: u64,
) {
    // Frees the slot however the task ends (even if the filter panics).
    let _slot = SlotGuard {
        slots: Arc::clone(&slots),
        id,
    };
    let mut stream = stream;
    let passed = || slots.passed_act_one(id);
    let result = cancellable(
        &cancel,
        respond(&mut stream, &local, config.act_timeout, passed),
    )
    .await
    .map(|session| Connection::new(stream, session));
    slots.finished_handshake(id);
    match result {
        Ok(connection) => {
            let remote = connection.remote_pubkey();
            let keep = config
                .filter
                .as_ref()
                .is_none_or(|f| f(&remote, &remote_addr));
            if keep {
                let accepted = Accepted {
                    connection,
                    remote_addr,
                };
                tokio::select! {
                    () = cancel.cancelled() => {}
                    _ = tx.send(accepted) => {}
                }
            } else {
                tracing::debug!(%remote, %remote_addr, "remote key refused");
            }
        }
        Err(Error::Cancelled) => tracing::debug!(%remote_addr, "handshake dropped"),
        Err(e) => tracing::debug!(%remote_addr, error = %e, "inbound handshake failed"),
    }
}

struct SlotGuard {
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.release(self.id);
    }
}
