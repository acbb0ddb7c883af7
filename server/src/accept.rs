//! A connection's life in the registry: accepted (ban list, duplicate
//! rule, the worker told), run by the peer handler under supervision, ended
//! (cleared, reported once, the peer reconnected if persistent).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, When};
use futures::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::debug;

use crate::duplicate::Resolution;
use crate::durable::Op;
use crate::registry::{Live, Parked, Registry};
use crate::server::Inner;
use crate::{Direction, DisconnectReason, NetAddress, NodeAddr, PeerHandler, ServerEvent};

impl<D, K, H> Inner<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    /// Takes a new connection: applies the ban list and the duplicate rule,
    /// tells the worker, and runs the peer handler on a task. Returns
    /// whether the connection was kept; if not, it is dropped (closed).
    pub(crate) fn accept(
        self: &Arc<Self>,
        peer: PublicKey,
        conn: D::Conn,
        direction: Direction,
        addr: Option<NetAddress>,
        from_worker: bool,
    ) -> bool {
        // Callable from any thread: what this spawns goes to the server's
        // runtime.
        let _runtime = self.runtime.enter();
        if peer == self.local {
            // We are not our own peer (a node connected to itself, or one
            // that holds our key).
            drop_user(conn);
            return false;
        }
        let mut reg = self.lock();
        if reg.shut_down {
            drop(reg);
            drop_user(conn);
            return false;
        }
        // A worker's connection that crossed a disconnect, forget, prune or
        // ban (the worker was removed meanwhile) is dropped.
        if from_worker && !reg.workers.contains_key(&peer) {
            drop(reg);
            drop_user(conn);
            return false;
        }
        if direction == Direction::Inbound && reg.is_banned(&peer) {
            drop(reg);
            drop_user(conn);
            self.emit(ServerEvent::RefusedBanned { peer });
            return false;
        }
        let mut contested_until = None;
        if let Some(existing) = reg.conns.get(&peer) {
            let rule = self.config.duplicate_rule;
            let grace = conn_worker::deadline_after(self.clock.now(), self.config.duplicate_grace);
            match rule.resolve(&self.local, &peer, existing.direction, direction) {
                Resolution::KeepExisting => {
                    let kept = existing.direction;
                    let parks = rule.parks();
                    let (old_parked, lost) = if parks {
                        let id = reg.next_conn_id;
                        reg.next_conn_id += 1;
                        let timer = self.park_until(peer, id, grace);
                        let parked = Parked {
                            id,
                            conn,
                            direction,
                            addr,
                            until: grace,
                            _timer: timer,
                        };
                        (reg.parked.insert(peer, parked), None)
                    } else {
                        (None, Some(conn))
                    };
                    // Connections are user code's type, and the probe is
                    // user code: all outside the lock.
                    drop(reg);
                    drop_user(old_parked);
                    drop_user(lost);
                    debug!(%peer, ?kept, "duplicate connection lost");
                    self.emit(ServerEvent::DuplicateResolved { peer, kept });
                    if parks {
                        let handler = &self.handler;
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| handler.probe(peer)));
                    }
                    return false;
                }
                Resolution::ReplaceExisting => {
                    if let Some(old) = reg.conns.remove(&peer) {
                        old.cancel.cancel();
                    }
                    contested_until = Some(grace);
                    self.emit(ServerEvent::DuplicateResolved {
                        peer,
                        kept: direction,
                    });
                }
            }
        }
        // The peer is connected by other means than its worker: the worker
        // stands down (a connection of its own already left it idle).
        if !from_worker {
            if let Some(p) = reg.workers.get(&peer) {
                let _ = match (&addr, direction) {
                    (Some(a), Direction::Outbound) => {
                        p.handle.stand_down_at(NodeAddr::new(peer, a.clone()))
                    }
                    _ => p.handle.stand_down(),
                };
            }
        }
        let id = reg.next_conn_id;
        reg.next_conn_id += 1;
        let start =
            self.register_connection(&mut reg, peer, id, conn, direction, addr, contested_until);
        drop(reg);
        self.start(start);
        true
    }

    /// Registers connection `id` as the peer's live connection (and its
    /// handler as running) and returns what [`start`](Self::start) hands
    /// to the peer handler once the lock is released. Under the lock.
    #[allow(clippy::too_many_arguments)]
    fn register_connection(
        self: &Arc<Self>,
        reg: &mut Registry<D::Conn, D::Error>,
        peer: PublicKey,
        id: u64,
        conn: D::Conn,
        direction: Direction,
        addr: Option<NetAddress>,
        contested_until: Option<Instant>,
    ) -> Start<D::Conn> {
        let cancel = self.root.child_token();
        let since = self.clock.now();
        // The event goes out before the handler can run (and end). It does
        // not wait.
        self.emit(ServerEvent::Connected {
            peer,
            direction,
            addr: addr.clone(),
        });
        if let (Some(d), Direction::Outbound, Some(addr)) = (self.durable.get(), direction, &addr) {
            d.post(Op::Connected {
                peer,
                addr: addr.clone(),
                at: SystemTime::now(),
            });
        }
        reg.conns.insert(
            peer,
            Live {
                id,
                direction,
                since,
                addr,
                cancel: cancel.clone(),
                contested_until,
            },
        );
        reg.running.insert(id, None);
        Start {
            peer,
            id,
            conn,
            direction,
            since,
            cancel,
            pending: self.tracker.token(),
        }
    }

    /// Runs a registered connection's peer handler on a task of its own.
    /// Not under the lock: a task the runtime refuses (it is shutting down)
    /// is dropped at once, and its end takes the lock.
    fn start(self: &Arc<Self>, start: Start<D::Conn>) {
        let Start {
            peer,
            id,
            conn,
            direction,
            since,
            cancel,
            pending,
        } = start;
        let end = End {
            inner: Arc::downgrade(self),
            peer,
            id,
            direction,
            since,
            done: false,
        };
        let handler = Arc::clone(&self.handler);
        let task = self.tracker.spawn_on(
            async move {
                // The handler is user code: a panic is an end like any other.
                let run =
                    AssertUnwindSafe(async { handler.run(peer, conn, direction, cancel).await });
                let reason = match run.catch_unwind().await {
                    Ok(reason) => reason,
                    Err(panic) => DisconnectReason::HandlerPanicked(crate::events::panic_message(
                        panic.as_ref(),
                    )),
                };
                end.finish(reason);
            },
            &self.runtime,
        );
        let mut reg = self.lock();
        let aborting = reg.aborting;
        // Gone already if the handler has ended.
        if let Some(slot) = reg.running.get_mut(&id) {
            if aborting {
                task.abort();
            } else {
                *slot = Some(task.abort_handle());
            }
        }
        drop(reg);
        // The task stands for it now.
        drop(pending);
    }

    /// Drops the parked connection `id` of `peer` at `until`, if it is
    /// still parked then.
    fn park_until(
        self: &Arc<Self>,
        peer: PublicKey,
        id: u64,
        until: Instant,
    ) -> tokio_util::sync::DropGuard {
        let weak = Arc::downgrade(self);
        let sleep = self.clock.sleep_until(until);
        let done = self.root.child_token();
        let guard = done.clone().drop_guard();
        self.tracker.spawn(async move {
            tokio::select! {
                () = sleep => {}
                () = done.cancelled() => return,
            }
            if let Some(inner) = weak.upgrade() {
                let mut reg = inner.lock();
                let expired = reg.parked.get(&peer).is_some_and(|p| p.id == id);
                let parked = if expired {
                    reg.parked.remove(&peer)
                } else {
                    None
                };
                drop(reg);
                drop_user(parked);
            }
        });
        guard
    }

    /// Connection `id` of `peer` ended: clears it (if still the peer's
    /// connection), reconnects a persistent peer, reports it once.
    fn connection_ended(
        self: &Arc<Self>,
        peer: PublicKey,
        id: u64,
        direction: Direction,
        since: Instant,
        reason: DisconnectReason,
    ) {
        if matches!(reason, DisconnectReason::HandlerPanicked(_)) {
            self.health.handler_panics.fetch_add(1, Ordering::SeqCst);
        }
        let now = self.clock.now();
        let lasted = now.saturating_duration_since(since);
        let mut reg = self.lock();
        reg.running.remove(&id);
        // A connection that was replaced, disconnected or shut down is
        // already gone from the registry: nothing to reconnect.
        let current = reg.conns.get(&peer).is_some_and(|l| l.id == id);
        let mut reconnecting = false;
        let mut takes_over = None;
        let mut expired = None;
        if current {
            if let (Some(d), Direction::Outbound) = (self.durable.get(), direction) {
                d.post(Op::Ended { peer, lasted });
            }
            let live = reg.conns.remove(&peer);
            if !reg.shut_down {
                match reg.parked.remove(&peer) {
                    Some(p) if p.until >= now => {
                        // The peer closed the winner (it kept the other
                        // one), or the winner was dead: the parked one takes
                        // over.
                        let (pid, conn, pdir, paddr) = (p.id, p.conn, p.direction, p.addr);
                        takes_over = Some(
                            self.register_connection(&mut reg, peer, pid, conn, pdir, paddr, None),
                        );
                    }
                    parked => {
                        expired = parked;
                        if let Some(p) = reg.workers.get(&peer) {
                            let contested = live
                                .and_then(|l| l.contested_until)
                                .is_some_and(|until| now <= until);
                            // A connection that won a duplicate and ended at
                            // once was closed by the peer's own rule: not a
                            // failure.
                            let when = if contested {
                                When::Soon
                            } else {
                                When::AfterDisconnect {
                                    connected_for: Some(lasted),
                                }
                            };
                            reconnecting = p.handle.connect(None, when).is_ok();
                        }
                    }
                }
            }
        }
        drop(reg);
        drop_user(expired);
        if let Some(start) = takes_over {
            self.start(start);
        }
        self.emit(ServerEvent::Disconnected {
            peer,
            direction,
            reason,
            lasted,
            reconnecting,
        });
    }
}

/// A registered connection whose peer handler is not spawned yet.
struct Start<C> {
    peer: PublicKey,
    id: u64,
    conn: C,
    direction: Direction,
    since: Instant,
    cancel: CancellationToken,
    /// Counts for the tracker until the task is spawned, so that shutdown
    /// waits for a handler registered before it and spawned after.
    pending: TaskTrackerToken,
}

/// Drops a value of the user's types (a connection): called outside the
/// registry lock, and a panic in its `Drop` is contained here.
pub(crate) fn drop_user<T>(value: T) {
    if std::panic::catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::error!("dropping a connection panicked");
    }
}

/// Reports a connection's end exactly once: when its handler returns or
/// panics, or, if its task is aborted (shutdown), when the task is dropped.
struct End<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    inner: Weak<Inner<D, K, H>>,
    peer: PublicKey,
    id: u64,
    direction: Direction,
    since: Instant,
    done: bool,
}

impl<D, K, H> End<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    fn finish(mut self, reason: DisconnectReason) {
        self.done = true;
        self.report(reason);
    }

    fn report(&self, reason: DisconnectReason) {
        if let Some(inner) = self.inner.upgrade() {
            inner.connection_ended(self.peer, self.id, self.direction, self.since, reason);
        }
    }
}

impl<D, K, H> Drop for End<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    fn drop(&mut self) {
        if !self.done {
            self.report(DisconnectReason::Aborted);
        }
    }
}
