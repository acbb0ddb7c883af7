//! Dial capacity (issue 13): dead peers never starve live ones, every dial
//! is counted against one limit, and a hanging dial cannot keep its slot.
//! All on the manual clock with the shipped defaults.

mod common;

use std::time::Duration;

use common::{key, node, Fixture, SECOND};
use server::{PublicKey, ServerEvent, StartupPeer};
use testkit::{run, settle, Behavior};

const US: u8 = 250;

/// Distinct keys for `n` peers (from two-byte seeds: more than 255 peers).
fn keys(n: usize) -> Vec<PublicKey> {
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    let secp = Secp256k1::signing_only();
    (0..n)
        .map(|i| {
            let mut b = [7u8; 32];
            b[0] = (i >> 8) as u8 + 1;
            b[1] = i as u8;
            PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&b).expect("valid"))
        })
        .collect()
}

/// Starts `dead` peers whose address never answers (listed first), then
/// 100 live ones; returns the simulated time until every live peer is
/// connected and the peak of dials in flight.
async fn startup_with_dead(dead: usize) -> (Duration, usize) {
    let f = Fixture::new(key(US));
    let peers = keys(dead + 100);
    for (i, p) in peers.iter().enumerate() {
        let b = if i < dead {
            Behavior::Hang
        } else {
            Behavior::Succeed
        };
        f.dialer.set(node(*p, 1), b);
    }
    f.server.startup(
        peers
            .iter()
            .map(|p| StartupPeer::new(*p, vec![common::addr(1)], false)),
    );
    settle().await;
    let live = &peers[dead..];
    let mut steps = 0;
    while !live.iter().all(|p| f.server.is_connected(p)) {
        assert!(
            f.clock.advance_to_next().await.is_some(),
            "nothing left to wait for"
        );
        steps += 1;
        assert!(steps < 100_000, "no progress");
    }
    let took = f.clock.elapsed();
    let peak = f.server.peak_dials_in_flight();
    f.server.shutdown().await;
    (took, peak)
}

#[test]
fn dead_peers_listed_first_cost_live_ones_at_most_a_tenth_more_time() {
    run(async {
        let (base, peak0) = startup_with_dead(0).await;
        for dead in [20, 200] {
            let (took, peak) = startup_with_dead(dead).await;
            let ratio = took.as_secs_f64() / base.as_secs_f64();
            eprintln!("{dead} dead: live peers connected after {took:?} ({ratio:.3}x of {base:?}), peak {peak} dials in flight");
            assert!(ratio <= 1.1, "{dead} dead peers: {took:?} vs {base:?}");
            assert!(peak <= 10, "peak {peak} dials in flight");
        }
        assert!(peak0 <= 10);
    });
}

#[test]
fn a_dialer_with_no_timeout_of_its_own_cannot_hold_a_slot_forever() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Hang);
        let mut events = f.server.events();
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        assert_eq!(f.server.dials_in_flight(), 1);
        // Nobody waits for a slot: it is held up to the attempt timeout.
        f.clock.advance(10 * SECOND).await;
        assert_eq!(f.server.dials_in_flight(), 0);
        let mut timed_out = false;
        while let Ok(e) = events.try_recv() {
            if let ServerEvent::DialFailed { class, failure, .. } = e {
                assert_eq!(class, server::FailureClass::Timeout);
                assert!(matches!(failure, server::DialFailure::TimedOut { .. }));
                timed_out = true;
            }
        }
        assert!(timed_out);
        f.server.shutdown().await;
    });
}

#[test]
fn dead_peers_are_retried_with_backoff_and_connect_when_they_come_back() {
    run(async {
        let f = Fixture::new(key(US));
        let peers = keys(30);
        for p in &peers {
            f.dialer.set(node(*p, 1), Behavior::Hang);
        }
        for p in &peers {
            f.server.connect(node(*p, 1), true).await.expect("perm");
        }
        settle().await;
        // Ten minutes of dead peers.
        while f.clock.elapsed() < 600 * SECOND {
            f.clock.advance_to_next().await;
        }
        let dials = f.dialer.dialed().len();
        // Each peer's waits double from 1 s: about ten rounds in ten
        // minutes, not one every few seconds.
        assert!(dials <= 30 * 12, "{dials} dials in ten minutes");
        assert!(f.server.peak_dials_in_flight() <= 10);
        // They come back.
        for p in &peers {
            f.dialer.set(node(*p, 1), Behavior::Succeed);
        }
        let mut steps = 0;
        while !peers.iter().all(|p| f.server.is_connected(p)) {
            f.clock.advance_to_next().await;
            steps += 1;
            assert!(steps < 100_000);
        }
        f.server.shutdown().await;
    });
}

#[test]
fn one_off_dials_share_the_limit_and_go_first() {
    run(async {
        let f = Fixture::new(key(US));
        let peers = keys(60);
        for p in &peers {
            f.dialer.set(node(*p, 1), Behavior::Hang);
        }
        // Ten workers (started peers, not a user's dials) hold every slot.
        f.server.startup(
            peers[..10]
                .iter()
                .map(|p| StartupPeer::new(*p, vec![common::addr(1)], false)),
        );
        settle().await;
        assert_eq!(f.server.dials_in_flight(), 10);
        // Fifty one-off connects at once: they take the workers' slots (a
        // user's dial first, once a holder's lease is over) but never more
        // than the limit in all.
        let mut calls = Vec::new();
        for p in &peers[10..] {
            let server = f.server.clone();
            let n = node(*p, 1);
            calls.push(tokio::spawn(async move { server.connect(n, false).await }));
        }
        settle().await;
        assert_eq!(f.server.dials_in_flight(), 10);
        // After one lease the workers' slots go to the user's dials, which
        // queue ahead of them.
        f.clock.advance(SECOND).await;
        assert_eq!(f.server.dials_in_flight(), 10);
        let one_off_in_flight = f
            .dialer
            .attempts()
            .iter()
            .filter(|a| {
                a.outcome == testkit::Outcome::Pending && peers[10..].contains(&a.addr.pubkey)
            })
            .count();
        assert_eq!(one_off_in_flight, 10, "user dials went first");
        while calls.iter().any(|c| !c.is_finished()) {
            f.clock.advance_to_next().await;
        }
        assert!(f.server.peak_dials_in_flight() <= 10);
        f.server.shutdown().await;
    });
}

#[test]
fn zero_limits_and_timeouts_are_refused_when_the_config_is_built() {
    let c = conn_worker::Config::default();
    assert!(c.clone().with_attempt_timeout(Duration::ZERO).is_err());
    assert!(c.clone().with_slot_lease(Duration::ZERO).is_err());
    let e = c.with_attempt_timeout(Duration::ZERO).expect_err("zero");
    assert_eq!(e.to_string(), "attempt timeout must be greater than zero");
    // A limit of zero cannot be written: the type is `NonZeroUsize`.
    assert!(std::num::NonZeroUsize::new(0).is_none());
}
