//! Write-through to a [`PeerStore`]: the server of [`Server::open`].
//!
//! Every operation that changes who is persistent, or a ban, goes through
//! one ordered queue that a single writer task drains. For each batch of
//! requests the writer computes the store changes in queue order (from its
//! copy of what the store holds, and the registry), makes them durable in
//! one [`PeerStore::apply`], and only then applies each request's registry
//! change, in the same order, and answers its caller. So:
//!
//! - when an awaited operation returns `Ok`, its change is on disk; when it
//!   returns [`ServerError::Store`], neither the store nor the registry
//!   changed (a batch is one atomic `apply`);
//! - the store and the registry see the same operations in the same order,
//!   whatever callers race: there is one order, the queue's;
//! - concurrent operations share a write (group commit), and no lock is
//!   held across the store's `await`.
//!
//! What the node learns meanwhile (an outbound connection established and
//! how long it lasted, a worker's backoff level, a peer's announcement) is
//! posted to the same queue as a fact: written for stored peers only,
//! never awaited, and lost (with a warning) if the store fails.
//! Announcements, which come at gossip's rate, not the node's, are
//! coalesced: the queue holds at most one per peer (its latest), so a
//! stalled store costs one entry per announcing node, not one per gossip
//! message.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, MAX_USER_ADDRS};
use futures::FutureExt;
use peer_store::{Ban, Change, LastConnection, PeerRecord, PeerStore, Reason, Snapshot};
use tokio::sync::{mpsc, oneshot};

use crate::registry::Registry;
use crate::server::Inner;
use crate::{NetAddress, NodeAddr, PeerHandler, ServerError, StartupPeer};

/// Most requests written in one `apply`.
const MAX_BATCH: usize = 4096;

/// The expiry a permanent ban is stored with: 2200-01-01 00:00 UTC, far in
/// the future yet inside what every store can represent. A ban given an
/// end at or after it is permanent.
pub fn permanent_ban_end() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(7_258_118_400)
}

/// A stored ban's expiry as the server keeps it (`None`: permanent).
fn ban_expiry(until: SystemTime) -> Option<SystemTime> {
    (until < permanent_ban_end()).then_some(until)
}

/// What a request asks of the store and the registry.
#[derive(Debug)]
pub(crate) enum Op {
    Connect(NodeAddr),
    Disconnect(PublicKey),
    Forget(PublicKey),
    /// A ban. `in_force`: its end had not passed when it was asked for
    /// (decided once, so the store's plan and the registry agree); one
    /// already over replaces the earlier ban and does nothing else. A ban
    /// whose end passes while its write is queued still takes effect.
    Ban {
        peer: PublicKey,
        until: Option<SystemTime>,
        in_force: bool,
    },
    Unban(PublicKey),
    /// Lifts the peer's ban if it is still the one ending at this time.
    UnbanEnded(PublicKey, SystemTime),
    ChannelOpened(PublicKey),
    /// A prune. `stored`, set when the writer plans it: whether the store
    /// removed the peer's record (`None`: it had none). The registry follows
    /// that decision, not its own channel count of later (a channel closed
    /// or opened meanwhile goes through the queue after it), so the two
    /// agree.
    Prune {
        peer: PublicKey,
        stored: Option<bool>,
    },
    /// Facts: recorded for stored peers, no registry change.
    Connected {
        peer: PublicKey,
        addr: NetAddress,
        at: SystemTime,
    },
    Ended {
        peer: PublicKey,
        lasted: Duration,
    },
    Backoff {
        peer: PublicKey,
        level: Duration,
    },
    /// What the queue holds for an announcement ([`Durable::advertise`]):
    /// the writer turns it into [`Op::Advertised`] with the peer's latest
    /// addresses when it dequeues it.
    Announced(PublicKey),
    Advertised {
        peer: PublicKey,
        addrs: Vec<NetAddress>,
    },
}

/// What an operation answers: whether it did something (forget: the peer
/// was persistent; prune: it was pruned), or why it failed.
pub(crate) type Outcome = Result<bool, ServerError>;

struct Request {
    op: Op,
    done: Option<oneshot::Sender<Outcome>>,
}

/// The queue to the writer task.
#[derive(Debug)]
pub(crate) struct Durable {
    tx: mpsc::UnboundedSender<Request>,
    announced: Arc<Announced>,
    /// Ends the writer even inside a store call that never returns.
    writer: tokio::task::AbortHandle,
}

/// Each peer's latest announcement not yet taken by the writer; a peer is
/// here while one `Op::Announced` of it is queued (or after the writer has
/// gone, when nothing is written any more).
#[derive(Debug, Default)]
struct Announced(Mutex<HashMap<PublicKey, Vec<NetAddress>>>);

impl Announced {
    fn lock(&self) -> MutexGuard<'_, HashMap<PublicKey, Vec<NetAddress>>> {
        // Plain inserts and removes: consistent across a panic.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns a dequeued [`Op::Announced`] into the write of its peer's
    /// latest addresses. Each entry has one queued request, which takes it
    /// (under the lock `advertise` posts under), so the entry is there; were
    /// it not, the request would stay `Announced`, which writes nothing.
    fn resolve(&self, req: Request) -> Request {
        let op = match req.op {
            Op::Announced(peer) => match self.lock().remove(&peer) {
                Some(addrs) => Op::Advertised { peer, addrs },
                None => Op::Announced(peer),
            },
            op => op,
        };
        Request { op, done: req.done }
    }
}

impl Durable {
    /// Posts a request nobody waits for (a fact, or a sync operation).
    pub(crate) fn post(&self, op: Op) {
        // After shutdown the writer is gone: the fact is moot.
        let _ = self.tx.send(Request { op, done: None });
    }

    /// Posts a peer's announcement, replacing one of it still queued.
    pub(crate) fn advertise(&self, peer: PublicKey, addrs: Vec<NetAddress>) {
        let mut announced = self.announced.lock();
        if announced.insert(peer, addrs).is_none() {
            self.post(Op::Announced(peer));
        }
    }

    /// Ends the writer where it is (shutdown's grace is over): what it has
    /// not answered is refused with `ShutDown`.
    pub(crate) fn abort_writer(&self) {
        self.writer.abort();
    }

    /// Posts a request and waits until it is durable and applied.
    pub(crate) async fn call(&self, op: Op) -> Outcome {
        let (done, answer) = oneshot::channel();
        if self
            .tx
            .send(Request {
                op,
                done: Some(done),
            })
            .is_err()
        {
            return Err(ServerError::ShutDown);
        }
        // The writer answers every request it takes; it drops the sender
        // unanswered only when the server is shutting down.
        answer.await.unwrap_or(Err(ServerError::ShutDown))
    }
}

/// The store's error as every request of a failed batch sees it.
pub(crate) type StoreFailure = Arc<dyn std::error::Error + Send + Sync>;

/// A store whose `apply` panicked.
#[derive(Debug, thiserror::Error)]
#[error("peer store panicked: {0}")]
struct StorePanicked(Arc<str>);

/// What the store holds, as the writer knows it.
#[derive(Debug, Default)]
struct Mirror {
    peers: HashMap<PublicKey, PeerRecord<NetAddress>>,
    /// Every stored ban and its end (`None`: permanent).
    bans: HashMap<PublicKey, Option<SystemTime>>,
}

/// A batch's records before it is durable: `None` is a removed peer or
/// ban.
#[derive(Default)]
struct Work {
    peers: HashMap<PublicKey, Option<PeerRecord<NetAddress>>>,
    bans: HashMap<PublicKey, Option<Option<SystemTime>>>,
}

impl Work {
    fn get<'a>(
        &'a self,
        mirror: &'a Mirror,
        peer: &PublicKey,
    ) -> Option<&'a PeerRecord<NetAddress>> {
        match self.peers.get(peer) {
            Some(r) => r.as_ref(),
            None => mirror.peers.get(peer),
        }
    }

    fn ban(&self, mirror: &Mirror, peer: &PublicKey) -> Option<Option<SystemTime>> {
        match self.bans.get(peer) {
            Some(b) => *b,
            None => mirror.bans.get(peer).copied(),
        }
    }

    fn put(&mut self, record: PeerRecord<NetAddress>) {
        self.peers.insert(record.id, Some(record));
    }

    /// Removes the peer's record.
    fn remove(&mut self, peer: PublicKey, changes: &mut Vec<Change<NetAddress>>) {
        changes.push(Change::Remove { peer });
        self.peers.insert(peer, None);
    }

    /// Edits a stored peer's record with `f`, which returns the change to
    /// write, if any; a peer not stored is left alone.
    fn edit(
        &mut self,
        mirror: &Mirror,
        peer: PublicKey,
        changes: &mut Vec<Change<NetAddress>>,
        f: impl FnOnce(&mut PeerRecord<NetAddress>) -> Option<Change<NetAddress>>,
    ) {
        let Some(mut r) = self.get(mirror, &peer).cloned() else {
            return;
        };
        if let Some(change) = f(&mut r) {
            changes.push(change);
            self.put(r);
        }
    }
}

/// What [`Server::open`](crate::Server::open) reads from `store`: its
/// snapshot and the bans still in force (the expired ones are removed
/// from the store).
pub(crate) async fn load<S: PeerStore<Addr = NetAddress>>(
    store: &S,
) -> Result<(Snapshot<NetAddress>, Vec<(PublicKey, Option<SystemTime>)>), ServerError> {
    let snapshot = guarded(store.load()).await.map_err(ServerError::Store)?;
    let now = SystemTime::now();
    let expired: Vec<Change<NetAddress>> = (snapshot.bans.iter())
        .filter(|b| b.until <= now)
        .map(|b| Change::Unban { peer: b.peer })
        .collect();
    if !expired.is_empty() {
        guarded(store.apply(expired))
            .await
            .map_err(ServerError::Store)?;
    }
    let bans = (snapshot.bans_active_at(now))
        .map(|b| (b.peer, ban_expiry(b.until)))
        .collect();
    Ok((snapshot, bans))
}

/// The startup entry of a stored peer: its addresses in their order, its
/// last good address first, and its backoff level unless its last
/// connection lasted at least `stable` (then it starts relaxed).
pub(crate) fn startup_peer(r: &PeerRecord<NetAddress>, stable: Duration) -> StartupPeer {
    let mut peer = StartupPeer::new(r.id, r.advertised_addrs.clone(), r.reason.user_asked);
    peer.user_addrs = r.user_addrs.clone();
    let last = r.last_connection.as_ref();
    peer.last_good = last.map(|c| c.addr.clone());
    let was_stable = last.and_then(|c| c.lasted).is_some_and(|l| l >= stable);
    peer.backoff = if was_stable { None } else { r.backoff };
    peer
}

/// Starts the writer task of a server opened on `store`.
pub(crate) fn spawn_writer<S, D, K, H>(
    inner: &Arc<Inner<D, K, H>>,
    store: S,
    snapshot_peers: Vec<PeerRecord<NetAddress>>,
    bans: &[(PublicKey, Option<SystemTime>)],
) -> Durable
where
    S: PeerStore<Addr = NetAddress>,
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let mirror = Mirror {
        peers: snapshot_peers.into_iter().map(|r| (r.id, r)).collect(),
        bans: bans.iter().copied().collect(),
    };
    let announced = Arc::<Announced>::default();
    let writer = inner.tracker.spawn(writer(
        Arc::downgrade(inner),
        store,
        rx,
        mirror,
        Arc::clone(&announced),
    ));
    Durable {
        tx,
        announced,
        writer: writer.abort_handle(),
    }
}

async fn writer<S, D, K, H>(
    inner: Weak<Inner<D, K, H>>,
    store: S,
    mut rx: mpsc::UnboundedReceiver<Request>,
    mut mirror: Mirror,
    announced: Arc<Announced>,
) where
    S: PeerStore<Addr = NetAddress>,
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    let Some(root) = inner.upgrade().map(|i| i.root.clone()) else {
        return;
    };
    loop {
        let first = tokio::select! {
            biased;
            () = root.cancelled() => break,
            r = rx.recv() => match r {
                Some(r) => r,
                None => break,
            },
        };
        let mut batch = vec![announced.resolve(first)];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(announced.resolve(r)),
                Err(_) => break,
            }
        }
        if let Err((batch, e)) = write(&inner, &store, &mut mirror, batch).await {
            if batch.len() == 1 {
                fail(&inner, batch, &e);
            } else {
                // One request's bad input must not fail the others': write
                // them one by one, each planned afresh.
                for req in batch {
                    if let Err((one, e)) = write(&inner, &store, &mut mirror, vec![req]).await {
                        fail(&inner, one, &e);
                    }
                }
            }
        }
    }
    // Shutting down: what was not written is refused, nothing changed.
    rx.close();
    while let Ok(req) = rx.try_recv() {
        answer(req.done, Err(ServerError::ShutDown));
    }
}

/// Plans `batch` in queue order, writes it in one `apply` (nothing is
/// locked across it), then applies and answers each request in order. On a
/// failed write nothing was applied, and the requests come back unanswered.
async fn write<S, D, K, H>(
    inner: &Weak<Inner<D, K, H>>,
    store: &S,
    mirror: &mut Mirror,
    mut batch: Vec<Request>,
) -> Result<(), (Vec<Request>, StoreFailure)>
where
    S: PeerStore<Addr = NetAddress>,
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    let mut work = Work::default();
    let mut changes = Vec::new();
    let mut verdicts = Vec::with_capacity(batch.len());
    match inner.upgrade() {
        Some(server) => {
            let reg = server.lock();
            for req in &mut batch {
                verdicts.push(plan(&mut req.op, &reg, mirror, &mut work, &mut changes));
            }
        }
        None => verdicts.resize_with(batch.len(), || Err(ServerError::ShutDown)),
    }
    if !changes.is_empty() {
        if let Err(e) = guarded(store.apply(changes)).await {
            return Err((batch, e));
        }
    }
    for (peer, record) in work.peers {
        match record {
            Some(r) => mirror.peers.insert(peer, r),
            None => mirror.peers.remove(&peer),
        };
    }
    for (peer, ban) in work.bans {
        match ban {
            Some(until) => mirror.bans.insert(peer, until),
            None => mirror.bans.remove(&peer),
        };
    }
    let server = inner.upgrade();
    for (req, verdict) in batch.into_iter().zip(verdicts) {
        let outcome = match (verdict, &server) {
            (Err(refused), _) => Err(refused),
            (Ok(()), Some(s)) => s.apply_op(req.op),
            // The change is durable; the server is gone.
            (Ok(()), None) => Ok(true),
        };
        answer(req.done, outcome);
    }
    Ok(())
}

/// Answers the requests of a failed write: nothing of them was applied,
/// but for a channel's opening: the peer is kept connected for its channel
/// all the same (its worker is created, not recorded), since nobody waits
/// to be told of the failure and the node needs the peer more than its
/// record.
fn fail<D, K, H>(inner: &Weak<Inner<D, K, H>>, batch: Vec<Request>, e: &StoreFailure)
where
    D: Dialer<Addr = NodeAddr>,
    K: Clock,
    H: PeerHandler<D::Conn>,
{
    let facts = batch.iter().filter(|r| r.done.is_none()).count();
    for req in batch {
        if let (Op::ChannelOpened(_), Some(server)) = (&req.op, inner.upgrade()) {
            let _ = server.apply_op(req.op);
            continue;
        }
        answer(req.done, Err(ServerError::Store(Arc::clone(e))));
    }
    // The error is the store's: its `Display` is user code.
    let error = std::panic::catch_unwind(AssertUnwindSafe(|| e.to_string()))
        .unwrap_or_else(|_| "(its Display panicked)".to_owned());
    tracing::warn!(%error, facts, "peer store write failed; nothing of it applied");
}

fn answer(done: Option<oneshot::Sender<Outcome>>, outcome: Outcome) {
    if let Some(done) = done {
        // A caller that stopped waiting is not an error: the change stands.
        let _ = done.send(outcome);
    }
}

/// Runs one of the store's calls (user code): its error, or its panic as
/// one.
async fn guarded<T, E: std::error::Error + Send + Sync + 'static>(
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, StoreFailure> {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(Arc::new(e)),
        Err(panic) => Err(Arc::new(StorePanicked(crate::events::panic_message(
            panic.as_ref(),
        )))),
    }
}

/// A new record for `peer`, with the addresses it last announced, and the
/// changes that create it.
fn fresh<C, E>(
    reg: &Registry<C, E>,
    peer: PublicKey,
    reason: Reason,
) -> (PeerRecord<NetAddress>, Vec<Change<NetAddress>>) {
    let mut r = PeerRecord::new(peer, reason);
    let mut changes = vec![Change::Persist { peer, reason }];
    if let Some(addrs) = reg.announced.get(&peer).filter(|a| !a.is_empty()) {
        r.advertised_addrs = addrs.clone();
        changes.push(Change::SetAdvertisedAddrs {
            peer,
            addrs: addrs.clone(),
        });
    }
    (r, changes)
}

/// The store changes of one request, appended to `changes`; an error
/// refuses the request (nothing written for it).
fn plan<C, E>(
    op: &mut Op,
    reg: &Registry<C, E>,
    mirror: &Mirror,
    work: &mut Work,
    changes: &mut Vec<Change<NetAddress>>,
) -> Result<(), ServerError> {
    let is_disconnect = matches!(op, Op::Disconnect(_));
    match op {
        Op::Connect(node) => {
            if reg.shut_down {
                return Err(ServerError::ShutDown);
            }
            let peer = node.pubkey;
            let (mut r, created) = match work.get(mirror, &peer).cloned() {
                Some(r) => (r, Vec::new()),
                None => {
                    let has_channels = reg.channels.contains_key(&peer);
                    fresh(
                        reg,
                        peer,
                        Reason {
                            user_asked: true,
                            has_channels,
                        },
                    )
                }
            };
            changes.extend(created);
            if !r.reason.user_asked {
                r.reason.user_asked = true;
                changes.push(Change::Persist {
                    peer,
                    reason: r.reason,
                });
            }
            r.user_addrs.retain(|a| *a != node.addr);
            r.user_addrs.insert(0, node.addr.clone());
            r.user_addrs.truncate(MAX_USER_ADDRS);
            changes.push(Change::SetUserAddrs {
                peer,
                addrs: r.user_addrs.clone(),
            });
            work.put(r);
        }
        Op::Disconnect(peer) | Op::Forget(peer) => {
            let stored = work.get(mirror, peer).is_some();
            let known = stored || reg.conns.contains_key(peer) || reg.workers.contains_key(peer);
            if is_disconnect && !known {
                return Err(ServerError::UnknownPeer(*peer));
            }
            if stored {
                work.remove(*peer, changes);
            }
        }
        Op::Ban {
            peer,
            until,
            in_force,
        } => {
            let end = until
                .unwrap_or_else(permanent_ban_end)
                .min(permanent_ban_end());
            changes.push(Change::Ban(Ban {
                peer: *peer,
                until: end,
            }));
            work.bans.insert(*peer, Some(ban_expiry(end)));
            // A ban stops a peer that is persistent only for its channels,
            // as it stops its worker.
            if *in_force && work.get(mirror, peer).is_some_and(|r| !r.reason.user_asked) {
                work.remove(*peer, changes);
            }
        }
        Op::Unban(peer) => {
            changes.push(Change::Unban { peer: *peer });
            work.bans.insert(*peer, None);
        }
        Op::UnbanEnded(peer, until) => {
            if work.ban(mirror, peer) == Some(Some(*until)) {
                changes.push(Change::Unban { peer: *peer });
                work.bans.insert(*peer, None);
            }
        }
        Op::ChannelOpened(peer) => {
            if reg.shut_down {
                return Ok(());
            }
            if work.get(mirror, peer).is_none() {
                let reason = Reason {
                    user_asked: false,
                    has_channels: true,
                };
                let (r, created) = fresh(reg, *peer, reason);
                changes.extend(created);
                work.put(r);
            } else {
                work.edit(mirror, *peer, changes, |r| {
                    (!r.reason.has_channels).then(|| {
                        r.reason.has_channels = true;
                        Change::Persist {
                            peer: r.id,
                            reason: r.reason,
                        }
                    })
                });
            }
        }
        Op::Prune { peer, stored } => {
            let Some(r) = work.get(mirror, peer) else {
                return Ok(());
            };
            if reg.channels.contains_key(peer) {
                *stored = Some(false);
                return Ok(());
            }
            if !r.reason.user_asked {
                work.remove(*peer, changes);
                *stored = Some(true);
            } else {
                *stored = Some(false);
                work.edit(mirror, *peer, changes, |r| {
                    r.reason.has_channels.then(|| {
                        r.reason.has_channels = false;
                        Change::Persist {
                            peer: r.id,
                            reason: r.reason,
                        }
                    })
                });
            }
        }
        Op::Connected { peer, addr, at } => work.edit(mirror, *peer, changes, |r| {
            let connection = LastConnection {
                addr: addr.clone(),
                at: *at,
                lasted: None,
            };
            r.last_connection = Some(connection.clone());
            Some(Change::SetLastConnection {
                peer: r.id,
                connection,
            })
        }),
        Op::Ended { peer, lasted } => work.edit(mirror, *peer, changes, |r| {
            let c = r.last_connection.as_mut().filter(|c| c.lasted.is_none())?;
            c.lasted = Some(*lasted);
            Some(Change::SetLastConnection {
                peer: r.id,
                connection: c.clone(),
            })
        }),
        Op::Backoff { peer, level } => work.edit(mirror, *peer, changes, |r| {
            (r.backoff != Some(*level)).then(|| {
                r.backoff = Some(*level);
                Change::SetBackoff {
                    peer: r.id,
                    level: *level,
                }
            })
        }),
        // Resolved at dequeue into `Advertised` (see `Announced::resolve`).
        Op::Announced(_) => {}
        Op::Advertised { peer, addrs } => work.edit(mirror, *peer, changes, |r| {
            (r.advertised_addrs != *addrs).then(|| {
                r.advertised_addrs = addrs.clone();
                Change::SetAdvertisedAddrs {
                    peer: r.id,
                    addrs: addrs.clone(),
                }
            })
        }),
    }
    Ok(())
}
