use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use backoff::SplitMix64;
use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, Event, EventKind, Events, Spawner, State, Status, When};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::duplicate::{preferred_direction, Resolution};
use crate::registry::{Live, Persistent, Registry};
use crate::{
    AddressPolicy, Config, Direction, DuplicateRule, NetAddress, NodeAddr, PeerHandler,
    ServerError, ServerEvent, SkippedAddr,
};

/// How many events a slow [`Server::events`] subscriber may fall behind
/// before it starts missing the oldest.
const EVENT_BUFFER: usize = 4096;

/// A persistent peer to connect to at [`Server::startup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupPeer {
    /// The peer.
    pub pubkey: PublicKey,
    /// Where it can be reached (its advertised addresses).
    pub addrs: Vec<NetAddress>,
    /// Whether a user asked for it (`connect --perm`), rather than a channel.
    pub perm: bool,
}

/// The live connection to a peer, as [`Server::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Who dialed.
    pub direction: Direction,
    /// When it was established.
    pub since: Instant,
    /// The address we dialed, or the peer's source address if inbound.
    pub addr: Option<NetAddress>,
}

/// One peer as [`Server::status`] reports it.
#[non_exhaustive]
pub struct PeerStatus<D: Dialer> {
    /// The peer.
    pub pubkey: PublicKey,
    /// `Some(perm)` if the peer is persistent (it has a worker).
    pub persistent: Option<bool>,
    /// The live connection, if any.
    pub connection: Option<ConnectionInfo>,
    /// The worker's snapshot, if the peer is persistent.
    pub worker: Option<Status<Arc<D>>>,
    /// The peer's addresses not handed to its worker, and why (see
    /// [`Config::addresses`]).
    pub skipped: Vec<SkippedAddr>,
}

impl<D: Dialer> std::fmt::Debug for PeerStatus<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStatus")
            .field("pubkey", &self.pubkey)
            .field("persistent", &self.persistent)
            .field("connection", &self.connection)
            .field("worker", &self.worker)
            .field("skipped", &self.skipped)
            .finish()
    }
}

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
    inner: Arc<Inner<D, K, H>>,
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

struct Inner<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    local: PublicKey,
    config: Config,
    dialer: Arc<D>,
    clock: K,
    handler: Arc<H>,
    root: CancellationToken,
    tracker: TaskTracker,
    spawner: Spawner<PublicKey, Arc<D>, K>,
    registry: Mutex<Registry<D>>,
    events: broadcast::Sender<ServerEvent>,
    seed: u64,
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
            spawner,
            registry: Mutex::new(Registry::default()),
            events,
            seed,
        });
        inner
            .tracker
            .spawn(drain_worker_events(Arc::downgrade(&inner), worker_events));
        Self { inner }
    }

    /// Our node's public key.
    pub fn local_pubkey(&self) -> PublicKey {
        self.inner.local
    }

    /// Subscribes to the server's events. A subscriber that falls more than
    /// a few thousand events behind misses the oldest ones (it is told so by
    /// [`broadcast::error::RecvError::Lagged`]); the server never waits.
    pub fn events(&self) -> broadcast::Receiver<ServerEvent> {
        self.inner.events.subscribe()
    }

    /// Connects to a peer.
    ///
    /// `perm`: the peer becomes persistent (its worker is created, or
    /// upgraded to perm; perm is never downgraded) and the worker is asked to
    /// connect now; returns at once. Calling it again while the worker is
    /// dialing hands the address to the round in progress rather than
    /// restarting it: there is never more than one worker per peer, nor more
    /// dials than its limit. If the peer is already connected, only its
    /// address is recorded. The address is remembered for every later
    /// reconnect, ahead of the peer's advertised addresses.
    ///
    /// Not `perm`: one dial, with [`Config::dial_timeout`], that this call
    /// awaits. Refused if the peer is already connected.
    pub async fn connect(&self, node: NodeAddr, perm: bool) -> Result<(), ServerError> {
        let inner = &self.inner;
        let peer = node.pubkey;
        if peer == inner.local {
            return Err(ServerError::SelfConnect);
        }
        if let Some(reason) = inner.config.addresses.skip_reason(&node.addr) {
            return Err(ServerError::Unreachable {
                addr: node.addr,
                reason,
            });
        }
        {
            let mut reg = inner.lock();
            if reg.shut_down {
                return Err(ServerError::ShutDown);
            }
            if perm {
                let connected = reg.conns.contains_key(&peer);
                let handle = inner.get_or_create(&mut reg, peer, true);
                if let Some(p) = reg.workers.get_mut(&peer) {
                    p.remember(node.addr.clone());
                }
                // The given address first, the advertised ones after it.
                let mut addrs = vec![node.clone()];
                for a in node_addrs(&inner.config.addresses, peer, &reg.redial_addrs(&peer)) {
                    if a != node {
                        addrs.push(a);
                    }
                }
                // Connected: only record the addresses. Dialing already: a
                // new connect would cancel a handshake that may be about to
                // succeed, so the round just takes the addresses in. Else
                // (idle, waiting a backoff): dial now. The worker lives
                // while it is in the registry, so no post can fail.
                let dialing = handle.status().state == State::Dialing;
                let _ = if connected || dialing {
                    handle.update_addrs(addrs)
                } else {
                    handle.connect(Some(addrs), When::Now)
                };
                return Ok(());
            }
            if reg.conns.contains_key(&peer) {
                return Err(ServerError::AlreadyConnected(peer));
            }
            if reg.banned.contains(&peer) {
                return Err(ServerError::Banned(peer));
            }
        }
        let cancel = inner.root.child_token();
        let _cancel_on_return = cancel.clone().drop_guard();
        let deadline = conn_worker::deadline_after(inner.clock.now(), inner.config.dial_timeout);
        let conn = tokio::select! {
            r = inner.dialer.dial(&node, cancel) => r.map_err(|e| ServerError::Dial(Box::new(e)))?,
            () = inner.clock.sleep_until(deadline) => return Err(ServerError::DialTimedOut),
            () = inner.root.cancelled() => return Err(ServerError::ShutDown),
        };
        if inner.accept(peer, conn, Direction::Outbound, Some(node.addr), false) {
            Ok(())
        } else if inner.lock().shut_down {
            Err(ServerError::ShutDown)
        } else {
            // The duplicate rule kept another connection to the peer.
            Ok(())
        }
    }

    /// Disconnects a peer: it stops being persistent (its worker is stopped)
    /// and its connection is closed. An error if it is not connected.
    pub fn disconnect(&self, peer: &PublicKey) -> Result<(), ServerError> {
        let mut reg = self.inner.lock();
        let live = reg
            .conns
            .remove(peer)
            .ok_or(ServerError::NotConnected(*peer))?;
        reg.stop_worker(peer);
        live.cancel.cancel();
        drop(reg);
        self.inner.emit(ServerEvent::Disconnected {
            peer: *peer,
            direction: live.direction,
            reason: crate::DisconnectReason::Cancelled,
            lasted: self.inner.clock.now().saturating_duration_since(live.since),
            reconnecting: false,
        });
        Ok(())
    }

    /// Stops persisting a peer without touching its connection. Returns
    /// whether it was persistent.
    pub fn forget(&self, peer: &PublicKey) -> bool {
        self.inner.lock().stop_worker(peer)
    }

    /// An inbound connection arrived (from our listener or the
    /// application), already through the BOLT 8 handshake.
    ///
    /// Refused (and dropped, which closes it) if the peer is banned, if the
    /// duplicate rule keeps an existing connection, or after shutdown.
    /// `source` is kept for status only: it is never dialed, since its port
    /// is ephemeral. Returns whether the connection was kept.
    pub fn inbound(&self, peer: PublicKey, conn: D::Conn, source: Option<SocketAddr>) -> bool {
        self.inner.accept(
            peer,
            conn,
            Direction::Inbound,
            source.map(NetAddress::from),
            false,
        )
    }

    /// An outbound connection the application made itself. Workers' and
    /// [`connect`](Server::connect)'s connections arrive without this.
    /// Returns whether the connection was kept.
    pub fn outbound(&self, node: NodeAddr, conn: D::Conn) -> bool {
        self.inner.accept(
            node.pubkey,
            conn,
            Direction::Outbound,
            Some(node.addr),
            false,
        )
    }

    /// A node announcement: `addrs` replace the peer's known addresses, and
    /// its worker, if it is persistent, dials them from now on.
    pub fn node_announcement(&self, peer: PublicKey, addrs: Vec<NetAddress>) {
        let policy = &self.inner.config.addresses;
        let mut reg = self.inner.lock();
        if let Some(p) = reg.workers.get(&peer) {
            let _ = p.handle.update_addrs(node_addrs(policy, peer, &addrs));
        }
        let skipped = policy.plan(&addrs).1;
        reg.advertised.insert(peer, addrs);
        drop(reg);
        self.inner.report_skipped(peer, skipped);
    }

    /// A channel with the peer was opened: the peer becomes persistent (an
    /// idle, non-perm worker, if it had none) without dialing.
    pub fn channel_opened(&self, peer: PublicKey) {
        let mut reg = self.inner.lock();
        if reg.shut_down {
            return;
        }
        *reg.channels.entry(peer).or_default() += 1;
        self.inner.get_or_create(&mut reg, peer, false);
    }

    /// A channel with the peer was closed.
    pub fn channel_closed(&self, peer: &PublicKey) {
        let mut reg = self.inner.lock();
        if let Some(n) = reg.channels.get_mut(peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                reg.channels.remove(peer);
            }
        }
    }

    /// Prunes a peer: a non-perm persistent peer with no open channels stops
    /// being persistent. Perm peers are never pruned. Returns whether the
    /// peer's worker was stopped.
    pub fn prune(&self, peer: &PublicKey) -> bool {
        let mut reg = self.inner.lock();
        let prunable =
            reg.workers.get(peer).is_some_and(|p| !p.perm) && !reg.channels.contains_key(peer);
        prunable && reg.stop_worker(peer)
    }

    /// Bans a peer: its inbound connections are refused from now on, its
    /// connection is closed, and its worker is stopped unless it is perm (a
    /// user's explicit request stands: a perm peer's worker redials it after
    /// the close, and outbound connections are not checked against the ban;
    /// [`disconnect`](Server::disconnect) it to stop that too).
    pub fn ban(&self, peer: PublicKey) {
        let mut reg = self.inner.lock();
        reg.banned.insert(peer);
        if reg.workers.get(&peer).is_some_and(|p| !p.perm) {
            reg.stop_worker(&peer);
        }
        if let Some(live) = reg.conns.get(&peer) {
            live.cancel.cancel();
        }
    }

    /// Lifts a ban.
    pub fn unban(&self, peer: &PublicKey) {
        self.inner.lock().banned.remove(peer);
    }

    /// Connects to the persistent peers of a node that is starting: the
    /// first [`Config::startup_batch`] at once, the others after a random
    /// whole number of seconds below [`Config::startup_spread`], so a
    /// restart does not dial them all at the same moment.
    pub fn startup(&self, peers: impl IntoIterator<Item = StartupPeer>) {
        let inner = &self.inner;
        let spread = inner.config.startup_spread.as_secs();
        let mut skipped = Vec::new();
        let mut reg = inner.lock();
        if reg.shut_down {
            return;
        }
        for (i, peer) in peers.into_iter().enumerate() {
            if peer.pubkey == inner.local {
                continue;
            }
            if !peer.addrs.is_empty() {
                reg.advertised.insert(peer.pubkey, peer.addrs.clone());
                skipped.push((peer.pubkey, inner.config.addresses.plan(&peer.addrs).1));
            }
            let handle = inner.get_or_create(&mut reg, peer.pubkey, peer.perm);
            if reg.conns.contains_key(&peer.pubkey) {
                continue;
            }
            let when = if i < inner.config.startup_batch || spread == 0 {
                When::Now
            } else {
                let r =
                    SplitMix64::new(inner.seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F))
                        .next_u64();
                When::After(Duration::from_secs(r % spread))
            };
            let addrs = node_addrs(&inner.config.addresses, peer.pubkey, &peer.addrs);
            let _ = handle.connect((!addrs.is_empty()).then_some(addrs), when);
        }
        drop(reg);
        for (peer, skipped) in skipped {
            inner.report_skipped(peer, skipped);
        }
    }

    /// Peers a bootstrapper should not offer: ourselves, every connected
    /// peer and every persistent peer.
    pub fn bootstrap_ignore(&self) -> HashSet<PublicKey> {
        let reg = self.inner.lock();
        let mut set: HashSet<PublicKey> = reg.conns.keys().copied().collect();
        set.extend(reg.workers.keys().copied());
        set.insert(self.inner.local);
        set
    }

    /// Whether the peer is connected now.
    pub fn is_connected(&self, peer: &PublicKey) -> bool {
        self.inner.lock().conns.contains_key(peer)
    }

    /// Whether the peer is persistent, and if so whether perm.
    pub fn persistence(&self, peer: &PublicKey) -> Option<bool> {
        self.inner.lock().workers.get(peer).map(|p| p.perm)
    }

    /// Every peer the server knows of (connected or persistent), sorted by
    /// public key.
    pub fn status(&self) -> Vec<PeerStatus<D>> {
        let mut peers: Vec<PeerStatus<D>> = {
            let reg = self.inner.lock();
            let only_persistent = reg.workers.keys().filter(|k| !reg.conns.contains_key(k));
            reg.conns
                .keys()
                .chain(only_persistent)
                .map(|&pubkey| PeerStatus {
                    pubkey,
                    persistent: reg.workers.get(&pubkey).map(|p| p.perm),
                    connection: reg.conns.get(&pubkey).map(|l| ConnectionInfo {
                        direction: l.direction,
                        since: l.since,
                        addr: l.addr.clone(),
                    }),
                    worker: reg.workers.get(&pubkey).map(|p| p.handle.status()),
                    skipped: (self.inner.config.addresses)
                        .plan(&reg.redial_addrs(&pubkey))
                        .1,
                })
                .collect()
        };
        // Sorted after the lock is released, each key serialized once.
        peers.sort_by_cached_key(|p| p.pubkey.serialize());
        peers
    }

    /// Dials in flight now across every worker.
    pub fn dials_in_flight(&self) -> usize {
        self.inner.spawner.dials_in_flight()
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
        move |peer, _| {
            inner
                .upgrade()
                .is_some_and(|i| !i.lock().banned.contains(peer))
        }
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
    /// connection). Later
    /// operations are refused with [`ServerError::ShutDown`] or ignored.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let (workers, conns) = {
            let mut reg = inner.lock();
            reg.shut_down = true;
            (
                std::mem::take(&mut reg.workers),
                std::mem::take(&mut reg.conns),
            )
        };
        inner.root.cancel();
        drop(workers);
        inner.tracker.close();
        let deadline = conn_worker::deadline_after(inner.clock.now(), inner.config.shutdown_grace);
        tokio::select! {
            () = inner.tracker.wait() => {}
            () = inner.clock.sleep_until(deadline) => {
                // A peer handler that ignores its cancellation: abort it.
                for live in conns.values() {
                    live.task.abort();
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
    fn lock(&self) -> MutexGuard<'_, Registry<D>> {
        // No code panics while holding the lock; if some did, the registry
        // is still consistent map by map, so keep serving.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: ServerEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// Tells subscribers which of a peer's addresses its worker will not
    /// dial, and why.
    fn report_skipped(&self, peer: PublicKey, skipped: Vec<SkippedAddr>) {
        for s in skipped {
            debug!(%peer, addr = %s.addr, reason = %s.reason, "address skipped");
            self.emit(ServerEvent::AddressSkipped {
                peer,
                addr: s.addr,
                reason: s.reason,
            });
        }
    }

    /// The peer's worker, created idle if it has none; `perm` upgrades it.
    fn get_or_create(
        &self,
        reg: &mut Registry<D>,
        peer: PublicKey,
        perm: bool,
    ) -> conn_worker::WorkerHandle<PublicKey, Arc<D>> {
        if let Some(p) = reg.workers.get_mut(&peer) {
            p.perm |= perm;
            return p.handle.clone();
        }
        let handle = self.spawner.spawn(peer, Arc::clone(&self.dialer));
        let addrs = node_addrs(&self.config.addresses, peer, &reg.redial_addrs(&peer));
        if !addrs.is_empty() {
            let _ = handle.update_addrs(addrs);
        }
        reg.workers.insert(
            peer,
            Persistent {
                handle: handle.clone(),
                perm,
                user_addrs: Vec::new(),
            },
        );
        handle
    }

    /// Takes a new connection: applies the ban list and the duplicate rule,
    /// stands the worker down, and runs the peer handler on a task. Returns
    /// whether the connection was kept; if not, it is dropped (closed).
    fn accept(
        self: &Arc<Self>,
        peer: PublicKey,
        conn: D::Conn,
        direction: Direction,
        addr: Option<NetAddress>,
        from_worker: bool,
    ) -> bool {
        {
            let mut reg = self.lock();
            if reg.shut_down {
                return false;
            }
            // A worker's connection that crossed a disconnect, forget,
            // prune or ban (the worker was removed meanwhile) is dropped.
            if from_worker && !reg.workers.contains_key(&peer) {
                return false;
            }
            if direction == Direction::Inbound && reg.banned.contains(&peer) {
                drop(reg);
                self.emit(ServerEvent::RefusedBanned { peer });
                return false;
            }
            if let Some(existing) = reg.conns.get(&peer) {
                let rule = self.config.duplicate_rule;
                let age = self.clock.now().saturating_duration_since(existing.since);
                let simultaneous = age <= self.config.simultaneous_open_window;
                match rule.resolve(
                    &self.local,
                    &peer,
                    existing.direction,
                    direction,
                    simultaneous,
                ) {
                    Resolution::KeepExisting => {
                        let kept = existing.direction;
                        drop(reg);
                        debug!(%peer, ?kept, "duplicate connection closed");
                        self.emit(ServerEvent::DuplicateResolved { peer, kept });
                        return false;
                    }
                    Resolution::ReplaceExisting => {
                        if let Some(old) = reg.conns.remove(&peer) {
                            old.cancel.cancel();
                        }
                        self.emit(ServerEvent::DuplicateResolved {
                            peer,
                            kept: direction,
                        });
                    }
                }
            }
            let id = reg.next_conn_id;
            reg.next_conn_id += 1;
            let cancel = self.root.child_token();
            if direction == Direction::Outbound {
                if let Some(a) = &addr {
                    reg.last_dialed.insert(peer, a.clone());
                }
            }
            if let Some(p) = reg.workers.get(&peer) {
                if self.should_stand_down(&peer, direction, &p.handle) {
                    let _ = p.handle.stand_down();
                }
            }
            // The event goes out before the handler can run (and end), and
            // the task is spawned under the lock so that its abort handle is
            // in the registry before anyone can look for it. Neither waits.
            self.emit(ServerEvent::Connected {
                peer,
                direction,
                addr: addr.clone(),
            });
            let handler = Arc::clone(&self.handler);
            let weak = Arc::downgrade(self);
            let task_cancel = cancel.clone();
            let since = self.clock.now();
            let task = self.tracker.spawn(async move {
                let reason = handler.run(peer, conn, direction, task_cancel).await;
                if let Some(inner) = weak.upgrade() {
                    inner.connection_ended(peer, id, direction, since, reason);
                }
            });
            reg.conns.insert(
                peer,
                Live {
                    id,
                    direction,
                    since: self.clock.now(),
                    addr,
                    cancel,
                    task: task.abort_handle(),
                },
            );
        }
        true
    }

    /// Whether a new connection should stand the peer's worker down.
    ///
    /// Under the smaller-key rule, an inbound connection from a peer whose
    /// key is larger than ours is the one that loses if our dial completes:
    /// stopping that dial would leave both ends with the losing connection,
    /// so a dial in progress is let finish (its connection then replaces the
    /// inbound one on both ends). A worker merely waiting is stood down.
    fn should_stand_down(
        &self,
        peer: &PublicKey,
        direction: Direction,
        handle: &conn_worker::WorkerHandle<PublicKey, Arc<D>>,
    ) -> bool {
        let dialing_preferred = self.config.duplicate_rule == DuplicateRule::SmallerKeyInitiates
            && direction == Direction::Inbound
            && preferred_direction(&self.local, peer) == Direction::Outbound
            && handle.status().state == State::Dialing;
        !dialing_preferred
    }

    /// The peer handler of connection `id` returned.
    fn connection_ended(
        &self,
        peer: PublicKey,
        id: u64,
        direction: Direction,
        since: Instant,
        reason: crate::DisconnectReason,
    ) {
        let mut reg = self.lock();
        // A connection that was replaced, disconnected or shut down is
        // already gone from the registry: nothing to reconnect, but its end
        // is still reported (`disconnect` reported it already).
        if reg.conns.get(&peer).is_none_or(|l| l.id != id) {
            drop(reg);
            if reason == crate::DisconnectReason::Cancelled {
                self.emit(ServerEvent::Disconnected {
                    peer,
                    direction,
                    reason,
                    lasted: self.clock.now().saturating_duration_since(since),
                    reconnecting: false,
                });
            }
            return;
        }
        let Some(live) = reg.conns.remove(&peer) else {
            return;
        };
        let lasted = self.clock.now().saturating_duration_since(live.since);
        let mut reconnecting = false;
        if !reg.shut_down {
            if let Some(p) = reg.workers.get(&peer) {
                let addrs = node_addrs(&self.config.addresses, peer, &reg.redial_addrs(&peer));
                let addrs = (!addrs.is_empty()).then_some(addrs);
                let when = When::AfterDisconnect {
                    connected_for: Some(lasted),
                };
                reconnecting = p.handle.connect(addrs, when).is_ok();
            }
        }
        drop(reg);
        self.emit(ServerEvent::Disconnected {
            peer,
            direction: live.direction,
            reason,
            lasted,
            reconnecting,
        });
    }

    fn worker_event(self: &Arc<Self>, event: Event<PublicKey, Arc<D>>) {
        let peer = event.peer;
        let at = event.at;
        let out = match event.kind {
            EventKind::Connected { addr, conn } => {
                self.accept(peer, conn, Direction::Outbound, Some(addr.addr), true);
                return;
            }
            EventKind::DialStarted { addr } => ServerEvent::DialStarted {
                peer,
                addr: addr.addr,
            },
            EventKind::DialFailed { addr, error } => ServerEvent::DialFailed {
                peer,
                addr: addr.addr,
                error: error.to_string(),
            },
            EventKind::Waiting { until } => {
                // A worker left dialing while an inbound connection lives
                // (see `should_stand_down`) has nothing to retry.
                let reg = self.lock();
                if reg.conns.contains_key(&peer) {
                    if let Some(p) = reg.workers.get(&peer) {
                        let _ = p.handle.stand_down();
                    }
                }
                ServerEvent::Waiting {
                    peer,
                    until,
                    wait: until.saturating_duration_since(at),
                }
            }
            EventKind::AwaitingAddrs => ServerEvent::AwaitingAddrs { peer },
            EventKind::Idle => ServerEvent::Idle { peer },
            EventKind::Stopped => ServerEvent::WorkerStopped { peer },
            _ => return,
        };
        self.emit(out);
    }
}

/// Drains the workers' events until they all stop or the server is gone.
async fn drain_worker_events<D, K, H>(
    inner: Weak<Inner<D, K, H>>,
    mut events: Events<PublicKey, Arc<D>>,
) where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    let Some(root) = inner.upgrade().map(|i| i.root.clone()) else {
        return;
    };
    loop {
        let event = tokio::select! {
            biased;
            () = root.cancelled() => return,
            event = events.recv() => event,
        };
        let (Some(event), Some(inner)) = (event, inner.upgrade()) else {
            return;
        };
        inner.worker_event(event);
    }
}

/// The addresses a peer's worker dials, in the policy's order of
/// preference, without those it skips.
fn node_addrs(policy: &AddressPolicy, peer: PublicKey, addrs: &[NetAddress]) -> Vec<NodeAddr> {
    policy
        .plan(addrs)
        .0
        .into_iter()
        .map(|a| NodeAddr::new(peer, a))
        .collect()
}

/// A seed from the process's hash randomness.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0x5eed_u64)
}
