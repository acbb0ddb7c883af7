//! Criterion benchmarks for the workspace. The benches live in `benches/`,
//! one file per layer; run them with `cargo bench -p benches`.
//!
//! This library holds what the bench files share: [`paired`], which
//! measures a figure and its floor interleaved, batch after batch, so that
//! the noise of a busy machine hits both alike and their ratio holds even
//! when absolute times drift.

use std::time::{Duration, Instant};

/// A figure and its floor measured interleaved, with their ratio.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// Median time per call of the figure.
    pub ours: Duration,
    /// Median time per call of the floor.
    pub floor: Duration,
    /// Median, over rounds, of the ratio figure ÷ floor within a round.
    pub ratio: f64,
}

/// Measures `ours` and `floor` in alternating batches of `batch` calls,
/// `rounds` times (the order flips every round), and returns the medians.
///
/// Each round's ratio compares two batches taken back to back, so a burst of
/// load from another process inflates both or neither; the median of those
/// ratios is what BENCHMARKS.md reports as "paired ratio".
pub fn paired(
    rounds: usize,
    batch: u64,
    mut ours: impl FnMut(),
    mut floor: impl FnMut(),
) -> Paired {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        // Seconds per call, in f64 so that nanosecond calls are not rounded.
        start.elapsed().as_secs_f64() / batch as f64
    };
    // Warm both up once.
    time(&mut ours);
    time(&mut floor);
    let mut ours_t = Vec::with_capacity(rounds);
    let mut floor_t = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (o, f) = if round % 2 == 0 {
            let o = time(&mut ours);
            (o, time(&mut floor))
        } else {
            let f = time(&mut floor);
            (time(&mut ours), f)
        };
        ours_t.push(o);
        floor_t.push(f);
        ratios.push(o / f.max(1e-15));
    }
    Paired {
        ours: Duration::from_secs_f64(median_f64(&mut ours_t)),
        floor: Duration::from_secs_f64(median_f64(&mut floor_t)),
        ratio: median_f64(&mut ratios),
    }
}

/// Criterion with the short measurement every bench file uses, so that the
/// whole `cargo bench -p benches` stays within minutes on 2 cores.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

/// Prints a [`Paired`] result on one line, prefixed by `name`.
pub fn report(name: &str, p: &Paired) {
    println!(
        "PAIRED {name}: ours {:.3?} per call, floor {:.3?} per call, ratio {:.3} (median of per-round ratios)",
        p.ours, p.floor, p.ratio
    );
}

fn median_f64(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Whether the criterion filter on the command line (if any) selects
/// `group`, so that `cargo bench --bench brontide -- handshake` runs the
/// paired measurement of the handshake only.
pub fn wanted(group: &str) -> bool {
    // Criterion's flags that take a value; anything else not starting with
    // `-` is a filter.
    const WITH_VALUE: [&str; 12] = [
        "--warm-up-time",
        "--measurement-time",
        "--profile-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--output-format",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    filters.is_empty() || filters.iter().any(|f| group.contains(f.as_str()))
}

/// `n` distinct node ids, the same in every run: the public keys of the
/// secret keys 1 to `n`.
pub fn node_ids(n: usize) -> Vec<bitcoin::secp256k1::PublicKey> {
    use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
    let secp = Secp256k1::signing_only();
    (1..=n as u32)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[28..].copy_from_slice(&i.to_be_bytes());
            // Invariant: 1..=n is a valid non-zero scalar below the order.
            let secret = SecretKey::from_slice(&secret).expect("1..=n is a valid secret key");
            PublicKey::from_secret_key(&secp, &secret)
        })
        .collect()
}

/// A multi-thread tokio runtime of 2 workers, every driver on: the shape
/// the store benches measure on.
pub fn two_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A temporary directory under `CARGO_TARGET_TMPDIR` (the target
/// directory's disk, not a tmpfs, so fsyncs cost what they cost there).
pub fn target_tmp_dir(target_tmpdir: &str) -> tempfile::TempDir {
    tempfile::tempdir_in(target_tmpdir).expect("a temporary directory")
}

/// The changes that store peer number `i` with every field set: perm, two
/// user-given addresses, three advertised, a last connection (at the
/// second user address, ten minutes long) and a backoff level.
/// `addr(slot)` gives the peer's address number `slot` (0 to 4).
pub fn stored_peer<A: Clone>(
    peer: bitcoin::secp256k1::PublicKey,
    i: usize,
    addr: impl Fn(u16) -> A,
) -> Vec<peer_store::Change<A>> {
    use peer_store::{Change, LastConnection, Reason};
    vec![
        Change::Persist {
            peer,
            reason: Reason {
                user_asked: true,
                has_channels: false,
            },
        },
        Change::SetUserAddrs {
            peer,
            addrs: vec![addr(0), addr(1)],
        },
        Change::SetAdvertisedAddrs {
            peer,
            addrs: vec![addr(2), addr(3), addr(4)],
        },
        Change::SetLastConnection {
            peer,
            connection: LastConnection {
                addr: addr(1),
                at: std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i as u64),
                lasted: Some(Duration::from_secs(600)),
            },
        },
        Change::SetBackoff {
            peer,
            level: Duration::from_secs(5),
        },
    ]
}
