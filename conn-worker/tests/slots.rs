//! The dial slots alone: never more holders than the limit, priority
//! order, and no slot lost to a waiter that gave up, under races on a
//! multi-thread runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use conn_worker::{DialSlots, Priority};
use tokio::time::Instant;

#[test]
fn racing_acquires_and_abandoned_waits_never_exceed_the_limit_nor_lose_a_slot() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let slots = DialSlots::new(3, Duration::from_secs(3600));
        let held = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let slots = slots.clone();
            let held = Arc::clone(&held);
            tasks.push(tokio::spawn(async move {
                let mut rng = backoff::SplitMix64::new(i);
                for _ in 0..200 {
                    let priority = match rng.next_u64() % 3 {
                        0 => Priority::User,
                        1 => Priority::Fresh,
                        _ => Priority::Retry,
                    };
                    let acquire = slots.acquire(priority, Instant::now());
                    if rng.next_u64() % 4 == 0 {
                        // Give up the wait at once (dropped future).
                        let _ = tokio::time::timeout(Duration::ZERO, acquire).await;
                        continue;
                    }
                    let permit = acquire.await;
                    let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= 3, "{now} holders");
                    tokio::task::yield_now().await;
                    held.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            }));
        }
        for t in tasks {
            t.await.expect("no panic");
        }
        assert_eq!(slots.in_use(), 0, "every slot came back");
        assert!(slots.peak() <= 3);
    });
}

#[test]
fn a_holder_yields_only_after_its_lease_and_waiters_are_served_by_priority() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let slots = DialSlots::new(1, Duration::from_secs(3600));
        let now = Instant::now();
        let retry = slots.acquire(Priority::Retry, now).await;
        retry.start(now);
        // A fresh waiter takes a retry's slot once its lease is over, not
        // before.
        let fresh = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(Priority::Fresh, now).await }
        });
        tokio::task::yield_now().await;
        assert!(!retry.is_reclaimed());
        slots.lease_expired(now + Duration::from_secs(3600));
        assert!(retry.is_reclaimed());
        drop(retry);
        let fresh = fresh.await.expect("granted");
        fresh.start(now);
        // Same priority: no yield before the lease ends.
        let other = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(Priority::Fresh, now).await }
        });
        tokio::task::yield_now().await;
        assert!(!fresh.is_reclaimed());
        slots.lease_expired(now + Duration::from_secs(3600));
        assert!(fresh.is_reclaimed());
        drop(fresh);
        drop(other.await.expect("granted"));
        assert_eq!(slots.in_use(), 0);
        // Queued by priority: with one slot held, a retry then a user wait;
        // the user is served first.
        let held = slots.acquire(Priority::Fresh, now).await;
        let retry = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(Priority::Retry, now).await }
        });
        tokio::task::yield_now().await;
        let user = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(Priority::User, now).await }
        });
        tokio::task::yield_now().await;
        drop(held);
        let user = user.await.expect("the user first");
        tokio::task::yield_now().await;
        assert!(!retry.is_finished(), "the retry still waits");
        drop(user);
        drop(retry.await.expect("then the retry"));
        assert_eq!(slots.in_use(), 0);
    });
}
