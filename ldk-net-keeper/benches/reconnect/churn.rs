//! The churn: each live peer's life (up, then alternately a restart and a
//! blip), ldk-node's reconnect loop, and a dialer that counts the dials to
//! the dead peer. All durations are world time ([`Scaled`]) unless named
//! `wall`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use conn_worker::{Clock, Dialer, FailureClass};
use ldk_net_keeper::{Error, LdkConnection, LdkDialer};
use lnaddr::NodeAddr;
use testkit::ldk::{LdkNode, LdkPeer, Manager};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Scaled;

/// How long a live peer stays up before its next restart or blip.
const UP: (Duration, Duration) = (Duration::from_secs(11 * 60), Duration::from_secs(14 * 60));
/// How long a restarting peer stays down.
const DOWN: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(60));
/// A restart or blip not reconnected within this counts as missed.
const MISSED_AFTER: Duration = Duration::from_secs(10 * 60);
/// ldk-node's reconnect loop interval.
pub(crate) const LOOP_INTERVAL: Duration = Duration::from_secs(60);
/// Wall time between re-checks when no LDK handler reported a change (a
/// fallback: the handlers' notifications are what wakes a waiter).
const POLL_WALL: Duration = Duration::from_millis(5);

/// A xorshift generator: the same index gives the same schedule, so both
/// hubs' peers churn alike.
struct Rng(u64);

impl Rng {
    fn new(index: u8) -> Self {
        Self(0x9e37_79b9_7f4a_7c15 ^ u64::from(index))
    }

    fn between(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo).mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

/// Waits until `done` holds, re-checking whenever either node's LDK
/// handler reports a change, for at most `cap_wall`; `false` after it or
/// once `stop` fires.
pub(crate) async fn wait(
    nodes: [&LdkNode; 2],
    cap_wall: Duration,
    stop: &CancellationToken,
    done: impl Fn() -> bool,
) -> bool {
    let deadline = Instant::now() + cap_wall;
    loop {
        let (a, b) = (nodes[0].changed(), nodes[1].changed());
        if done() {
            return true;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return false,
            () = tokio::time::sleep_until(deadline) => return done(),
            () = a => {}
            () = b => {}
            () = tokio::time::sleep(POLL_WALL) => {}
        }
    }
}

/// Where one kind of event is reported: each one's wall time from the
/// peer being back to connected on both ends, or a miss (not reconnected
/// within [`MISSED_AFTER`]).
#[derive(Clone)]
pub(crate) struct Tally {
    pub(crate) events: Sender<Duration>,
    pub(crate) missed: Arc<AtomicUsize>,
}

/// Where one hub's peers report.
#[derive(Clone)]
pub(crate) struct Report {
    /// Restarts: from the listener being back.
    pub(crate) restart: Tally,
    /// Blips (the peer drops the connection and stays up): from the drop.
    pub(crate) blip: Tally,
}

/// One live peer's life until `stop`: up, then alternately a restart (down,
/// back on the same port, same key) and a blip. `index` picks the
/// schedule, `seed` the node key.
pub(crate) async fn churn(
    index: u8,
    seed: u8,
    mut peer: LdkPeer,
    hub: Arc<LdkNode>,
    clock: Scaled,
    report: Report,
    stop: CancellationToken,
) {
    let mut rng = Rng::new(index);
    let (id, hub_id) = (peer.id(), hub.node_id);
    let cap = clock.wall(MISSED_AFTER);
    for cycle in 0u64.. {
        let (up, down) = (rng.between(UP), rng.between(DOWN));
        tokio::select! {
            () = stop.cancelled() => break,
            () = clock.sleep(up) => {}
        }
        let restart = cycle % 2 == 0;
        let back = if restart {
            let port = peer.addr().port();
            peer.stop().await;
            wait([&hub, &hub], cap, &stop, || !hub.has(&id)).await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = clock.sleep(down) => {}
            }
            peer = match LdkPeer::start(seed, port).await {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("peer {seed}: cannot listen on port {port} again: {e}");
                    report.restart.missed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            Instant::now()
        } else {
            peer.node.manager.disconnect_by_node_id(hub_id);
            let dropped = Instant::now();
            wait([&hub, &peer.node], cap, &stop, || !hub.has(&id)).await;
            dropped
        };
        let connected = || hub.has(&id) && peer.has(&hub_id);
        let tally = if restart {
            &report.restart
        } else {
            &report.blip
        };
        if wait([&hub, &peer.node], cap, &stop, connected).await {
            // The bench may have stopped listening: nothing left to report.
            let _ = tally.events.send(back.elapsed());
        } else if !stop.is_cancelled() {
            tally.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
    peer.stop().await;
}

/// ldk-node's reconnect loop: every [`LOOP_INTERVAL`], each stored peer
/// that LDK does not list is dialed in turn, no backoff.
pub(crate) async fn baseline(
    dialer: Counted,
    hub: Arc<LdkNode>,
    peers: Vec<NodeAddr>,
    clock: Scaled,
    stop: CancellationToken,
) {
    // lightning-net-tokio's task holds each connection until it ends.
    let mut held: HashMap<PublicKey, LdkConnection> = HashMap::new();
    let mut tick = tokio::time::interval(clock.wall(LOOP_INTERVAL));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for node in &peers {
            if hub.has(&node.pubkey) {
                continue;
            }
            if let Ok(conn) = dialer.dial(node, stop.child_token()).await {
                held.insert(node.pubkey, conn);
            }
        }
    }
}

/// The hub's dialer, recording when each dial to one watched peer (the
/// dead one) starts: both hubs are counted at the same point.
#[derive(Clone)]
pub(crate) struct Counted {
    inner: LdkDialer<Arc<Manager>>,
    watched: PublicKey,
    clock: Scaled,
    dials: Arc<Mutex<Vec<Instant>>>,
}

impl Counted {
    pub(crate) fn new(inner: LdkDialer<Arc<Manager>>, watched: PublicKey, clock: Scaled) -> Self {
        Self {
            inner,
            watched,
            clock,
            dials: Arc::default(),
        }
    }

    /// World time of each dial to the watched peer, since `since`.
    pub(crate) fn dials_since(&self, since: Instant) -> Vec<Duration> {
        let dials = self.dials.lock().unwrap_or_else(PoisonError::into_inner);
        dials
            .iter()
            .map(|at| at.saturating_duration_since(since))
            .collect()
    }
}

impl Dialer for Counted {
    type Addr = NodeAddr;
    type Conn = LdkConnection;
    type Error = Error;

    fn dial(
        &self,
        node: &NodeAddr,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<LdkConnection, Error>> + Send {
        if node.pubkey == self.watched {
            let mut dials = self.dials.lock().unwrap_or_else(PoisonError::into_inner);
            dials.push(self.clock.now());
        }
        self.inner.dial(node, cancel)
    }

    fn classify(&self, error: &Error) -> FailureClass {
        self.inner.classify(error)
    }
}
