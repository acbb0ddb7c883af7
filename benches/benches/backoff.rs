//! The backoff functions, per call, beside their floor: lnd's own rule
//! written out as lnd writes it (double, cap, `margin = next / 10`, add
//! `entropy % margin - margin / 2`), without our fixes (the `[min, max]`
//! clamp after jitter, `min` for a zero backoff, 128-bit scaling). Expect a
//! few nanoseconds for each.

use std::hint::black_box;
use std::time::Duration;

use backoff::Policy;
use benches::{paired, report, wanted};
use criterion::{criterion_main, Criterion};

/// lnd's `computeNextBackoff` without its defects fixed, on `Duration`.
fn lnd_next(current: Duration, max: Duration, entropy: u64) -> Duration {
    let next = current.saturating_mul(2).min(max);
    let margin = next.as_nanos() as u64 / 10;
    if margin == 0 {
        return next;
    }
    let wiggle = entropy % margin;
    Duration::from_nanos(next.as_nanos() as u64 + wiggle - margin / 2)
}

/// Entropy that changes every call, as a caller's RNG would.
fn next_entropy(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    *state
}

fn backoff(c: &mut Criterion) {
    let policy = Policy::default();
    let max = policy.max();
    // A mix of levels: below min, mid-range, at the cap.
    let levels = [
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(37),
        Duration::from_secs(900),
        Duration::from_secs(3600),
    ];

    let mut group = c.benchmark_group("backoff");
    let mut state = 1u64;
    let mut i = 0usize;
    group.bench_function("after_failure", |b| {
        b.iter(|| {
            i = (i + 1) % levels.len();
            let e = next_entropy(&mut state);
            black_box(policy.after_failure(black_box(levels[i]), e))
        })
    });
    let lasted = [
        None,
        Some(Duration::from_secs(5)),
        Some(Duration::from_secs(601)),
        Some(Duration::from_secs(7200)),
    ];
    let mut j = 0usize;
    group.bench_function("after_disconnect", |b| {
        b.iter(|| {
            i = (i + 1) % levels.len();
            j = (j + 1) % lasted.len();
            let e = next_entropy(&mut state);
            black_box(policy.after_disconnect(black_box(Some(levels[i])), lasted[j], e))
        })
    });
    group.bench_function("floor_lnd_rule_unfixed", |b| {
        b.iter(|| {
            i = (i + 1) % levels.len();
            let e = next_entropy(&mut state);
            // lnd's rule cannot start from zero (it would stick at zero).
            let current = levels[i].max(Duration::from_secs(1));
            black_box(lnd_next(black_box(current), max, e))
        })
    });
    group.bench_function("floor_loop_overhead", |b| {
        b.iter(|| {
            i = (i + 1) % levels.len();
            let e = next_entropy(&mut state);
            black_box((black_box(levels[i]), e))
        })
    });
    group.finish();
    if !wanted("backoff/after_failure") {
        return;
    }

    let mut k = 0usize;
    let mut k2 = 0usize;
    let mut s1 = 1u64;
    let mut s2 = 1u64;
    report(
        "backoff after_failure / lnd rule unfixed",
        &paired(
            41,
            100_000,
            || {
                k = (k + 1) % levels.len();
                let e = next_entropy(&mut s1);
                black_box(policy.after_failure(black_box(levels[k]), e));
            },
            || {
                k2 = (k2 + 1) % levels.len();
                let e = next_entropy(&mut s2);
                let current = levels[k2].max(Duration::from_secs(1));
                black_box(lnd_next(black_box(current), max, e));
            },
        ),
    );
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group! {
        name = benches;
        config = benches::criterion();
        targets = super::backoff
    }
}

criterion_main!(group::benches);
