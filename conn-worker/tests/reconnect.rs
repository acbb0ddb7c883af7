//! Issue 18's reconnect phase, through the planner with time passed in by
//! hand (no runtime, no sleeps): after a stable connection ends, a peer
//! back at any time of the phase is dialed within the cap; a peer that
//! never connected or that flaps keeps lnd's schedule; a peer dark for
//! good costs a bounded number of extra dials, then decays.

use std::time::Duration;

use conn_worker::{Action, Phase, Planner, Policy, When};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const STAGGER: Duration = Duration::from_secs(10);

/// One peer with one address; each dial ends at once: refused before the
/// peer is `back`, connected from then on.
struct Peer {
    planner: Planner<u8>,
    t0: Instant,
    now: Instant,
    back: Option<Duration>,
    /// Dial times, from `t0`.
    dials: Vec<Duration>,
}

impl Peer {
    fn new(policy: Policy, seed: u64) -> Self {
        let t0 = Instant::now();
        let mut planner = Planner::new(policy, STAGGER, 1, seed);
        planner.update_addrs(t0, &[1]);
        Peer {
            planner,
            t0,
            now: t0,
            back: None,
            dials: Vec::new(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn act(&mut self) {
        while let Some(action) = self.planner.poll_action() {
            if let Action::Dial { id, .. } = action {
                self.dials.push(self.elapsed());
                self.planner.attempt_started(self.now, id);
                if self.back.is_some_and(|b| self.elapsed() >= b) {
                    assert!(self.planner.attempt_connected(self.now, id));
                } else {
                    self.planner.attempt_failed(self.now, id);
                }
            }
        }
    }

    /// Connects (the peer answers now) and stays connected for `lasted`.
    fn connected_for(&mut self, lasted: Duration) {
        self.back = Some(self.elapsed());
        self.planner.connect(self.now, &[], When::Now);
        self.act();
        assert_eq!(self.planner.phase(), Phase::Idle);
        self.now += lasted;
    }

    /// The connection ended after `connected_for`; the peer answers again
    /// `back` from now (`None`: never).
    fn drop_connection(&mut self, connected_for: Option<Duration>, back: Option<Duration>) {
        self.back = back.map(|b| self.elapsed() + b);
        self.planner
            .connect(self.now, &[], When::AfterDisconnect { connected_for });
        self.act();
    }

    /// Runs deadlines until `until` (from `t0`) or the planner is idle.
    fn run_until(&mut self, until: Duration) {
        for _ in 0..10_000 {
            let Some(deadline) = self.planner.next_deadline() else {
                return;
            };
            if deadline - self.t0 > until {
                return;
            }
            self.now = deadline;
            self.planner.handle_timeout(self.now);
            self.act();
        }
        panic!("the planner spins");
    }
}

/// How long after being back a restarted peer waits for its dial, for a
/// peer connected `lasted`, then down for `down`.
fn wait_after_restart(policy: Policy, seed: u64, lasted: Duration, down: Duration) -> Duration {
    let mut peer = Peer::new(policy, seed);
    peer.connected_for(lasted);
    let dropped = peer.elapsed();
    peer.drop_connection(Some(lasted), Some(down));
    peer.run_until(dropped + HOUR);
    assert_eq!(peer.planner.phase(), Phase::Idle, "reconnected");
    let dialed = *peer.dials.last().expect("dialed");
    dialed - (dropped + down)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(18),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (1) A peer back at any time of the phase (the first 95 s after the
    /// drop, with the default policy) is dialed within the cap (10 s; the
    /// jitter stays below it), so it is connected within the policy's min
    /// plus one stagger.
    #[test]
    fn a_peer_back_at_any_time_of_the_phase_is_dialed_within_the_cap(
        seed: u64,
        down_ms in 0u64..95_000,
        lasted_s in 600u64..100_000,
    ) {
        let policy = Policy::default();
        let wait = wait_after_restart(policy, seed, Duration::from_secs(lasted_s), Duration::from_millis(down_ms));
        prop_assert!(wait <= policy.reconnect_cap(), "waited {wait:?}");
        prop_assert!(wait <= policy.min() + STAGGER);
    }
}

#[test]
fn without_the_phase_a_restart_waits_about_as_long_as_it_was_down() {
    // The measurement, on lnd's policy: back 33 s after the drop,
    // the dials after it are at about 1, 3, 7, 15, 31 and 63 s.
    let mut worst = Duration::ZERO;
    for seed in 0..20 {
        let lnd = wait_after_restart(Policy::LND, seed, 11 * MINUTE, 33 * SECOND);
        worst = worst.max(lnd);
        let ours = wait_after_restart(Policy::default(), seed, 11 * MINUTE, 33 * SECOND);
        assert!(ours <= 10 * SECOND, "{ours:?}");
    }
    assert!(worst >= 25 * SECOND, "{worst:?}");
}

#[test]
fn a_never_connected_peer_keeps_lnds_schedule() {
    for seed in 0..50 {
        let schedule = |policy| {
            let mut peer = Peer::new(policy, seed);
            peer.planner.connect(peer.now, &[], When::Now);
            peer.act();
            peer.run_until(HOUR);
            let mut after = Peer::new(policy, seed);
            after.drop_connection(None, None);
            after.run_until(HOUR);
            (peer.dials, after.dials)
        };
        let (ours, lnd) = (schedule(Policy::default()), schedule(Policy::LND));
        assert_eq!(ours, lnd);
        assert!((11..=13).contains(&ours.0.len()), "{:?}", ours.0);
    }
}

#[test]
fn a_flapping_peer_keeps_lnds_schedule_and_decays() {
    // Up for 1, 5 or 9 minutes (less than the 10 min stable duration),
    // then down for a while, again and again: no phase, the same dials as
    // lnd's, and the level climbs to the cap.
    for seed in 0..50 {
        let schedule = |policy| {
            let mut peer = Peer::new(policy, seed);
            for (i, lasted) in [MINUTE, 5 * MINUTE, 9 * MINUTE]
                .repeat(4)
                .into_iter()
                .enumerate()
            {
                peer.connected_for(lasted);
                let dropped = peer.elapsed();
                let down = Duration::from_secs(60 + 97 * i as u64);
                peer.drop_connection(Some(lasted), Some(down));
                assert_eq!(peer.planner.reconnect_rounds_left(), 0);
                peer.run_until(dropped + 4 * HOUR);
                assert_eq!(peer.planner.phase(), Phase::Idle);
            }
            (peer.dials, peer.planner.backoff())
        };
        let (ours, lnd) = (schedule(Policy::default()), schedule(Policy::LND));
        assert_eq!(ours, lnd);
        assert!(ours.1.expect("a level") >= 10 * MINUTE, "{:?}", ours.1);
    }
}

#[test]
fn a_peer_dark_after_a_stable_connection_is_dialed_20_times_in_its_first_hour_not_12() {
    // (3) The phase: the first retry and 12 capped rounds, 13 dials in the
    // first 95-106 s, at most 10 s apart; then doubling from 10 s: 20
    // dials in the first hour, against lnd's 11-12.
    for seed in 0..50 {
        let dark = |policy| {
            let mut peer = Peer::new(policy, seed);
            peer.connected_for(HOUR);
            let dropped = peer.elapsed();
            peer.drop_connection(Some(HOUR), None);
            peer.run_until(dropped + HOUR);
            let dials: Vec<Duration> = peer.dials[1..].iter().map(|t| *t - dropped).collect();
            dials
        };
        let ours = dark(Policy::default());
        let lnd = dark(Policy::LND);
        assert_eq!(ours.len(), 20, "{ours:?}");
        assert!((11..=12).contains(&lnd.len()), "{lnd:?}");
        assert!(ours[0] <= 10 * SECOND);
        for w in ours[..13].windows(2) {
            assert!(w[1] - w[0] <= 10 * SECOND, "{w:?}");
        }
        assert!(
            ours[12] >= 95 * SECOND && ours[12] <= 106 * SECOND,
            "{:?}",
            ours[12]
        );
        // Then doubling again: each gap well over the one before.
        let gaps: Vec<Duration> = ours[12..].windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] > g[0] * 3 / 2), "{gaps:?}");
        assert!(gaps[0] > 15 * SECOND, "{gaps:?}");
    }
}

#[test]
fn a_connection_in_the_phase_ends_it_and_a_short_one_starts_none() {
    let mut peer = Peer::new(Policy::default(), 3);
    peer.connected_for(HOUR);
    peer.drop_connection(Some(HOUR), None);
    assert_eq!(peer.planner.reconnect_rounds_left(), 12);
    let dropped = peer.elapsed();
    peer.run_until(dropped + 20 * SECOND);
    assert!(peer.planner.reconnect_rounds_left() < 12);
    // Back for two minutes (a flap): no phase for that drop.
    peer.connected_for(2 * MINUTE);
    assert_eq!(peer.planner.reconnect_rounds_left(), 0);
    peer.drop_connection(Some(2 * MINUTE), None);
    assert_eq!(peer.planner.reconnect_rounds_left(), 0);
    // A stored level restored at startup starts none either.
    peer.planner.set_backoff(Some(MINUTE));
    assert_eq!(peer.planner.reconnect_rounds_left(), 0);
}
