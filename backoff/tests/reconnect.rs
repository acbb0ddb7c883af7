//! The reconnect phase: after a stable connection ends, retries stay under
//! the cap for a bounded number of rounds; everything else keeps lnd's
//! schedule.

use backoff::{Jitter, Policy, PolicyError, Reconnect, SplitMix64};
use core::time::Duration;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// A peer's retries as a caller keeps them: the delay and the rounds left
/// in the phase.
struct Peer {
    policy: Policy,
    entropy: SplitMix64,
    level: Option<Duration>,
    left: u16,
}

impl Peer {
    fn new(policy: Policy, seed: u64) -> Self {
        Peer {
            policy,
            entropy: SplitMix64::new(seed),
            level: None,
            left: 0,
        }
    }

    fn disconnect(&mut self, connected_for: Option<Duration>) -> Duration {
        let d = self
            .policy
            .after_disconnect(self.level, connected_for, self.entropy.next_u64());
        self.left = self.policy.reconnect_rounds(connected_for);
        self.level = Some(d);
        d
    }

    fn failed(&mut self) -> Duration {
        let current = self.level.unwrap_or(self.policy.min());
        let e = self.entropy.next_u64();
        let d = if self.left > 0 {
            self.left -= 1;
            self.policy.after_failure_reconnecting(current, e)
        } else {
            self.policy.after_failure(current, e)
        };
        self.level = Some(d);
        d
    }

    /// Dial times from the disconnect for a peer that never answers, up to
    /// `horizon`, and when the phase ended (the last dial whose wait was
    /// capped).
    fn dark(
        mut self,
        level: Option<Duration>,
        lasted: Option<Duration>,
        horizon: Duration,
    ) -> (Vec<Duration>, Duration) {
        self.level = level;
        let mut t = self.disconnect(lasted);
        let mut dials = Vec::new();
        let mut phase_end = Duration::ZERO;
        while t <= horizon {
            dials.push(t);
            let in_phase = self.left > 0;
            t += self.failed();
            if in_phase {
                phase_end = t;
            }
        }
        (dials, phase_end)
    }
}

#[test]
fn defaults_cap_at_ten_seconds_for_twelve_rounds_and_lnd_has_none() {
    assert_eq!(Reconnect::default(), Reconnect::DEFAULT);
    assert_eq!(Reconnect::DEFAULT.cap(), 10 * SECOND);
    assert_eq!(Reconnect::DEFAULT.rounds(), 12);
    assert_eq!(Policy::default().reconnect(), Reconnect::DEFAULT);
    assert_eq!(
        Policy::new(SECOND, HOUR).expect("valid").reconnect(),
        Reconnect::DEFAULT
    );
    assert!(Policy::LND.reconnect().is_off());
    assert!(Reconnect::OFF.is_off());
    assert!(Reconnect::new(SECOND, 0).expect("valid").is_off());
}

#[test]
fn zero_cap_is_refused() {
    assert_eq!(
        Reconnect::new(Duration::ZERO, 12),
        Err(PolicyError::ZeroReconnectCap)
    );
    assert_eq!(
        PolicyError::ZeroReconnectCap.to_string(),
        "reconnect cap is zero"
    );
}

#[test]
fn the_cap_is_clamped_into_min_and_max() {
    let small = Policy::new(
        50 * Duration::from_millis(1),
        400 * Duration::from_millis(1),
    )
    .expect("valid");
    assert_eq!(small.reconnect_cap(), small.max());
    let slow = Policy::new(30 * SECOND, HOUR).expect("valid");
    assert_eq!(slow.reconnect_cap(), slow.min());
    assert_eq!(Policy::default().reconnect_cap(), 10 * SECOND);
}

#[test]
fn only_a_stable_connection_starts_a_phase() {
    let p = Policy::default();
    assert_eq!(p.reconnect_rounds(None), 0);
    assert_eq!(
        p.reconnect_rounds(Some(p.stable() - Duration::from_nanos(1))),
        0
    );
    assert_eq!(p.reconnect_rounds(Some(p.stable())), 12);
    assert_eq!(p.reconnect_rounds(Some(HOUR)), 12);
    assert_eq!(Policy::LND.reconnect_rounds(Some(HOUR)), 0);
}

#[test]
fn a_peer_dark_after_a_stable_connection_is_retried_every_ten_seconds_then_decays() {
    // (1) and (3) of issue 18, on the default policy, over 1000 seeds: every
    // retry of the phase is at most the cap after the previous one (so a
    // peer back at any time `t` of the phase is dialed by `t + cap`), the
    // phase covers the first 95 s at least, and the first hour costs 20
    // dials instead of lnd's 11–12.
    let p = Policy::default();
    for seed in 0..1000 {
        let (dials, phase_end) = Peer::new(p, seed).dark(Some(4 * SECOND), Some(HOUR), HOUR);
        assert!(dials[0] <= p.reconnect_cap(), "{:?}", dials[0]);
        let in_phase: Vec<&Duration> = dials.iter().filter(|t| **t <= phase_end).collect();
        assert_eq!(in_phase.len(), 13, "the first retry and 12 capped rounds");
        for w in in_phase.windows(2) {
            assert!(*w[1] - *w[0] <= p.reconnect_cap(), "{:?}", w);
        }
        assert!(
            phase_end >= 95 * SECOND && phase_end <= 106 * SECOND,
            "{phase_end:?}"
        );
        // After the phase the gaps double again, up to the cap of an hour.
        let after: Vec<Duration> = dials
            .windows(2)
            .filter(|w| w[0] >= phase_end)
            .map(|w| w[1] - w[0])
            .collect();
        assert!(after.windows(2).all(|g| g[1] > g[0] * 3 / 2), "{after:?}");
        assert_eq!(dials.len(), 20, "seed {seed}: {dials:?}");

        let (lnd, lnd_phase) =
            Peer::new(Policy::LND, seed).dark(Some(4 * SECOND), Some(HOUR), HOUR);
        assert_eq!(lnd_phase, Duration::ZERO);
        assert!((11..=12).contains(&lnd.len()), "{lnd:?}");
    }
}

#[test]
fn never_connected_and_flapping_peers_keep_lnds_schedule() {
    // (2): the same seed gives the same delays with the phase on and off.
    for seed in 0..200 {
        for lasted in [None, Some(Duration::ZERO), Some(MINUTE), Some(9 * MINUTE)] {
            let ours = Peer::new(Policy::default(), seed).dark(None, lasted, HOUR);
            let lnd = Peer::new(Policy::LND, seed).dark(None, lasted, HOUR);
            assert_eq!(ours.0, lnd.0, "lasted {lasted:?}");
        }
        // A flapping peer: up 1 minute, down for three failed rounds, again
        // and again: its level climbs as lnd's.
        let mut ours = Peer::new(Policy::default(), seed);
        let mut lnd = Peer::new(Policy::LND, seed);
        for _ in 0..10 {
            assert_eq!(ours.disconnect(Some(MINUTE)), lnd.disconnect(Some(MINUTE)));
            for _ in 0..3 {
                assert_eq!(ours.failed(), lnd.failed());
            }
        }
        assert_eq!(ours.level, lnd.level);
        assert!(ours.level.expect("set") >= 50 * MINUTE);
    }
}

#[test]
fn a_long_level_after_a_stable_connection_is_cut_to_the_cap() {
    // lnd relaxes a 30 min level by 20 min connected to 34–40 min; in the
    // phase the first retry is within the cap.
    let p = Policy::default();
    for e in [0, 1 << 63, u64::MAX, 42] {
        let d = p.after_disconnect(Some(30 * MINUTE), Some(20 * MINUTE), e);
        assert!(d >= 9 * SECOND && d <= 10 * SECOND, "{d:?}");
        let lnd = Policy::LND.after_disconnect(Some(30 * MINUTE), Some(20 * MINUTE), e);
        assert!(lnd >= 34 * MINUTE, "{lnd:?}");
    }
}

fn any_policy() -> impl Strategy<Value = Policy> {
    (
        1u64..=10_000_000_000,
        1u32..=1_000,
        0u16..=Jitter::MAX_PERMILLE,
        0u64..=10_000,
        1u64..=100_000_000_000,
        0u16..=40,
    )
        .prop_map(|(min_ns, ratio, permille, stable_s, cap_ns, rounds)| {
            let min = Duration::from_nanos(min_ns);
            Policy::new(min, min * ratio)
                .expect("min > 0 and max >= min")
                .with_jitter(Jitter::from_permille(permille).expect("in range"))
                .with_stable(Duration::from_secs(stable_s))
                .with_reconnect(
                    Reconnect::new(Duration::from_nanos(cap_ns), rounds).expect("cap > 0"),
                )
        })
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (0u64..=100_000_000_000_000).prop_map(Duration::from_nanos),
        Just(Duration::MAX),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: RngSeed::Fixed(18),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn reconnecting_delays_lie_within_min_and_the_cap(p in any_policy(), cur in any_duration(), e: u64) {
        let d = p.after_failure_reconnecting(cur, e);
        prop_assert!(d >= p.min() && d <= p.reconnect_cap(), "{:?} outside [{:?}, {:?}]", d, p.min(), p.reconnect_cap());
        prop_assert!(p.reconnect_cap() <= p.max());
    }

    #[test]
    fn without_jitter_reconnecting_doubles_up_to_the_cap(p in any_policy(), cur in any_duration(), e: u64) {
        let exact = p.with_jitter(Jitter::NONE);
        let expected = cur.max(p.min()).saturating_mul(2).min(p.reconnect_cap());
        prop_assert_eq!(exact.after_failure_reconnecting(cur, e), expected);
    }

    #[test]
    fn a_stable_disconnect_in_a_phase_waits_at_most_the_cap(
        p in any_policy(),
        cur in proptest::option::of(any_duration()),
        lasted in any_duration(),
        e: u64,
    ) {
        let d = p.after_disconnect(cur, Some(lasted), e);
        let off = p.with_reconnect(Reconnect::OFF).after_disconnect(cur, Some(lasted), e);
        prop_assert!(d >= p.min() && d <= off);
        if p.reconnect_rounds(Some(lasted)) > 0 {
            prop_assert!(d <= p.reconnect_cap(), "{:?} above {:?}", d, p.reconnect_cap());
        } else {
            prop_assert_eq!(d, off);
        }
    }

    #[test]
    fn the_phase_never_changes_a_failure_nor_an_unstable_disconnect(
        p in any_policy(),
        cur in proptest::option::of(any_duration()),
        lasted in proptest::option::of(any_duration()),
        e: u64,
    ) {
        let off = p.with_reconnect(Reconnect::OFF);
        if let Some(cur) = cur {
            prop_assert_eq!(p.after_failure(cur, e), off.after_failure(cur, e));
        }
        let stable = lasted.is_some_and(|l| l >= p.stable());
        if !stable {
            prop_assert_eq!(p.reconnect_rounds(lasted), 0);
            prop_assert_eq!(p.after_disconnect(cur, lasted, e), off.after_disconnect(cur, lasted, e));
        }
    }
}
