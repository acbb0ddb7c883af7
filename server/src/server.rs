//! The server and what every part of it shares.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, Spawner};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::durable::Durable;
use crate::registry::{Handle, Persistent, Registry};
use crate::{
    AddressPolicy, Config, NetAddress, NodeAddr, PeerHandler, ServerError, ServerEvent, SkippedAddr,
};

/// How many events a slow [`Server::events`] subscriber may fall behind
/// before it starts missing the oldest.
const EVENT_BUFFER: usize = 4096;

/// The registry of peers: which are persistent (one worker each) and which
/// are connected, and lnd's peer lifecycle over them.
///
/// Cheap to clone: clones share the server. Every method but
/// [`connect`](Server::connect) (non-perm) and [`shutdown`](Server::shutdown)
/// returns at once: none waits on a worker, and none holds the registry lock
/// across an `.await` or a blocking send.
pub struct Server<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    pub(crate) inner: Arc<Inner<D, K, H>>,
}

impl<D, K, H> Clone for Server<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<D, K, H> std::fmt::Debug for Server<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local", &self.inner.local)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

/// Whether the server's own machinery is sound (see [`Server::health`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// The task that turns worker events into registry changes is running
    /// (false after shutdown; false before it would mean connections are
    /// being lost, and the server also says so with an error log).
    pub event_task_running: bool,
    /// Worker events whose handling panicked (each recovered from).
    pub event_panics: u64,
    /// Peer handlers that panicked (each connection cleared and reported).
    pub handler_panics: u64,
    /// Workers that ended without being asked (each removed, and restarted
    /// if the peer was still persistent).
    pub worker_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct HealthCounters {
    pub(crate) event_task_running: AtomicBool,
    pub(crate) event_panics: AtomicU64,
    pub(crate) handler_panics: AtomicU64,
    pub(crate) worker_failures: AtomicU64,
}

pub(crate) struct Inner<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    pub(crate) local: PublicKey,
    pub(crate) config: Config,
    pub(crate) dialer: Arc<D>,
    pub(crate) clock: K,
    pub(crate) handler: Arc<H>,
    pub(crate) root: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// The runtime the server was made on: its tasks run there, whichever
    /// thread calls it.
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) spawner: Spawner<PublicKey, Arc<D>, K>,
    pub(crate) registry: Mutex<Registry<D::Conn, D::Error>>,
    pub(crate) events: broadcast::Sender<ServerEvent<D::Error>>,
    pub(crate) seed: u64,
    pub(crate) health: HealthCounters,
    /// The queue to the store's writer, for a server of [`Server::open`].
    pub(crate) durable: OnceLock<Durable>,
}

/// A server reference that does not keep it alive.
pub(crate) struct WeakServer<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    inner: Weak<Inner<D, K, H>>,
}

impl<D, K, H> WeakServer<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    pub(crate) fn upgrade(&self) -> Option<Server<D, K, H>> {
        self.inner.upgrade().map(|inner| Server { inner })
    }
}

impl<D, K, H> Drop for Inner<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    fn drop(&mut self) {
        // The last clone is gone: nothing may outlive it.
        self.root.cancel();
    }
}

impl<D, K, H> Server<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    /// A server for node `local` that dials with `dialer`, tells time with
    /// `clock` and hands every established connection to `handler`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the server drains its workers' events on a
    /// task of its own).
    pub fn new(local: PublicKey, config: Config, dialer: D, clock: K, handler: H) -> Self {
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let seed = config.worker.seed.unwrap_or_else(random_seed);
        let (spawner, worker_events) = Spawner::new(
            clock.clone(),
            config.worker.clone(),
            root.clone(),
            tracker.clone(),
        );
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let inner = Arc::new(Inner {
            local,
            config,
            dialer: Arc::new(dialer),
            clock,
            handler: Arc::new(handler),
            root,
            tracker,
            runtime: tokio::runtime::Handle::current(),
            spawner,
            registry: Mutex::new(Registry::default()),
            events,
            seed,
            health: HealthCounters::default(),
            durable: OnceLock::new(),
        });
        inner
            .health
            .event_task_running
            .store(true, Ordering::SeqCst);
        inner.tracker.spawn(crate::events::drain_worker_events(
            Arc::downgrade(&inner),
            worker_events,
        ));
        Self { inner }
    }

    /// A server whose persistent peers and bans live in `store`: it loads
    /// the store, removes the bans that have expired, and starts every
    /// stored persistent peer as [`startup`](Self::startup) does, each with
    /// its stored addresses in order, its last good address first and its
    /// stored backoff level (a peer whose last connection lasted at least
    /// the policy's `stable` starts relaxed).
    ///
    /// From then on every change of who is persistent and every ban is
    /// written through the store before it takes effect:
    /// [`connect`](Self::connect) with `perm`, [`disconnect`](Self::disconnect),
    /// [`forget`](Self::forget), [`ban`](Self::ban) and
    /// [`unban`](Self::unban) return only once their change is durable, or
    /// return [`ServerError::Store`] with nothing changed.
    /// [`channel_opened`](Self::channel_opened) and [`prune`](Self::prune)
    /// write without waiting (their worker change follows the write).
    /// What the server learns (an outbound connection's address, when it
    /// was established and how long it lasted; a worker's backoff level; a
    /// stored peer's announced addresses) is recorded as it happens. All of
    /// it goes through one queue, so the store and the registry see the
    /// same operations in the same order, and concurrent operations share
    /// one write.
    ///
    /// Peers given to [`startup`](Self::startup) later are not written to
    /// the store; connect them with `perm` to keep them.
    ///
    /// # Errors
    ///
    /// [`ServerError::Store`] if the store cannot be read (corrupt, locked,
    /// from a newer version: whatever its `load` refuses) or the expired
    /// bans cannot be removed; no server is started.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`new`](Self::new).
    pub async fn open<S>(
        local: PublicKey,
        config: Config,
        dialer: D,
        clock: K,
        handler: H,
        store: S,
    ) -> Result<Self, ServerError>
    where
        S: peer_store::PeerStore<Addr = NetAddress>,
    {
        let opened = Self::open_with_events(local, config, dialer, clock, handler, store).await?;
        Ok(opened.0)
    }

    /// [`open`](Self::open), with a subscription to the server's
    /// [`events`](Self::events) taken before the stored peers start, so
    /// that none of their events is missed (the addresses a stored peer's
    /// worker skips, its first dials): `open` returns after they started.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`new`](Self::new).
    pub async fn open_with_events<S>(
        local: PublicKey,
        config: Config,
        dialer: D,
        clock: K,
        handler: H,
        store: S,
    ) -> Result<(Self, broadcast::Receiver<ServerEvent<D::Error>>), ServerError>
    where
        S: peer_store::PeerStore<Addr = NetAddress>,
    {
        let (snapshot, bans) = crate::durable::load(&store).await?;
        let server = Self::new(local, config, dialer, clock, handler);
        let events = server.events();
        let stable = server.inner.config.worker.policy.stable();
        let peers: Vec<_> = (snapshot.peers.iter())
            .map(|r| crate::durable::startup_peer(r, stable))
            .collect();
        server.inner.lock().banned.extend(bans.iter().copied());
        let durable = crate::durable::spawn_writer(&server.inner, store, snapshot.peers, &bans);
        // Set once, before anyone else holds the server.
        let _ = server.inner.durable.set(durable);
        server.startup(peers);
        Ok((server, events))
    }

    /// Our node's public key.
    pub fn local_pubkey(&self) -> PublicKey {
        self.inner.local
    }

    /// Subscribes to the server's events. A subscriber that falls more than
    /// a few thousand events behind misses the oldest ones (it is told so by
    /// [`broadcast::error::RecvError::Lagged`]); the server never waits.
    pub fn events(&self) -> broadcast::Receiver<ServerEvent<D::Error>> {
        self.inner.events.subscribe()
    }

    /// Whether the server's own machinery is sound: the event task runs,
    /// and how many panics in user code (or ours) it recovered from.
    pub fn health(&self) -> Health {
        let h = &self.inner.health;
        Health {
            event_task_running: h.event_task_running.load(Ordering::SeqCst),
            event_panics: h.event_panics.load(Ordering::SeqCst),
            handler_panics: h.handler_panics.load(Ordering::SeqCst),
            worker_failures: h.worker_failures.load(Ordering::SeqCst),
        }
    }

    /// Dials in flight now: every worker's and every one-off connect's,
    /// counted in one place (at most
    /// [`conn_worker::Config::max_dials_in_flight`]).
    pub fn dials_in_flight(&self) -> usize {
        self.inner.spawner.dials_in_flight()
    }

    /// The most dials ever in flight at once.
    pub fn peak_dials_in_flight(&self) -> usize {
        self.inner.spawner.slots().peak()
    }

    /// Tasks still running: workers, peer handlers and the server's own.
    pub fn tasks(&self) -> usize {
        self.inner.tracker.len()
    }

    /// A predicate for a listener's key filter
    /// ([`ListenerConfig::with_filter`](brontide::ListenerConfig::with_filter)):
    /// refuses banned peers right after the handshake.
    pub fn accept_filter(
        &self,
    ) -> impl Fn(&PublicKey, &SocketAddr) -> bool + Send + Sync + 'static {
        let inner = Arc::downgrade(&self.inner);
        move |peer, _| inner.upgrade().is_some_and(|i| !i.lock().is_banned(peer))
    }

    pub(crate) fn downgrade(&self) -> WeakServer<D, K, H> {
        WeakServer {
            inner: Arc::downgrade(&self.inner),
        }
    }

    pub(crate) fn root_token(&self) -> CancellationToken {
        self.inner.root.clone()
    }

    /// Runs `task` on the server's tracker: shutdown waits for it.
    pub(crate) fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.tracker.spawn(task);
    }

    /// Shuts down: every worker stops, every connection's handler is
    /// cancelled, and this returns once all their tasks have ended. A
    /// handler still running [`Config::shutdown_grace`] after its
    /// cancellation is aborted (its future dropped, which closes its
    /// connection; its end is reported as [`DisconnectReason::Aborted`]),
    /// whether its connection is the peer's current one or was already
    /// disconnected or replaced; so is a store write
    /// ([`Server::open`]) that has not returned by then.
    /// Later operations are refused with [`ServerError::ShutDown`] or
    /// ignored.
    ///
    /// [`DisconnectReason::Aborted`]: crate::DisconnectReason::Aborted
    /// [`ServerError::ShutDown`]: crate::ServerError::ShutDown
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let (workers, parked) = {
            let mut reg = inner.lock();
            reg.shut_down = true;
            for live in reg.conns.values() {
                live.cancel.cancel();
            }
            (
                std::mem::take(&mut reg.workers),
                std::mem::take(&mut reg.parked),
            )
        };
        inner.root.cancel();
        // Connections are user code's type: dropped outside the lock.
        for (_, p) in parked {
            crate::accept::drop_user(p);
        }
        drop(workers);
        inner.tracker.close();
        let deadline = conn_worker::deadline_after(inner.clock.now(), inner.config.shutdown_grace);
        tokio::select! {
            () = inner.tracker.wait() => {}
            () = inner.clock.sleep_until(deadline) => {
                // Every handler still running, the peer's current one or
                // not (a disconnected or replaced connection's handler that
                // ignores its cancellation), is aborted; so is a store
                // write that has not returned (its callers get `ShutDown`).
                let tasks: Vec<_> = {
                    let mut reg = inner.lock();
                    reg.aborting = true;
                    reg.running.values().flatten().cloned().collect()
                };
                for task in tasks {
                    task.abort();
                }
                if let Some(d) = inner.durable.get() {
                    d.abort_writer();
                }
                inner.tracker.wait().await;
            }
        }
    }
}

impl<D, K, H> Inner<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    pub(crate) fn lock(&self) -> MutexGuard<'_, Registry<D::Conn, D::Error>> {
        // No user code runs while the lock is held; if a bug of ours
        // panicked under it, the registry is still consistent map by map,
        // so keep serving.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: ServerEvent<D::Error>) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// Tells subscribers which of a peer's addresses its worker will not
    /// dial, and why.
    pub(crate) fn report_skipped(&self, peer: PublicKey, skipped: Vec<SkippedAddr>) {
        for s in skipped {
            debug!(%peer, addr = %s.addr, reason = %s.reason, "address skipped");
            self.emit(ServerEvent::AddressSkipped {
                peer,
                addr: s.addr,
                reason: s.reason,
            });
        }
    }

    /// The peer's worker, created idle if it has none (starting from the
    /// peer's latest announcement); `perm` upgrades it, never downgrades.
    pub(crate) fn get_or_create(
        &self,
        reg: &mut Registry<D::Conn, D::Error>,
        peer: PublicKey,
        perm: bool,
    ) -> Handle<D::Error> {
        if let Some(p) = reg.workers.get_mut(&peer) {
            p.perm |= perm;
            return p.handle.clone();
        }
        let handle = {
            // Callable from any thread: the worker runs on the server's
            // runtime.
            let _runtime = self.runtime.enter();
            self.spawner.spawn(peer, Arc::clone(&self.dialer))
        };
        if let Some(announced) = reg.announced.get(&peer) {
            let addrs = node_addrs(&self.config.addresses, peer, announced);
            if !addrs.is_empty() {
                // The worker was just created: it lives, the post succeeds.
                let _ = handle.update_addrs(addrs);
            }
        }
        reg.workers.insert(
            peer,
            Persistent {
                handle: handle.clone(),
                perm,
            },
        );
        handle
    }
}

/// The addresses a peer's worker dials, in the policy's order of
/// preference, without those it skips.
pub(crate) fn node_addrs(
    policy: &AddressPolicy,
    peer: PublicKey,
    addrs: &[NetAddress],
) -> Vec<NodeAddr> {
    nodes(peer, policy.plan(addrs).0)
}

/// `addrs` as the peer's node addresses.
pub(crate) fn nodes(peer: PublicKey, addrs: Vec<NetAddress>) -> Vec<NodeAddr> {
    addrs.into_iter().map(|a| NodeAddr::new(peer, a)).collect()
}

/// A seed from the process's hash randomness.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0x5eed_u64)
}
