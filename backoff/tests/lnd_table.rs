//! lnd's backoff examples (shared/REFERENCE.md), with the fixes of DESIGN.md.

use backoff::{Jitter, Policy, PolicyError};
use core::time::Duration;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Entropy at the bottom, the middle and the top of the window, plus a few
/// arbitrary values.
const ENTROPIES: [u64; 6] = [
    0,
    1 << 63,
    u64::MAX,
    0x9e37_79b9_7f4a_7c15,
    0x0123_4567_89ab_cdef,
    42,
];

fn lnd() -> Policy {
    Policy::LND
}

#[test]
fn defaults_are_lnds() {
    let p = lnd();
    assert!(p.reconnect().is_off());
    // The default adds only the reconnect phase.
    assert_eq!(
        Policy::default(),
        p.with_reconnect(backoff::Reconnect::DEFAULT)
    );
    assert_eq!(p.min(), SECOND);
    assert_eq!(p.max(), HOUR);
    assert_eq!(p.stable(), 10 * MINUTE);
    assert_eq!(p.jitter(), Jitter::LND);
    assert_eq!(p.first(0), SECOND);
}

#[test]
fn one_second_doubles_to_within_five_percent_of_two() {
    let p = lnd();
    assert_eq!(p.after_failure(SECOND, 0), Duration::from_millis(1900));
    assert_eq!(p.after_failure(SECOND, 1 << 63), 2 * SECOND);
    for e in ENTROPIES {
        let d = p.after_failure(SECOND, e);
        assert!(
            d >= Duration::from_millis(1900) && d < Duration::from_millis(2100),
            "{d:?}"
        );
    }
}

#[test]
fn forty_minutes_caps_at_one_hour_and_spreads_below_it() {
    // lnd: [57 min, 63 min), exceeding max. Here: [54 min, 60 min].
    let p = lnd();
    assert_eq!(p.after_failure(40 * MINUTE, 0), 54 * MINUTE);
    for e in ENTROPIES {
        let d = p.after_failure(40 * MINUTE, e);
        assert!(d >= 54 * MINUTE && d <= HOUR, "{d:?}");
    }
    assert!(p.after_failure(40 * MINUTE, u64::MAX) > 59 * MINUTE);
}

#[test]
fn thirty_minutes_after_twenty_connected_relaxes_between_min_and_fifty_minutes() {
    let p = lnd();
    for e in ENTROPIES {
        let d = p.after_disconnect(Some(30 * MINUTE), Some(20 * MINUTE), e);
        assert!(d >= SECOND && d <= 50 * MINUTE, "{d:?}");
        // Doubled to the cap (54..60 min), less the 20 minutes connected.
        assert!(d >= 34 * MINUTE && d <= 40 * MINUTE, "{d:?}");
    }
}

#[test]
fn one_second_after_an_hour_connected_is_min_spread_upwards() {
    // lnd: exactly min. Here: min plus up to one jitter margin (10%).
    let p = lnd();
    for e in ENTROPIES {
        let d = p.after_disconnect(Some(SECOND), Some(HOUR), e);
        assert!(d >= SECOND && d <= Duration::from_millis(1100), "{d:?}");
    }
}

#[test]
fn no_known_backoff_gives_the_first_step() {
    let p = lnd();
    for e in ENTROPIES {
        assert_eq!(p.after_disconnect(None, Some(MINUTE), e), p.first(e));
        assert_eq!(p.after_disconnect(None, None, e), p.first(e));
        let d = p.first(e);
        assert!(d >= SECOND && d <= Duration::from_millis(1100), "{d:?}");
    }
}

#[test]
fn a_mass_disconnect_spreads_the_first_retries() {
    // 1,000 peers drop at once (our own network blip): lnd retries them all
    // exactly `min` later. Here the first steps are spread over the margin.
    let p = lnd();
    let mut rng = backoff::SplitMix64::new(7);
    let mut firsts: Vec<Duration> = (0..1000).map(|_| p.first(rng.next_u64())).collect();
    let mut relaxed: Vec<Duration> = (0..1000)
        .map(|_| p.after_disconnect(Some(SECOND), Some(HOUR), rng.next_u64()))
        .collect();
    for v in [&mut firsts, &mut relaxed] {
        assert!(v
            .iter()
            .all(|d| *d >= SECOND && *d <= Duration::from_millis(1100)));
        v.sort();
        v.dedup();
        assert!(v.len() > 990, "only {} distinct retry times", v.len());
    }
}

#[test]
fn short_or_never_started_connection_keeps_backing_off() {
    let p = lnd();
    for e in ENTROPIES {
        let failed = p.after_failure(4 * SECOND, e);
        assert_eq!(p.after_disconnect(Some(4 * SECOND), None, e), failed);
        assert_eq!(
            p.after_disconnect(Some(4 * SECOND), Some(9 * MINUTE), e),
            failed
        );
    }
}

#[test]
fn exactly_stable_connection_relaxes() {
    let p = lnd();
    let d = p.after_disconnect(Some(20 * MINUTE), Some(10 * MINUTE), 1 << 63);
    assert_eq!(d, 30 * MINUTE);
}

#[test]
fn zero_backoff_counts_as_min() {
    let p = lnd();
    assert_eq!(p.after_failure(Duration::ZERO, 1 << 63), 2 * SECOND);
    assert_eq!(
        p.after_disconnect(Some(Duration::ZERO), None, 1 << 63),
        2 * SECOND
    );
}

#[test]
fn zero_min_is_refused() {
    assert_eq!(Policy::new(Duration::ZERO, HOUR), Err(PolicyError::ZeroMin));
}

#[test]
fn min_above_max_is_refused() {
    assert_eq!(
        Policy::new(HOUR, SECOND),
        Err(PolicyError::MinAboveMax {
            min: HOUR,
            max: SECOND
        })
    );
}

#[test]
fn min_equal_to_max_always_gives_that_value() {
    let p = Policy::new(5 * SECOND, 5 * SECOND).expect("min == max is valid");
    for e in ENTROPIES {
        assert_eq!(p.after_failure(5 * SECOND, e), 5 * SECOND);
        assert_eq!(p.after_failure(Duration::ZERO, e), 5 * SECOND);
    }
}

#[test]
fn jitter_wider_than_half_is_refused() {
    assert_eq!(
        Jitter::from_permille(501),
        Err(PolicyError::JitterOutOfRange { permille: 501 })
    );
    assert!(Jitter::from_permille(500).is_ok());
}

#[test]
fn errors_read_well() {
    assert_eq!(PolicyError::ZeroMin.to_string(), "minimum backoff is zero");
    assert_eq!(
        PolicyError::MinAboveMax {
            min: HOUR,
            max: SECOND
        }
        .to_string(),
        "minimum backoff 3600s is above the maximum 1s"
    );
}

#[test]
fn pr_10640_harness_grows_100_200_400_ms() {
    // PR #10640's worker tests: min 100 ms, max 2 s; rounds wait about
    // 200, 400, 800 ms, then the cap.
    let p = Policy::new(Duration::from_millis(100), 2 * SECOND)
        .expect("valid")
        .with_jitter(Jitter::NONE);
    let mut d = p.first(0);
    let mut seen = Vec::new();
    for _ in 0..6 {
        d = p.after_failure(d, 12345);
        seen.push(d.as_millis());
    }
    assert_eq!(seen, [200, 400, 800, 1600, 2000, 2000]);
}

#[test]
fn huge_max_does_not_overflow() {
    let p = Policy::new(SECOND, Duration::MAX).expect("valid");
    let d = p.after_failure(Duration::MAX, u64::MAX);
    assert!(d <= Duration::MAX && d >= SECOND);
    let d = p.after_disconnect(Some(Duration::MAX), Some(Duration::MAX), 0);
    assert_eq!(d, SECOND);
}
