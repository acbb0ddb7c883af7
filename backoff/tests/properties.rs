//! Properties of the backoff functions over any policy, any current value and
//! any entropy.

use backoff::{Jitter, Policy};
use core::time::Duration;
use proptest::prelude::*;

fn any_policy() -> impl Strategy<Value = Policy> {
    (
        1u64..=10_000_000_000,
        1u64..=1_000,
        0u16..=Jitter::MAX_PERMILLE,
        0u64..=10_000,
    )
        .prop_map(|(min_ns, ratio, permille, stable_s)| {
            let min = Duration::from_nanos(min_ns);
            let max = min * (ratio as u32);
            Policy::new(min, max)
                .expect("min > 0 and max >= min")
                .with_jitter(Jitter::from_permille(permille).expect("in range"))
                .with_stable(Duration::from_secs(stable_s))
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
    #[test]
    fn after_failure_stays_within_min_and_max(p in any_policy(), cur in any_duration(), e: u64) {
        let d = p.after_failure(cur, e);
        prop_assert!(d >= p.min() && d <= p.max(), "{:?} outside [{:?}, {:?}]", d, p.min(), p.max());
    }

    #[test]
    fn after_disconnect_stays_within_min_and_max(
        p in any_policy(),
        cur in proptest::option::of(any_duration()),
        lasted in proptest::option::of(any_duration()),
        e: u64,
    ) {
        let d = p.after_disconnect(cur, lasted, e);
        prop_assert!(d >= p.min() && d <= p.max());
    }

    #[test]
    fn never_below_min_even_from_zero(p in any_policy(), e: u64) {
        prop_assert!(p.after_failure(Duration::ZERO, e) >= p.min());
        prop_assert!(p.after_disconnect(Some(Duration::ZERO), None, e) >= p.min());
    }

    #[test]
    fn without_jitter_doubles_up_to_the_cap(p in any_policy(), cur in any_duration(), e: u64) {
        let exact = p.with_jitter(Jitter::NONE);
        let base = cur.max(p.min());
        let expected = base.saturating_mul(2).min(p.max());
        prop_assert_eq!(exact.after_failure(cur, e), expected);
    }

    #[test]
    fn jitter_stays_within_its_window_of_the_doubled_value(p in any_policy(), cur in any_duration(), e: u64) {
        let exact = p.with_jitter(Jitter::NONE).after_failure(cur, e);
        let d = p.after_failure(cur, e);
        let margin = exact.as_nanos() * u128::from(p.jitter().permille()) / 1000;
        let diff = d.as_nanos().abs_diff(exact.as_nanos());
        prop_assert!(diff <= margin, "{:?} is {} ns from {:?}, margin {}", d, diff, exact, margin);
    }

    #[test]
    fn same_entropy_same_result(p in any_policy(), cur in any_duration(), lasted in proptest::option::of(any_duration()), e: u64) {
        prop_assert_eq!(p.after_failure(cur, e), p.after_failure(cur, e));
        prop_assert_eq!(p.after_disconnect(Some(cur), lasted, e), p.after_disconnect(Some(cur), lasted, e));
    }

    #[test]
    fn relaxed_never_exceeds_unrelaxed(p in any_policy(), cur in any_duration(), lasted in any_duration(), e: u64) {
        let unrelaxed = p.after_disconnect(Some(cur), None, e);
        prop_assert!(p.after_disconnect(Some(cur), Some(lasted), e) <= unrelaxed);
    }

    #[test]
    fn entropy_is_monotonic(p in any_policy(), cur in any_duration(), a: u64, b: u64) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(p.after_failure(cur, lo) <= p.after_failure(cur, hi));
    }

    #[test]
    fn at_the_cap_entropy_spreads_over_five_percent(min_ms in 1u64..=1_000, ratio in 4u32..=10_000) {
        // lnd's jitter with room below the cap: results at the cap must not
        // collapse onto `max`.
        let min = Duration::from_millis(min_ms);
        let p = Policy::new(min, min * ratio).expect("valid");
        let lowest = p.after_failure(p.max(), 0);
        let highest = p.after_failure(p.max(), u64::MAX);
        prop_assert!(highest <= p.max());
        let spread = highest - lowest;
        prop_assert!(spread * 20 >= p.max(), "spread {:?} at max {:?}", spread, p.max());
    }
}
