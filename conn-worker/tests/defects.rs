//! The known defects of lnd PR #10640 (DESIGN.md), each shown impossible,
//! plus the mailbox, address-update, global-limit and shutdown guarantees.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use conn_worker::{dial_fn, Clock, Config, EventKind, Spawner, State, When, WorkerHandle};
use testkit::{Behavior, Harness, ManualClock, Outcome, Seen};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type H = Harness<u32, &'static str>;

const MS: Duration = Duration::from_millis(1);

fn harness() -> H {
    Harness::new(H::pr10640_config())
}

#[test]
fn stop_is_never_lost() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Hang);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        assert_eq!(h.dialer.in_flight(), 1);

        // A busy mailbox: thousands of commands the worker has not read yet.
        for i in 0..5_000u32 {
            if i % 2 == 0 {
                w.connect(Some(vec!["a", "b"]), When::Now).unwrap();
            } else {
                w.update_addrs(vec!["b", "a"]).unwrap();
            }
        }
        w.stop();
        let stopped_at = h.clock.now();
        w.stopped().await;
        h.advance(Duration::from_secs(60)).await;

        assert_eq!(w.status().state, State::Stopped);
        assert_eq!(h.dialer.in_flight(), 0);
        assert!(h
            .dialer
            .attempts()
            .iter()
            .all(|a| a.started <= stopped_at && a.cancelled));
        assert_eq!(h.dialer.dialed(), ["a"], "no dial after stop");
        assert_eq!(h.seen().await.last(), Some(&Seen::Stopped));
        h.tracker.close();
        assert!(h.tracker.is_empty());
    });
}

#[test]
fn late_connection_is_closed_not_leaked() {
    testkit::run(async {
        let mut h = harness();
        // Like lnd's dialer (defect 7), this one ignores cancellation and
        // completes anyway.
        h.dialer
            .set("a", Behavior::SucceedAfterIgnoringCancel(100 * MS));
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.advance(50 * MS).await;

        w.stand_down().unwrap();
        h.advance(Duration::from_secs(1)).await;
        let seen = h.seen().await;
        assert!(
            !seen.iter().any(|s| matches!(s, Seen::Connected(_))),
            "{seen:?}"
        );
        assert!(seen.ends_with(&[Seen::DialCancelled("a"), Seen::Idle]));
        let attempt = &h.dialer.attempts()[0];
        assert!(attempt.cancelled);
        assert_eq!(attempt.outcome, Outcome::Dropped);
        assert_eq!(h.dialer.open_conns(), 0);
        assert!(h.conns.is_empty());
    });
}

/// A connection the dialer returns after a stand-down was posted (the race
/// of defect 4: the command and the success cross) is closed, not delivered.
#[test]
fn connection_crossing_a_stand_down_is_closed_not_delivered() {
    testkit::run(async {
        struct Conn(Arc<AtomicUsize>);
        impl Drop for Conn {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        type Handle = WorkerHandle<u32, u32, std::io::Error>;
        type DialFn = Box<
            dyn Fn(u32, CancellationToken) -> std::future::Ready<Result<Conn, std::io::Error>>
                + Send
                + Sync,
        >;
        let open = Arc::new(AtomicUsize::new(0));
        let me: Arc<OnceLock<Handle>> = Arc::new(OnceLock::new());
        let dialer = {
            let open = Arc::clone(&open);
            let me = Arc::clone(&me);
            let f: DialFn = Box::new(move |_addr, _cancel| {
                // The owner stands the worker down while the dial completes.
                if let Some(handle) = me.get() {
                    handle.stand_down().unwrap();
                }
                open.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Ok(Conn(Arc::clone(&open))))
            });
            dial_fn(f)
        };
        let clock = ManualClock::new();
        let (spawner, mut events) = Spawner::new(
            clock,
            Config::default(),
            CancellationToken::new(),
            TaskTracker::new(),
        );
        let handle = spawner.spawn(1, dialer);
        assert!(me.set(handle.clone()).is_ok());
        handle.connect(Some(vec![7]), When::Now).unwrap();
        testkit::settle().await;

        let mut kinds = Vec::new();
        while let Ok(event) = events.try_recv() {
            kinds.push(match event.kind {
                EventKind::Connected { .. } => "connected",
                EventKind::DialCancelled { .. } => "cancelled",
                EventKind::DialStarted { .. } => "started",
                EventKind::Idle => "idle",
                _ => "other",
            });
        }
        assert_eq!(kinds, ["idle", "started", "cancelled", "idle"]);
        assert_eq!(open.load(Ordering::SeqCst), 0, "the connection was closed");
        assert_eq!(handle.status().state, State::Idle);
    });
}

#[test]
fn zero_backoff_never_sticks() {
    testkit::run(async {
        let h = harness();
        h.dialer.set("a", Behavior::Fail);
        let w = h.spawn(1);
        // A connect with no delay, then a failure: the wait is the minimum,
        // not zero.
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        let first = h.clock.next_wake().unwrap();
        assert!(first >= 100 * MS && first <= 110 * MS, "{first:?}");
        // Same with an explicit zero delay.
        w.connect(None, When::After(Duration::ZERO)).unwrap();
        h.settle().await;
        assert!(h.clock.next_wake() >= Some(100 * MS));

        // A flapping peer: connects, drops after 1 ms, again and again. Each
        // reconnect waits longer, never zero.
        let mut h = harness();
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(2);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        let mut waits = Vec::new();
        for _ in 0..4 {
            w.connect(
                None,
                When::AfterDisconnect {
                    connected_for: Some(MS),
                },
            )
            .unwrap();
            h.settle().await;
            let wait = h.clock.next_wake().expect("a reconnect wait");
            waits.push(wait);
            h.advance(wait).await;
        }
        assert!(waits[0] >= 100 * MS && waits[0] <= 110 * MS, "{waits:?}");
        assert!(waits.windows(2).all(|w| w[1] > w[0]), "{waits:?}");
        assert_eq!(h.dialer.dialed().len(), 5);
        assert!(
            h.seen()
                .await
                .iter()
                .filter(|s| matches!(s, Seen::Connected(_)))
                .count()
                == 5
        );
    });
}

#[test]
fn ten_thousand_commands_during_a_hanging_dial_coalesce_and_the_last_intent_wins() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set_fallback(Behavior::Hang);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        let _ = h.seen().await;

        // Each update carries 100 addresses: queued, 10,000 of them would be
        // a million addresses. Coalesced, the worker holds one list.
        let big: Vec<&'static str> = (0..100).map(|i| &*format!("x{i}").leak()).collect();
        for i in 0..10_000u32 {
            match i % 4 {
                0 => w.update_addrs(big.clone()).unwrap(),
                1 => w.connect(None, When::Now).unwrap(),
                2 => w.stand_down().unwrap(),
                _ => w
                    .connect(
                        Some(vec!["b"]),
                        When::After(Duration::from_millis(u64::from(i))),
                    )
                    .unwrap(),
            }
        }
        // The last command: connect to "z" after 300 ms.
        w.connect(Some(vec!["z"]), When::After(300 * MS)).unwrap();
        let seen = h.seen().await;
        // The worker woke once for the whole burst: the hanging dial was
        // cancelled and it now waits for the last intent.
        assert_eq!(seen, [Seen::DialCancelled("a"), Seen::Waiting(300 * MS)]);
        let status = w.status();
        assert_eq!(status.state, State::Waiting);
        // One list of each kind, bounded: the user's addresses latest first,
        // the latest announcement.
        assert_eq!(status.user_addrs, ["z", "b", "a"]);
        assert_eq!(status.advertised, big);
        assert_eq!(status.addrs.len(), 103);
        assert_eq!(status.next_attempt, Some(h.clock.now() + 300 * MS));
        assert_eq!(h.dialer.dialed(), ["a"]);

        // Same burst ending with a stand-down: idle.
        for _ in 0..10_000 {
            w.connect(Some(vec!["y"]), When::Now).unwrap();
            w.update_addrs(big.clone()).unwrap();
        }
        w.stand_down().unwrap();
        assert_eq!(h.seen().await, [Seen::Idle]);
        assert_eq!(w.status().state, State::Idle);
        assert_eq!(w.status().user_addrs, ["y", "z", "b", "a"]);
        assert_eq!(w.status().advertised, big);
        assert_eq!(h.dialer.dialed(), ["a"]);
    });
}

#[test]
fn address_update_during_a_wait_shortens_it_or_leaves_it_never_lengthens_it() {
    testkit::run(async {
        let mut h = harness();
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        // Fail four rounds: the wait is now about 1.6 s.
        for _ in 0..4 {
            h.settle().await;
            let wait = h.clock.next_wake().unwrap();
            h.advance(wait).await;
        }
        h.settle().await;
        let level = w.status().backoff.unwrap();
        let deadline = w.status().next_attempt.unwrap();
        assert!(level >= 1500 * MS, "{level:?}");

        // The same addresses: the wait is left alone.
        w.update_addrs(vec!["a"]).unwrap();
        h.settle().await;
        assert_eq!(w.status().next_attempt, Some(deadline));
        // Fewer addresses: left alone too.
        w.update_addrs(vec![]).unwrap();
        h.settle().await;
        assert_eq!(w.status().next_attempt, Some(deadline));

        // A new address: tried within the policy's minimum (100 ms).
        w.update_addrs(vec!["a", "n"]).unwrap();
        h.settle().await;
        assert_eq!(h.clock.next_wake(), Some(100 * MS));
        let now = h.clock.now();
        assert_eq!(w.status().next_attempt, Some(now + 100 * MS));
        // The backoff level is kept.
        assert_eq!(w.status().backoff, Some(level));

        // A new address when the wait is already shorter than the minimum:
        // left alone.
        h.advance(70 * MS).await;
        w.update_addrs(vec!["a", "n", "m"]).unwrap();
        h.settle().await;
        assert_eq!(h.clock.next_wake(), Some(30 * MS));

        // The round after fails too: the next wait grows from the kept level.
        h.advance(30 * MS).await;
        h.settle().await;
        assert!(w.status().backoff.unwrap() > level);
        assert_eq!(h.dialer.dialed()[5..], ["a", "n", "m"]);
        let _ = h.seen().await;
    });
}

#[test]
fn global_limit_holds_with_1000_workers_and_a_hanging_dialer() {
    testkit::run(async {
        let config = H::pr10640_config()
            .with_max_dials_in_flight(NonZeroUsize::new(10).unwrap())
            .with_max_parallel(NonZeroUsize::new(2).unwrap());
        let mut h: H = Harness::new(config);
        h.dialer.set_fallback(Behavior::Hang);
        let workers: Vec<_> = (0..1000).map(|p| h.spawn(p)).collect();
        for w in &workers {
            w.connect(Some(vec!["a", "b"]), When::Now).unwrap();
        }
        h.settle().await;
        assert_eq!(h.dialer.in_flight(), 10);
        assert_eq!(h.spawner.dials_in_flight(), 10);

        // Time passes (staggers fire); stopping the workers that hold slots
        // lets others in, never more than 10 at once.
        for _ in 0..20 {
            h.advance(50 * MS).await;
            let holding: Vec<_> = workers
                .iter()
                .filter(|w| h.dialer.in_flight_for(w.peer()) > 0)
                .take(3)
                .collect();
            for w in holding {
                w.stop();
            }
            h.settle().await;
            assert_eq!(h.dialer.in_flight(), 10);
        }
        assert_eq!(h.dialer.max_in_flight(), 10);
        assert!(h.dialer.max_in_flight_per_peer() <= 2);
        // 60 workers were stopped while dialing, and others took their slots.
        assert_eq!(workers.iter().filter(|w| w.is_stopped()).count(), 60);
        assert!(h.dialer.dialed().len() >= 70, "{}", h.dialer.dialed().len());
        h.shutdown().await;
        assert_eq!(h.dialer.in_flight(), 0);
        assert_eq!(h.spawner.dials_in_flight(), 0);
        let _ = h.events().await;
    });
}

#[test]
fn cancelling_the_root_token_ends_every_worker() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("hang", Behavior::Hang);
        h.dialer.set("ok", Behavior::Succeed);
        let mut workers = Vec::new();
        for p in 0..200u32 {
            let w = h.spawn(p);
            match p % 5 {
                0 => {}                                                     // idle
                1 => w.connect(Some(vec!["hang"]), When::Now).unwrap(),     // dialing
                2 => w.connect(Some(vec!["fail"]), When::Now).unwrap(),     // waiting
                3 => w.connect(None, When::Now).unwrap(),                   // no address
                _ => w.connect(Some(vec!["ok"]), When::After(MS)).unwrap(), // connected, idle
            }
            workers.push(w);
        }
        h.advance(10 * MS).await;
        assert_eq!(h.tracker.len(), 200);

        h.root.cancel();
        h.tracker.close();
        h.tracker.wait().await;
        assert!(h.tracker.is_empty());
        for w in &workers {
            assert_eq!(w.status().state, State::Stopped);
            assert!(w.update_addrs(vec!["x"]).is_err());
        }
        let stopped = h
            .events()
            .await
            .iter()
            .filter(|(_, s)| *s == Seen::Stopped)
            .count();
        assert_eq!(stopped, 200);
        assert_eq!(h.dialer.in_flight(), 0);
        assert_eq!(h.clock.pending_sleeps(), []);
    });
}

#[test]
fn dropping_every_handle_stops_the_worker() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Hang);
        let w = h.spawn(1);
        let w2 = w.clone();
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        drop(w);
        h.settle().await;
        assert_eq!(w2.status().state, State::Dialing, "a clone keeps it alive");
        drop(w2);
        h.settle().await;
        assert_eq!(h.dialer.in_flight(), 0);
        assert_eq!(h.seen().await.last(), Some(&Seen::Stopped));
    });
}

#[test]
fn a_worker_dropped_with_its_runtime_reports_stopped_and_wakes_stopped() {
    // The task never runs to its end: the runtime is dropped under it. The
    // handle must not report a live worker, nor wait for ever.
    use futures::FutureExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (w, hung) = rt.block_on(async {
        let (spawner, _events) = Spawner::new(
            conn_worker::TokioClock,
            Config::default(),
            CancellationToken::new(),
            TaskTracker::new(),
        );
        let dialer = Arc::new(dial_fn(|_addr: u32, _cancel| {
            std::future::pending::<Result<(), std::io::Error>>()
        }));
        let w = spawner.spawn(1u32, Arc::clone(&dialer));
        let hung = spawner.spawn(2u32, dialer);
        hung.connect(Some(vec![7]), When::Now).unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(hung.status().state, State::Dialing);
        (w, hung)
    });
    drop(rt);
    for handle in [&w, &hung] {
        assert_eq!(handle.status().state, State::Stopped);
        assert_eq!(handle.status().in_flight, 0);
        assert!(handle.stopped().now_or_never().is_some());
    }
}

/// Defect 2 (deadlock on the owner's lock): the worker never waits for its
/// owner. Here the owner never drains events while the worker runs a
/// thousand failed rounds.
#[test]
fn worker_never_waits_for_its_owner_to_drain_events() {
    testkit::run(async {
        let policy = conn_worker::Policy::new(MS, MS).unwrap();
        let mut h: H = Harness::new(H::pr10640_config().with_policy(policy));
        let w = h.spawn(1);
        // The owner holds its own lock while commanding: posting never
        // blocks, so this cannot deadlock.
        let registry = std::sync::Mutex::new(());
        {
            let _guard = registry.lock().unwrap();
            w.connect(Some(vec!["a"]), When::Now).unwrap();
        }
        for _ in 0..1000 {
            h.advance(MS).await;
        }
        assert_eq!(h.dialer.dialed().len(), 1001);
        // Every step is still reported, in order, when the owner gets to it.
        let seen = h.seen().await;
        let failed = seen
            .iter()
            .filter(|s| matches!(s, Seen::DialFailed(_)))
            .count();
        assert_eq!(failed, 1001);
    });
}

/// Defect 5 (the owner reads the worker's backoff from another thread): the
/// status is a snapshot any thread can read, with no shared mutable state.
#[test]
fn handle_is_send_sync_and_status_is_a_snapshot() {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<testkit::MockHandle<u32, &'static str>>();
    testkit::run(async {
        let h = harness();
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        let from_thread = std::thread::spawn({
            let w = w.clone();
            move || w.status().backoff
        })
        .join()
        .unwrap();
        let level = from_thread.unwrap();
        assert!(level >= 100 * MS && level <= 110 * MS, "{level:?}");
    });
}

/// A delay of `Duration::MAX` (a caller's "not in this lifetime") is a
/// wait that never ends, not an `Instant` overflow that kills the task.
#[test]
fn huge_delays_wait_instead_of_panicking() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::After(Duration::MAX))
            .unwrap();
        h.settle().await;
        assert_eq!(w.status().state, State::Waiting);
        assert!(!w.is_stopped());
        // The worker still obeys: a connect now dials now.
        w.connect(None, When::Now).unwrap();
        h.settle().await;
        assert!(h.seen().await.contains(&Seen::Connected("a")));
    });
}

/// A dialer that panics fails only that attempt: the worker reports it as
/// `DialFailed` with the panic's message, backs off as after any failure, and
/// connects when the dialer behaves again. The handle keeps working.
#[test]
fn a_panicking_dialer_fails_its_attempt_and_the_worker_carries_on() {
    testkit::run(async {
        let clock = ManualClock::new();
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (spawner, mut events) = Spawner::new(
            clock.clone(),
            Config::default(),
            root.clone(),
            tracker.clone(),
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let dialer = dial_fn(move |_: u8, _| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("a buggy dialer");
                }
                Ok::<(), std::io::Error>(())
            }
        });
        let w = spawner.spawn(1u32, dialer);
        w.connect(Some(vec![1]), When::Now).unwrap();
        for _ in 0..2 {
            testkit::settle().await;
            clock.advance_to_next().await;
        }
        testkit::settle().await;
        assert!(!w.is_stopped());
        let mut panics = 0;
        let mut connected = false;
        while let Ok(e) = events.try_recv() {
            match e.kind {
                EventKind::DialFailed {
                    failure: conn_worker::DialFailure::Panicked(m),
                    ..
                } => {
                    assert_eq!(&*m, "a buggy dialer");
                    panics += 1;
                }
                EventKind::Connected { .. } => connected = true,
                EventKind::Stopped { .. } => panic!("the worker must not stop"),
                _ => {}
            }
        }
        assert_eq!(panics, 2);
        assert!(connected, "connected once the dialer behaved");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        root.cancel();
        tracker.close();
        tracker.wait().await;
    });
}
