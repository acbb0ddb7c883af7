//! The lifecycle operations: connect, disconnect, forget, inbound and
//! outbound connections, announcements, channels, prune, ban.
//!
//! Each posts facts to the peer's worker and changes the server's own
//! state; none reads a worker's snapshot to decide.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::SystemTime;

use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, FailureClass, Priority, When};
use futures::FutureExt;

use crate::accept::drop_user;
use crate::durable::{Op, Outcome};
use crate::error::DialerPanicked;
use crate::server::node_addrs;
use crate::server::Inner;
use crate::{Direction, NetAddress, NodeAddr, PeerHandler, Server, ServerError};

impl<D, K, H> Server<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    /// Connects to a peer.
    ///
    /// `perm`: the peer becomes persistent (its worker is created, or
    /// upgraded to perm; perm is never downgraded) and its worker is told
    /// "the user wants this peer now, at this address"; returns at once.
    /// The worker keeps the address among the user-given ones (ahead of
    /// advertised addresses, never dropped by an announcement) and dials it
    /// within one stagger, even if its current round already tried it. If
    /// the peer is connected, the worker only records the address. Calling
    /// it again never makes a second worker, nor more dials than its limit.
    ///
    /// Not `perm`: one dial, under the workers' attempt timeout
    /// ([`conn_worker::Config::attempt_timeout`]), that this call awaits. It
    /// takes one of the workers' global dial slots, at the user's priority
    /// (ahead of workers; see [`conn_worker::DialSlots`]), so
    /// [`dials_in_flight`](Server::dials_in_flight) counts it too.
    /// Refused if the peer is already connected or banned.
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
        if perm {
            return match inner.durable.get() {
                Some(d) => d.call(Op::Connect(node)).await.map(drop),
                None => inner.connect_perm(node),
            };
        }
        {
            let reg = inner.lock();
            if reg.shut_down {
                return Err(ServerError::ShutDown);
            }
            if reg.conns.contains_key(&peer) {
                return Err(ServerError::AlreadyConnected(peer));
            }
            if reg.is_banned(&peer) {
                return Err(ServerError::Banned(peer));
            }
        }
        // A one-off dial takes a global dial slot like every worker's (at
        // the user's priority), so the limit counts every dial.
        let slots = inner.spawner.slots();
        let permit = tokio::select! {
            permit = slots.acquire(Priority::User, inner.clock.now()) => permit,
            () = inner.root.cancelled() => return Err(ServerError::ShutDown),
        };
        permit.start(inner.clock.now());
        let cancel = inner.root.child_token();
        let _cancel_on_return = cancel.clone().drop_guard();
        let timeout = inner.config.worker.attempt_timeout();
        let deadline = conn_worker::deadline_after(inner.clock.now(), timeout);
        let lease = async {
            if let Some(end) = permit.lease_ends() {
                inner.clock.sleep_until(end).await;
                slots.lease_expired(inner.clock.now());
            }
            std::future::pending::<()>().await
        };
        // The dialer is user code: a panic fails this dial, nothing else.
        let dial =
            AssertUnwindSafe(async { inner.dialer.dial(&node, cancel).await }).catch_unwind();
        let conn = tokio::select! {
            r = dial => match r {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    let class = std::panic::catch_unwind(AssertUnwindSafe(|| inner.dialer.classify(&e)))
                        .unwrap_or(FailureClass::Local);
                    return Err(ServerError::Dial { class, source: Box::new(e) });
                }
                Err(panic) => {
                    let message = crate::events::panic_message(panic.as_ref());
                    return Err(ServerError::Dial {
                        class: FailureClass::Local,
                        source: Box::new(DialerPanicked(message.to_string())),
                    });
                }
            },
            () = permit.reclaimed() => return Err(ServerError::DialTimedOut),
            () = inner.clock.sleep_until(deadline) => return Err(ServerError::DialTimedOut),
            () = lease => return Err(ServerError::DialTimedOut),
            () = inner.root.cancelled() => return Err(ServerError::ShutDown),
        };
        drop(permit);
        if inner.accept(peer, conn, Direction::Outbound, Some(node.addr), false) {
            Ok(())
        } else if inner.lock().shut_down {
            Err(ServerError::ShutDown)
        } else {
            // The duplicate rule kept another connection to the peer.
            Ok(())
        }
    }

    /// Disconnects a peer: it stops being persistent (its worker is
    /// stopped, and it is removed from the store of [`Server::open`]) and
    /// its connection, if any, is closed (its end is reported as one
    /// [`ServerEvent::Disconnected`](crate::ServerEvent::Disconnected) when
    /// the peer handler returns). Works on a peer that is only persistent
    /// (dialing, waiting) too; an error only if the peer is neither
    /// connected nor persistent, or if the store failed (then nothing
    /// changed).
    ///
    /// [`forget`](Self::forget) is the other half: it stops persistence and
    /// leaves the connection up.
    pub async fn disconnect(&self, peer: &PublicKey) -> Result<(), ServerError> {
        self.inner.run(Op::Disconnect(*peer)).await.map(drop)
    }

    /// Stops persisting a peer without touching its connection (when that
    /// ends, the peer is not redialed). Returns whether it was persistent;
    /// an error only if the store failed (then nothing changed).
    pub async fn forget(&self, peer: &PublicKey) -> Result<bool, ServerError> {
        self.inner.run(Op::Forget(*peer)).await
    }

    /// An inbound connection arrived (from our listener or the
    /// application), already through the BOLT 8 handshake.
    ///
    /// Refused (and dropped, which closes it) if the peer is banned, if the
    /// duplicate rule keeps an existing connection, if it has our own key,
    /// or after shutdown.
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

    /// A node announcement: `addrs` become the peer's advertised addresses.
    /// Its worker, if it is persistent, takes them in (user-given addresses
    /// stay; see [`conn_worker::WorkerHandle::update_addrs`]).
    pub fn node_announcement(&self, peer: PublicKey, addrs: Vec<NetAddress>) {
        let policy = &self.inner.config.addresses;
        let mut reg = self.inner.lock();
        if let Some(p) = reg.workers.get(&peer) {
            let _ = p.handle.update_addrs(node_addrs(policy, peer, &addrs));
        }
        let skipped = policy.plan(&addrs).1;
        if let Some(d) = self.inner.durable.get() {
            d.advertise(peer, addrs.clone());
        }
        reg.announced.insert(peer, addrs);
        drop(reg);
        self.inner.report_skipped(peer, skipped);
    }

    /// A channel with the peer was opened: the peer becomes persistent (an
    /// idle, non-perm worker, if it had none) without dialing. With a store
    /// ([`Server::open`]) the peer is recorded as persistent for its
    /// channels, and its worker is created once that is written; this does
    /// not wait for it. If the write fails, the worker is created all the
    /// same (kept connected for its channel, not recorded; the failure is
    /// logged).
    pub fn channel_opened(&self, peer: PublicKey) {
        if peer == self.inner.local {
            return;
        }
        {
            let mut reg = self.inner.lock();
            if reg.shut_down {
                return;
            }
            *reg.channels.entry(peer).or_default() += 1;
        }
        self.inner.run_unwaited(Op::ChannelOpened(peer));
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
    /// peer was prunable. With a store ([`Server::open`]) its worker is
    /// stopped once the store has removed it; this does not wait for it.
    pub fn prune(&self, peer: &PublicKey) -> bool {
        let inner = &self.inner;
        match inner.durable.get() {
            Some(d) => {
                let prunable = inner.lock().prunable(peer);
                d.post(Op::Prune {
                    peer: *peer,
                    stored: None,
                });
                prunable
            }
            None => inner.prune_now(peer),
        }
    }

    /// Bans a peer until `until` (`None`: until [`unban`](Self::unban)):
    /// its inbound connections are refused from then on, its connection is
    /// closed, and its worker is stopped unless it is perm (a user's
    /// explicit request stands: a perm peer's worker redials it after the
    /// close, and outbound connections are not checked against the ban;
    /// [`disconnect`](Server::disconnect) it to stop that too). A ban
    /// replaces the peer's earlier one; one whose end has already passed
    /// (a clock moved, a late call) only replaces it: nothing is closed or
    /// stopped for a ban that refuses nothing. With a store
    /// ([`Server::open`]) the ban is written first; on an error nothing
    /// changed.
    pub async fn ban(&self, peer: PublicKey, until: Option<SystemTime>) -> Result<(), ServerError> {
        let in_force = until.is_none_or(|end| end > SystemTime::now());
        let op = Op::Ban {
            peer,
            until,
            in_force,
        };
        self.inner.run(op).await.map(drop)
    }

    /// Lifts a ban (and removes it from the store, if there is one).
    pub async fn unban(&self, peer: &PublicKey) -> Result<(), ServerError> {
        self.inner.run(Op::Unban(*peer)).await.map(drop)
    }

    /// Whether the peer is banned now (a ban whose end has passed is not).
    pub fn is_banned(&self, peer: &PublicKey) -> bool {
        self.inner.lock().is_banned(peer)
    }

    /// The earliest end among the bans that have one.
    pub fn next_ban_end(&self) -> Option<SystemTime> {
        self.inner.lock().banned.values().flatten().min().copied()
    }

    /// Lifts every ban that has ended (removing it from the store too, if
    /// there is one) and returns their peers. A ban replaced meanwhile by a
    /// new one is left alone. An ended ban refuses nothing even before this
    /// runs: this is housekeeping. If the store fails after some were
    /// lifted, those are returned and the rest left for the next call; an
    /// error only if none could be.
    pub async fn unban_ended(&self) -> Result<Vec<PublicKey>, ServerError> {
        let now = SystemTime::now();
        let ended: Vec<(PublicKey, SystemTime)> = (self.inner.lock().banned.iter())
            .filter_map(|(p, until)| until.filter(|t| *t <= now).map(|t| (*p, t)))
            .collect();
        let mut lifted = Vec::new();
        for (peer, until) in ended {
            match self.inner.run(Op::UnbanEnded(peer, until)).await {
                Ok(true) => lifted.push(peer),
                Ok(false) => {}
                Err(e) if lifted.is_empty() => return Err(e),
                // What was lifted stands, and is said; the rest waits.
                Err(_) => break,
            }
        }
        Ok(lifted)
    }

    /// Every ban in force, with its end (`None`: permanent).
    pub fn bans(&self) -> Vec<(PublicKey, Option<SystemTime>)> {
        let now = SystemTime::now();
        let reg = self.inner.lock();
        (reg.banned.iter())
            .filter(|(_, until)| until.is_none_or(|t| t > now))
            .map(|(p, until)| (*p, *until))
            .collect()
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
}

impl<D, K, H> Inner<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    /// Carries out `op`: through the store's queue for a server of
    /// [`Server::open`] (durable, then applied), at once otherwise.
    async fn run(&self, op: Op) -> Outcome {
        match self.durable.get() {
            Some(d) => d.call(op).await,
            None => self.apply_op(op),
        }
    }

    /// [`run`](Self::run) without waiting for the store.
    fn run_unwaited(&self, op: Op) {
        match self.durable.get() {
            Some(d) => d.post(op),
            None => drop(self.apply_op(op)),
        }
    }

    /// Applies `op` to the registry: at once without a store, or once the
    /// store has made it durable (see [`crate::durable`]).
    pub(crate) fn apply_op(&self, op: Op) -> Outcome {
        match op {
            Op::Connect(node) => {
                // Refused only after shutdown, when the write already stands.
                let _ = self.connect_perm(node);
                Ok(true)
            }
            // With a store, known when planned; an error now means its
            // connection ended meanwhile and there was no record to remove.
            Op::Disconnect(peer) => self.disconnect_now(&peer).map(|()| true),
            Op::Forget(peer) => Ok(self.lock().stop_worker(&peer)),
            Op::Ban {
                peer,
                until,
                in_force,
            } => {
                self.ban_now(peer, until, in_force);
                Ok(true)
            }
            Op::Unban(peer) => Ok(self.lock().banned.remove(&peer).is_some()),
            Op::UnbanEnded(peer, until) => Ok(self.lock().unban_ended(&peer, until)),
            Op::ChannelOpened(peer) => {
                let mut reg = self.lock();
                if !reg.shut_down {
                    self.get_or_create(&mut reg, peer, false);
                }
                Ok(true)
            }
            Op::Prune { peer, stored } => Ok(match stored {
                // Decided by the store's plan (see `Op::Prune`).
                Some(true) => {
                    let mut reg = self.lock();
                    reg.workers.get(&peer).is_some_and(|p| !p.perm) && reg.stop_worker(&peer)
                }
                Some(false) => false,
                None => self.prune_now(&peer),
            }),
            Op::Connected { .. }
            | Op::Ended { .. }
            | Op::Backoff { .. }
            | Op::Announced(_)
            | Op::Advertised { .. } => Ok(true),
        }
    }

    /// `connect(node, perm)` on the registry.
    pub(crate) fn connect_perm(&self, node: NodeAddr) -> Result<(), ServerError> {
        let mut reg = self.lock();
        if reg.shut_down {
            return Err(ServerError::ShutDown);
        }
        let connected = reg.conns.contains_key(&node.pubkey);
        let handle = self.get_or_create(&mut reg, node.pubkey, true);
        // The worker lives while it is in the registry: no post can fail.
        let _ = if connected {
            handle.add_addrs(vec![node])
        } else {
            handle.connect(Some(vec![node]), When::Now)
        };
        Ok(())
    }

    /// `disconnect(peer)` on the registry.
    pub(crate) fn disconnect_now(&self, peer: &PublicKey) -> Result<(), ServerError> {
        let mut reg = self.lock();
        let had_worker = reg.stop_worker(peer);
        let live = reg.conns.remove(peer);
        let parked = reg.parked.remove(peer);
        drop(reg);
        drop_user(parked);
        match live {
            Some(live) => {
                live.cancel.cancel();
                Ok(())
            }
            None if had_worker => Ok(()),
            None => Err(ServerError::UnknownPeer(*peer)),
        }
    }

    /// `prune(peer)` on the registry.
    pub(crate) fn prune_now(&self, peer: &PublicKey) -> bool {
        let mut reg = self.lock();
        reg.prunable(peer) && reg.stop_worker(peer)
    }

    /// `ban(peer, until)` on the registry.
    /// `in_force`: the ban's end had not passed when it was asked for;
    /// otherwise it only replaces the earlier ban.
    pub(crate) fn ban_now(&self, peer: PublicKey, until: Option<SystemTime>, in_force: bool) {
        let mut reg = self.lock();
        reg.banned.insert(peer, until);
        if !in_force {
            return;
        }
        if reg.workers.get(&peer).is_some_and(|p| !p.perm) {
            reg.stop_worker(&peer);
        }
        if let Some(live) = reg.conns.get(&peer) {
            live.cancel.cancel();
        }
        let parked = reg.parked.remove(&peer);
        drop(reg);
        drop_user(parked);
    }
}
