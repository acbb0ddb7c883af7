//! lnd PR #10640's worker tests, as scenarios on the manual clock and the
//! mock dialer, with that PR's harness settings (backoff 100 ms to 2 s,
//! stagger 50 ms).

use std::num::NonZeroUsize;
use std::time::Duration;

use conn_worker::{Error, State, When};
use testkit::{Behavior, Harness, Outcome, Seen};

type H = Harness<u32, &'static str>;

const MS: Duration = Duration::from_millis(1);

fn harness() -> H {
    Harness::new(H::pr10640_config())
}

#[test]
fn dials_all_addresses_in_order_and_connects_on_the_third() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Fail);
        h.dialer.set("b", Behavior::Fail);
        h.dialer.set("c", Behavior::Succeed);
        let w = h.spawn(1);
        assert_eq!(h.seen().await, [Seen::Idle]);

        w.connect(Some(vec!["a", "b", "c"]), When::Now).unwrap();
        assert_eq!(
            h.seen().await,
            [
                Seen::DialStarted("a"),
                Seen::DialFailed("a"),
                Seen::DialStarted("b"),
                Seen::DialFailed("b"),
                Seen::DialStarted("c"),
                Seen::Connected("c"),
                Seen::Idle,
            ]
        );
        assert_eq!(h.dialer.dialed(), ["a", "b", "c"]);
        // A failed attempt starts the next address at once, not after the stagger.
        assert!(h
            .dialer
            .attempts()
            .iter()
            .all(|a| a.started == h.clock.start()));
        let status = w.status();
        assert_eq!(status.state, State::Idle);
        assert_eq!(status.last_good, Some("c"));
        assert_eq!(h.conns.len(), 1);
    });
}

#[test]
fn stand_down_cancels_a_dial_and_a_later_connect_still_works() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.script("a", [Behavior::Hang]);
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        assert_eq!(h.dialer.in_flight(), 1);

        w.stand_down().unwrap();
        let seen = h.seen().await;
        assert!(
            seen.ends_with(&[Seen::DialCancelled("a"), Seen::Idle]),
            "{seen:?}"
        );
        assert_eq!(h.dialer.in_flight(), 0);
        assert!(h.dialer.attempts()[0].cancelled);
        assert_eq!(w.status().state, State::Idle);

        w.connect(None, When::Now).unwrap();
        assert_eq!(
            h.seen().await,
            [Seen::DialStarted("a"), Seen::Connected("a"), Seen::Idle]
        );
    });
}

#[test]
fn stop_while_idle_ends_the_worker() {
    testkit::run(async {
        let mut h = harness();
        let w = h.spawn(1);
        h.settle().await;
        w.stop();
        w.stopped().await;
        assert_eq!(h.seen().await, [Seen::Idle, Seen::Stopped]);
        assert_eq!(w.status().state, State::Stopped);
        assert_eq!(w.connect(None, When::Now), Err(Error::Stopped));
        assert_eq!(h.tracker.len(), 0);
    });
}

#[test]
fn stop_during_stagger_wait_ends_the_worker() {
    testkit::run(async {
        let config = H::pr10640_config().with_max_parallel(NonZeroUsize::new(2).unwrap());
        let mut h: H = Harness::new(config);
        h.dialer.set("a", Behavior::Hang);
        h.dialer.set("b", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(Some(vec!["a", "b"]), When::Now).unwrap();
        h.settle().await;
        // "a" hangs; "b" waits for the 50 ms stagger.
        assert_eq!(h.clock.next_wake(), Some(50 * MS));
        h.advance(20 * MS).await;

        w.stop();
        w.stopped().await;
        h.advance(Duration::from_secs(10)).await;
        assert_eq!(h.dialer.dialed(), ["a"], "b was never dialed");
        assert!(h.dialer.attempts()[0].cancelled);
        assert_eq!(h.seen().await.last(), Some(&Seen::Stopped));
        assert_eq!(h.tracker.len(), 0);
    });
}

#[test]
fn stop_during_backoff_wait_ends_the_worker() {
    testkit::run(async {
        let mut h = harness();
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        assert_eq!(w.status().state, State::Waiting);
        w.stop();
        w.stopped().await;
        h.advance(Duration::from_secs(10)).await;
        assert_eq!(h.dialer.dialed().len(), 1);
        assert_eq!(h.seen().await.last(), Some(&Seen::Stopped));
    });
}

#[test]
fn update_addrs_during_a_dial_restarts_the_round_with_the_new_address() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Hang);
        h.dialer.set("b", Behavior::Succeed);
        let w = h.spawn(1);
        // The PR's addresses come from the server (advertised); a user's
        // address (given in `connect`) would stay in the round.
        w.update_addrs(vec!["a"]).unwrap();
        w.connect(None, When::Now).unwrap();
        assert_eq!(h.seen().await, [Seen::Idle, Seen::DialStarted("a")]);

        w.update_addrs(vec!["b"]).unwrap();
        assert_eq!(
            h.seen().await,
            [
                Seen::DialCancelled("a"),
                Seen::DialStarted("b"),
                Seen::Connected("b"),
                Seen::Idle,
            ]
        );
        assert!(h.dialer.attempts()[0].cancelled);
        assert_eq!(w.status().addrs, ["b"]);
    });
}

#[test]
fn backoff_grows_on_each_failed_round() {
    testkit::run(async {
        let mut h = harness();
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        let mut waits = Vec::new();
        for _ in 0..7 {
            h.settle().await;
            let wait = h.clock.next_wake().expect("the worker waits");
            assert_eq!(w.status().backoff, Some(wait));
            waits.push(wait);
            h.advance(wait).await;
        }
        // The minimum spread upwards by the jitter (100 to 110 ms), then
        // doubling with +-5% jitter; at the 2 s cap the jitter window moves
        // below the cap (never above it).
        let expected = [200, 400, 800, 1600];
        assert!(waits[0] >= 100 * MS && waits[0] <= 110 * MS, "{waits:?}");
        for (wait, ms) in waits[1..].iter().zip(expected) {
            let ms = f64::from(ms);
            let got = wait.as_secs_f64() * 1000.0;
            // Doubling a jittered value: up to 10% above, 5% below.
            assert!(got >= ms * 0.95 && got <= ms * 1.10, "{waits:?}");
        }
        for wait in &waits[5..] {
            assert!(*wait >= 1800 * MS && *wait <= 2000 * MS, "{waits:?}");
        }
        assert_eq!(h.dialer.dialed().len(), 8);
        let seen = h.seen().await;
        assert_eq!(
            seen.iter()
                .filter(|s| matches!(s, Seen::Waiting(_)))
                .count(),
            8
        );
    });
}

#[test]
fn idle_after_success_makes_no_further_dials() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        h.advance(Duration::from_secs(3600)).await;
        assert_eq!(h.dialer.dialed(), ["a"]);
        assert_eq!(w.status().state, State::Idle);
        assert_eq!(h.clock.pending_sleeps(), []);
        assert_eq!(
            h.seen().await,
            [
                Seen::Idle,
                Seen::DialStarted("a"),
                Seen::Connected("a"),
                Seen::Idle
            ]
        );
    });
}

#[test]
fn shutdown_during_a_dial_ends_the_worker() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Hang);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        assert_eq!(h.dialer.in_flight(), 1);

        h.shutdown().await;
        assert_eq!(h.dialer.in_flight(), 0);
        assert_eq!(h.dialer.attempts()[0].outcome, Outcome::Dropped);
        assert_eq!(w.status().state, State::Stopped);
        assert_eq!(h.seen().await.last(), Some(&Seen::Stopped));
    });
}

#[test]
fn connect_with_a_backoff_waits_that_long_before_the_first_dial() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::After(500 * MS)).unwrap();
        h.settle().await;
        assert_eq!(h.clock.next_wake(), Some(500 * MS));
        assert_eq!(w.status().next_attempt, Some(h.clock.start() + 500 * MS));

        h.advance(499 * MS).await;
        assert!(h.dialer.dialed().is_empty());
        h.advance(MS).await;
        assert_eq!(h.dialer.attempts()[0].started, h.clock.start() + 500 * MS);
        assert!(h.seen().await.contains(&Seen::Connected("a")));
    });
}

#[test]
fn rapid_cycling_200_random_commands_return_promptly_and_stop_ends_the_worker() {
    testkit::run(async {
        let mut h = harness();
        let w = h.spawn(1);
        let addrs = ["a", "b", "c"];
        let mut x: u64 = 10640;
        for _ in 0..200 {
            // xorshift: a fixed, reproducible sequence of commands.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 3) as usize + 1;
            let result = match x % 5 {
                0 => w.connect(Some(addrs[..n].to_vec()), When::Now),
                1 => w.connect(None, When::After(Duration::from_millis(x % 300))),
                2 => w.update_addrs(addrs[n - 1..].to_vec()),
                3 => w.stand_down(),
                _ => w.connect(
                    None,
                    When::AfterDisconnect {
                        connected_for: Some(MS),
                    },
                ),
            };
            assert_eq!(result, Ok(()));
            if x % 7 == 0 {
                h.advance(Duration::from_millis(x % 150)).await;
            }
        }
        w.stop();
        h.shutdown().await;
        assert_eq!(w.status().state, State::Stopped);
        assert!(h.dialer.max_in_flight_for(&1) <= 1);
        assert_eq!(h.seen().await.last(), Some(&Seen::Stopped));
    });
}
