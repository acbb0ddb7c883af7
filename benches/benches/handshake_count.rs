//! Instruction counts per handshake, for `valgrind --tool=callgrind`
//! (deterministic, unlike wall time on a shared machine). Not a criterion
//! bench: it runs `N` iterations of one workload and exits, so the
//! difference of two runs' totals divided by the difference of their `N`
//! is the count per iteration, start-up excluded:
//!
//! ```text
//! B=$(ls -t target/release/deps/handshake_count-* | grep -v '\.d$' | head -1)
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/hs.%p $B both 200
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/hs.%p $B both 100
//! ```
//!
//! Workloads: `both` (the full handshake, both sides in memory), `responder`
//! (the responder's side alone, act one in and act three in, from recorded
//! acts), `floor` (2 key generations, 6 ECDH, 3 parses) and
//! `responder_floor` (its side's share: 1 key generation, 3 ECDH, 2 parses).

use std::hint::black_box;

#[path = "support/handshake.rs"]
mod handshake;

use handshake::{Fixture, Workload};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let workload = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let Some(workload) = Workload::parse(&workload) else {
        eprintln!("usage: handshake_count <both|responder|floor|responder_floor> <n>");
        return;
    };
    let fixture = Fixture::new();
    for _ in 0..n {
        fixture.run(black_box(workload));
    }
}
