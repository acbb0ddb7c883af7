//! Worker events become registry changes and server events, on the
//! server's own task, each under a guard: a panic while handling one is
//! counted, reported and recovered from, and never stops the task.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, DialerEvent, DialerEvents, EventKind, StopReason, When};

use crate::durable::Op;
use crate::server::Inner;
use crate::{Direction, NodeAddr, PeerHandler, ServerEvent};

pub(crate) use conn_worker::panic_message;

/// Clears the health flag when the event task ends, however it ends.
struct Running<D, K, H>(Weak<Inner<D, K, H>>)
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>;

impl<D, K, H> Drop for Running<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner
                .health
                .event_task_running
                .store(false, Ordering::SeqCst);
            if !inner.root.is_cancelled() {
                tracing::error!("the server's event task ended before shutdown");
            }
        }
    }
}

/// Drains the workers' events until shutdown or the server is gone.
pub(crate) async fn drain_worker_events<D, K, H>(
    inner: Weak<Inner<D, K, H>>,
    mut events: DialerEvents<PublicKey, Arc<D>>,
) where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    let _running = Running(inner.clone());
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
        let peer = event.peer;
        let delivered = matches!(event.kind, EventKind::Connected { .. });
        let handled = std::panic::catch_unwind(AssertUnwindSafe(|| inner.worker_event(event)));
        if let Err(panic) = handled {
            inner.event_panicked(peer, delivered, panic_message(panic.as_ref()));
        }
    }
}

impl<D, K, H> Inner<D, K, H>
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    fn worker_event(self: &Arc<Self>, event: DialerEvent<PublicKey, Arc<D>>) {
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
            EventKind::DialFailed {
                addr,
                failure,
                class,
            } => ServerEvent::DialFailed {
                peer,
                addr: addr.addr,
                failure,
                class,
            },
            EventKind::Waiting { until, backoff } => {
                if let (Some(d), Some(level)) = (self.durable.get(), backoff) {
                    d.post(Op::Backoff { peer, level });
                }
                ServerEvent::Waiting {
                    peer,
                    until,
                    wait: until.saturating_duration_since(at),
                    backoff,
                }
            }
            EventKind::AwaitingAddrs => ServerEvent::AwaitingAddrs { peer },
            EventKind::Idle => ServerEvent::Idle { peer },
            EventKind::Stopped {
                reason: StopReason::Panicked(message),
            } => {
                self.worker_failed(peer, message);
                return;
            }
            EventKind::Stopped { .. } => ServerEvent::WorkerStopped { peer },
            _ => return,
        };
        self.emit(out);
    }

    /// A worker ended unasked: remove it, and if the peer is still
    /// persistent start a new one from the old one's addresses.
    fn worker_failed(&self, peer: PublicKey, message: Arc<str>) {
        self.health.worker_failures.fetch_add(1, Ordering::SeqCst);
        tracing::error!(%peer, %message, "worker failed");
        let mut reg = self.lock();
        // Only the registered worker, if it is the one that ended (its token
        // is cancelled): a newer one for the same peer is left alone.
        let ended = reg
            .workers
            .get(&peer)
            .is_some_and(|p| p.handle.is_stopped());
        let mut restarted = false;
        if ended && !reg.shut_down {
            if let Some(old) = reg.workers.remove(&peer) {
                // Recovering the dead worker's address book from its last
                // snapshot: nothing is decided from it.
                let last = old.handle.status();
                let handle = self.get_or_create(&mut reg, peer, old.perm);
                let _ = handle.update_addrs(last.advertised);
                let mut user = last.user_addrs;
                if let Some(good) = last.last_good {
                    if !user.contains(&good) {
                        user.push(good);
                    }
                }
                if !reg.conns.contains_key(&peer) {
                    let _ = handle.connect(Some(user), When::Soon);
                } else {
                    let _ = handle.add_addrs(user);
                }
                restarted = true;
            }
        }
        drop(reg);
        self.emit(ServerEvent::WorkerFailed {
            peer,
            message,
            restarted,
        });
    }

    /// Handling an event panicked. If it was a delivered connection, that
    /// connection is gone while the worker believes it delivered: tell the
    /// worker to redial.
    fn event_panicked(&self, peer: PublicKey, delivered: bool, message: Arc<str>) {
        self.health.event_panics.fetch_add(1, Ordering::SeqCst);
        tracing::error!(%peer, %message, "handling a worker event panicked");
        if delivered {
            let reg = self.lock();
            if !reg.conns.contains_key(&peer) {
                if let Some(p) = reg.workers.get(&peer) {
                    let _ = p.handle.connect(None, When::Soon);
                }
            }
        }
        self.emit(ServerEvent::EventPanicked { peer, message });
    }
}
