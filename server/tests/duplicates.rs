//! Duplicate connections (issue 14): two servers in an in-memory network
//! with random per-link latency and handshake times, both dialing each
//! other at once, on the manual clock. With our rule on both ends they
//! always keep the same single connection and never lose both; against
//! models of LDK's (first wins), lnd's and Core Lightning / Eclair's
//! (newest wins) rules they do no worse than those rules against
//! themselves.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use backoff::SplitMix64;
use common::{key, Conn, Handler};
use conn_worker::{Clock, Dialer};
use server::{Config, DuplicateRule, NodeAddr, PublicKey, Server};
use testkit::{run, settle, ManualClock};
use tokio_util::sync::CancellationToken;

type Node = Server<Lossy, ManualClock, Handler>;

#[derive(Default)]
struct Links {
    nodes: HashMap<PublicKey, Weak<Node>>,
    /// Each dial's link id, by dialer, in order.
    dials: HashMap<PublicKey, Vec<u64>>,
}

/// A dial over a link whose handshake takes a random time: the initiator's
/// side completes after `rtt` (acts one and two), the responder's a random
/// one-way time later (act three). Cancelled before `rtt`, nothing reaches
/// the responder.
#[derive(Clone)]
struct Lossy {
    local: PublicKey,
    clock: ManualClock,
    links: Arc<Mutex<Links>>,
    rng: Arc<Mutex<SplitMix64>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no route")]
struct NoRoute;

impl Lossy {
    fn ms(&self, lo: u64, hi: u64) -> Duration {
        let r = self.rng.lock().expect("rng").next_u64();
        Duration::from_millis(lo + r % (hi - lo))
    }
}

impl Dialer for Lossy {
    type Addr = NodeAddr;
    type Conn = Conn;
    type Error = NoRoute;

    async fn dial(&self, addr: &NodeAddr, cancel: CancellationToken) -> Result<Conn, NoRoute> {
        let rtt = self.ms(2, 400);
        let one_way = self.ms(1, 200);
        let until = self.clock.now() + rtt;
        tokio::select! {
            () = cancel.cancelled() => return Err(NoRoute),
            () = self.clock.sleep_until(until) => {}
        }
        let target = self
            .links
            .lock()
            .expect("links")
            .nodes
            .get(&addr.pubkey)
            .and_then(Weak::upgrade)
            .ok_or(NoRoute)?;
        let (ours, theirs) = Conn::pair();
        self.links
            .lock()
            .expect("links")
            .dials
            .entry(self.local)
            .or_default()
            .push(ours.id);
        let clock = self.clock.clone();
        let from = self.local;
        tokio::spawn(async move {
            clock.sleep_until(clock.now() + one_way).await;
            target.inbound(from, theirs, None);
        });
        Ok(ours)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    runs: usize,
    converged: usize,
    both_lost: usize,
    stable_after: [Duration; 2], // max, p99 filled at the end
}

/// One simultaneous open between a node with rule `ra` and one with `rb`.
/// Returns (converged on one shared link, both first links lost, time of
/// the final link).
async fn open_once(seed: u64, ra: DuplicateRule, rb: DuplicateRule) -> (bool, bool, Duration) {
    let clock = ManualClock::new();
    let links = Arc::new(Mutex::new(Links::default()));
    let rng = Arc::new(Mutex::new(SplitMix64::new(seed)));
    let (ka, kb) = if seed % 2 == 0 {
        (key(1), key(2))
    } else {
        (key(2), key(1))
    };
    let mut nodes = Vec::new();
    for (k, rule) in [(ka, ra), (kb, rb)] {
        let mut c = Config::default();
        c.worker = c.worker.with_seed(seed);
        c.duplicate_rule = rule;
        let handler = Handler::default();
        let dialer = Lossy {
            local: k,
            clock: clock.clone(),
            links: Arc::clone(&links),
            rng: Arc::clone(&rng),
        };
        let node = Arc::new(Server::new(k, c, dialer, clock.clone(), handler.clone()));
        links
            .lock()
            .expect("links")
            .nodes
            .insert(k, Arc::downgrade(&node));
        nodes.push((node, handler));
    }
    let (a, ha) = &nodes[0];
    let (b, hb) = &nodes[1];
    // B starts a random moment after A: every ordering of the four
    // handshake ends occurs over the seeds.
    let offset = Duration::from_millis(rng.lock().expect("rng").next_u64() % 500);
    a.connect(NodeAddr::new(kb, common::addr(1)), true)
        .await
        .expect("perm");
    clock.advance(offset).await;
    b.connect(NodeAddr::new(ka, common::addr(1)), true)
        .await
        .expect("perm");
    settle().await;
    while clock.elapsed() < Duration::from_secs(120) {
        if clock.advance_to_next().await.is_none() {
            break;
        }
    }
    settle().await;
    let live = |n: &Node, h: &Handler, peer| {
        n.is_connected(&peer)
            .then(|| h.runs().last().map(|r| r.id))
            .flatten()
    };
    let (la, lb) = (live(a, ha, kb), live(b, hb, ka));
    let converged = la.is_some() && la == lb;
    let first: Vec<u64> = {
        let l = links.lock().expect("links");
        [ka, kb]
            .iter()
            .filter_map(|k| l.dials.get(k).and_then(|d| d.first().copied()))
            .collect()
    };
    let both_lost = la.is_none_or(|id| !first.contains(&id));
    // When the kept link was up on both ends.
    let start = clock.start();
    let since = |n: &Node| {
        n.status()
            .first()
            .and_then(|s| {
                s.connection
                    .as_ref()
                    .map(|c| c.since.saturating_duration_since(start))
            })
            .unwrap_or(clock.elapsed())
    };
    let settled = since(a).max(since(b));
    for (n, _) in &nodes {
        n.shutdown().await;
    }
    (converged, both_lost, settled)
}

async fn tally(seeds: u64, ra: DuplicateRule, rb: DuplicateRule) -> Tally {
    let mut t = Tally::default();
    let mut times = Vec::new();
    for seed in 0..seeds {
        let (converged, both_lost, settled) = open_once(seed, ra, rb).await;
        t.runs += 1;
        t.converged += usize::from(converged);
        t.both_lost += usize::from(both_lost);
        times.push(settled);
    }
    times.sort();
    t.stable_after = [
        times.last().copied().unwrap_or_default(),
        times[(times.len() * 99 / 100).min(times.len() - 1)],
    ];
    t
}

/// Seeds for the runs against other rules: 1,000 each, 10,000 with
/// `SOAK=long`. Ours against ours always runs 10,000.
fn seeds() -> u64 {
    if std::env::var("SOAK").is_ok_and(|v| v == "long") {
        10_000
    } else {
        1_000
    }
}

#[test]
fn our_rule_on_both_ends_always_keeps_one_shared_connection() {
    run(async {
        let ours = DuplicateRule::SmallerKeyInitiates;
        let t = tally(10_000, ours, ours).await;
        eprintln!("ours vs ours: {t:?}");
        assert_eq!(t.converged, t.runs, "{t:?}");
        assert_eq!(t.both_lost, 0, "{t:?}");
    });
}

#[test]
fn against_other_rules_we_do_no_worse_than_they_do_against_themselves() {
    run(async {
        let ours = DuplicateRule::SmallerKeyInitiates;
        let n = seeds();
        for other in [
            DuplicateRule::FirstWins,
            DuplicateRule::LndEffective,
            DuplicateRule::NewestWins,
        ] {
            let mixed = tally(n, ours, other).await;
            let alone = tally(n, other, other).await;
            eprintln!("ours vs {other:?}: {mixed:?}\n{other:?} vs itself: {alone:?}");
            assert_eq!(mixed.converged, mixed.runs, "{other:?}: {mixed:?}");
            assert!(
                mixed.both_lost <= alone.both_lost,
                "{other:?}: {mixed:?} vs {alone:?}"
            );
        }
    });
}

mod mechanics {
    use super::common::{key, key_above, key_below, node, Conn, Fixture, SECOND};
    use server::Direction;
    use testkit::{run, settle, Behavior};

    /// A first-wins peer kept the connection we lost and closes the one we
    /// kept: the parked one takes over at once.
    #[test]
    fn a_parked_loser_takes_over_when_the_peer_closes_the_winner() {
        run(async {
            let peer = key(9);
            // Our key is the smaller: our outbound connection wins.
            let f = Fixture::new(key_below(peer));
            let ours = Conn::lone();
            assert!(f.server.outbound(node(peer, 1), ours));
            let theirs = Conn::lone();
            let theirs_id = theirs.id;
            let watch = theirs.watch();
            assert!(!f.server.inbound(peer, theirs, None), "it loses");
            settle().await;
            let s = &f.server.status()[0];
            assert_eq!(s.parked, Some(Direction::Inbound));
            assert!(!watch.is_cancelled(), "held open, not closed");
            // The peer closes our winner: the parked one is served.
            f.handler.close(&peer);
            settle().await;
            assert!(f.server.is_connected(&peer));
            let last = f.handler.runs().last().cloned().expect("runs");
            assert_eq!((last.id, last.direction), (theirs_id, Direction::Inbound));
            assert_eq!(f.server.status()[0].parked, None);
            f.server.shutdown().await;
        });
    }

    /// When the winner lives, the parked loser is closed after the grace.
    #[test]
    fn a_parked_loser_is_closed_after_the_grace() {
        run(async {
            let peer = key(9);
            let f = Fixture::new(key_below(peer));
            assert!(f.server.outbound(node(peer, 1), Conn::lone()));
            let theirs = Conn::lone();
            let watch = theirs.watch();
            assert!(!f.server.inbound(peer, theirs, None));
            settle().await;
            f.clock.advance(5 * SECOND).await;
            assert!(watch.is_cancelled(), "closed after the grace");
            assert_eq!(f.server.status()[0].parked, None);
            assert_eq!(f.handler.runs().len(), 1);
            f.server.shutdown().await;
        });
    }

    /// A new connection that won a duplicate and is then closed at once by
    /// the peer (which kept the other one): both are gone, and the worker
    /// redials within a small jitter, not after a backoff step.
    #[test]
    fn losing_both_to_a_peers_rule_redials_at_once() {
        run(async {
            let peer = key(9);
            // Our key is the larger: the peer's inbound connection wins.
            let f = Fixture::new(key_above(peer));
            f.dialer.set(node(peer, 1), Behavior::Succeed);
            f.server.connect(node(peer, 1), true).await.expect("perm");
            settle().await;
            assert!(f.server.is_connected(&peer));
            f.clock.advance(60 * SECOND).await;
            assert!(f.server.inbound(peer, Conn::lone(), None), "it wins");
            settle().await;
            // The peer closes it at once (it kept our outbound, now closed).
            f.handler.close(&peer);
            settle().await;
            let wait = f.clock.next_wake().expect("a redial is planned");
            assert!(wait <= SECOND / 10, "redial after {wait:?}");
            f.clock.advance(wait).await;
            assert!(f.server.is_connected(&peer));
            f.server.shutdown().await;
        });
    }
}
