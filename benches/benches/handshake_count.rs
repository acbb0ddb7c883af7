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
//! `responder_floor` (its side's share: 1 key generation, 3 ECDH, 2 parses),
//! `reference` and `reference_responder` (the handshake written out without
//! snow, both sides and the responder), and `listener`: `N` handshakes of 8
//! clients dialing a real `Listener` on 127.0.0.1, as in the `listener`
//! bench (runtime of 2 worker threads), so
//! that the user-space instructions our listener and dialer add to a
//! handshake can be counted (the kernel's are not: count system calls with
//! `strace -f -c` for those).

use std::hint::black_box;

#[path = "support/handshake.rs"]
mod handshake;

use handshake::{Fixture, Workload};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let workload = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    if workload == "listener" {
        return listener(n);
    }
    let Some(workload) = Workload::parse(&workload) else {
        eprintln!(
            "usage: handshake_count \
             <both|responder|floor|responder_floor|reference|reference_responder|listener> <n>"
        );
        return;
    };
    let fixture = Fixture::new();
    for _ in 0..n {
        fixture.run(black_box(workload));
    }
}

/// `n` handshakes by 8 clients against a real listener on 127.0.0.1.
fn listener(n: u64) {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use bitcoin::secp256k1::SecretKey;
    use brontide::{dial, CancellationToken, DialConfig, Listener, ListenerConfig, NodeKeyPair};

    let key = |i: u8| {
        // Invariant: a constant non-zero scalar below the order.
        NodeKeyPair::new(SecretKey::from_slice(&[i; 32]).expect("valid scalar"))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = key(1);
    rt.block_on(async {
        let mut listener = Listener::bind("127.0.0.1:0", server.clone(), ListenerConfig::default())
            .await
            .expect("bind");
        let addr = listener.local_addr();
        let server_id = server.public_key();
        let remaining = Arc::new(AtomicI64::new(n as i64));
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..8 {
            let remaining = Arc::clone(&remaining);
            let local = key(2 + i);
            clients.spawn(async move {
                let (config, cancel) = (DialConfig::default(), CancellationToken::new());
                while remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
                    let conn = dial(addr, &local, &server_id, &config, &cancel).await;
                    drop(black_box(conn.expect("dial")));
                }
            });
        }
        let accepting = async {
            for _ in 0..n {
                drop(black_box(listener.accept().await.expect("accepted")));
            }
        };
        let ((), ()) = tokio::join!(accepting, async {
            while clients.join_next().await.is_some() {}
        });
        listener.shutdown().await;
    });
}
