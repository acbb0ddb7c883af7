//! The worker's behaviour beyond lnd's tests: address order, overlapping
//! attempts, waiting for addresses, re-planning, status and events.

use std::num::NonZeroUsize;
use std::time::Duration;

use conn_worker::{Clock, State, When};
use testkit::{Behavior, Harness, Seen};

type H = Harness<u32, &'static str>;

const MS: Duration = Duration::from_millis(1);

fn harness() -> H {
    Harness::new(H::pr10640_config())
}

fn parallel(n: usize) -> H {
    Harness::new(H::pr10640_config().with_max_parallel(NonZeroUsize::new(n).unwrap()))
}

#[test]
fn last_known_good_address_is_dialed_first() {
    testkit::run(async {
        let h = harness();
        h.dialer.set("b", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(Some(vec!["a", "b", "c"]), When::Now).unwrap();
        h.settle().await;
        assert_eq!(w.status().last_good, Some("b"));

        w.connect(None, When::Now).unwrap();
        h.settle().await;
        assert_eq!(h.dialer.dialed(), ["a", "b", "b"]);

        h.dialer.set("b", Behavior::Fail);
        h.dialer.set("c", Behavior::Succeed);
        w.connect(None, When::Now).unwrap();
        h.settle().await;
        assert_eq!(h.dialer.dialed()[3..], ["b", "a", "c"]);
    });
}

#[test]
fn parallel_attempts_overlap_after_the_stagger_and_the_first_success_cancels_the_rest() {
    testkit::run(async {
        let mut h = parallel(2);
        h.dialer.set("a", Behavior::Hang);
        h.dialer.set("b", Behavior::SucceedAfter(100 * MS));
        h.dialer.set("c", Behavior::Hang);
        let w = h.spawn(1);
        w.connect(Some(vec!["a", "b", "c"]), When::Now).unwrap();
        h.advance(49 * MS).await;
        assert_eq!(h.dialer.dialed(), ["a"]);
        h.advance(MS).await;
        assert_eq!(h.dialer.dialed(), ["a", "b"]);
        // Both slots are busy: "c" waits however long the stagger.
        h.advance(99 * MS).await;
        assert_eq!(h.dialer.dialed(), ["a", "b"]);
        h.advance(MS).await;
        assert_eq!(
            h.seen().await,
            [
                Seen::Idle,
                Seen::DialStarted("a"),
                Seen::DialStarted("b"),
                Seen::DialCancelled("a"),
                Seen::Connected("b"),
                Seen::Idle,
            ]
        );
        assert_eq!(h.dialer.max_in_flight_for(&1), 2);
        assert_eq!(h.dialer.in_flight(), 0);
        assert!(h.dialer.attempts()[0].cancelled);
    });
}

#[test]
fn failed_attempt_starts_the_next_address_at_once_without_the_stagger() {
    testkit::run(async {
        let h = parallel(2);
        h.dialer.set("a", Behavior::FailAfter(10 * MS));
        h.dialer.set("b", Behavior::Hang);
        let w = h.spawn(1);
        w.connect(Some(vec!["a", "b"]), When::Now).unwrap();
        h.advance(10 * MS).await;
        let attempts = h.dialer.attempts();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[1].started, h.clock.start() + 10 * MS);
    });
}

#[test]
fn sequential_by_default_never_overlaps_attempts() {
    testkit::run(async {
        let h = harness();
        h.dialer.set("a", Behavior::FailAfter(500 * MS));
        h.dialer.set("b", Behavior::FailAfter(500 * MS));
        let w = h.spawn(1);
        w.connect(Some(vec!["a", "b"]), When::Now).unwrap();
        h.advance(Duration::from_secs(5)).await;
        assert_eq!(h.dialer.max_in_flight_for(&1), 1);
        let attempts = h.dialer.attempts();
        assert_eq!(attempts[1].started, attempts[0].ended.unwrap());
    });
}

#[test]
fn connect_without_addresses_waits_for_them_and_dials_when_they_arrive() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(None, When::Now).unwrap();
        h.settle().await;
        assert_eq!(w.status().state, State::AwaitingAddrs);
        assert_eq!(h.seen().await, [Seen::Idle, Seen::AwaitingAddrs]);

        w.update_addrs(vec!["a"]).unwrap();
        assert_eq!(
            h.seen().await,
            [Seen::DialStarted("a"), Seen::Connected("a"), Seen::Idle]
        );
    });
}

#[test]
fn update_addrs_while_idle_only_stores_them() {
    testkit::run(async {
        let mut h = harness();
        let w = h.spawn(1);
        w.update_addrs(vec!["a", "b", "a"]).unwrap();
        h.advance(Duration::from_secs(10)).await;
        assert!(h.dialer.dialed().is_empty());
        assert_eq!(w.status().addrs, ["a", "b"], "stored, duplicates removed");
        assert_eq!(h.seen().await, [Seen::Idle]);
    });
}

#[test]
fn update_during_a_dial_keeps_attempts_at_addresses_still_listed() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Hang);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        w.update_addrs(vec!["a", "b"]).unwrap();
        h.settle().await;
        assert_eq!(h.dialer.in_flight(), 1);
        assert!(!h.dialer.attempts()[0].cancelled);
        assert_eq!(h.seen().await, [Seen::Idle, Seen::DialStarted("a")]);
    });
}

#[test]
fn connect_during_a_wait_replans_at_once() {
    testkit::run(async {
        let h = harness();
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::After(Duration::from_secs(30)))
            .unwrap();
        h.settle().await;
        assert_eq!(h.clock.next_wake(), Some(Duration::from_secs(30)));
        w.connect(None, When::Now).unwrap();
        h.settle().await;
        assert_eq!(h.dialer.dialed(), ["a"]);
        // A later connect with a delay replaces the wait, longer or shorter.
        w.connect(None, When::After(Duration::from_secs(5)))
            .unwrap();
        h.settle().await;
        assert_eq!(h.clock.next_wake(), Some(Duration::from_secs(5)));
        w.stand_down().unwrap();
        h.settle().await;
        assert_eq!(h.clock.pending_sleeps(), []);
        assert_eq!(w.status().state, State::Idle);
    });
}

#[test]
fn status_reports_backoff_attempts_last_error_and_next_attempt() {
    testkit::run(async {
        let h = harness();
        h.dialer.script("a", [Behavior::Fail, Behavior::Fail]);
        h.dialer.script("b", [Behavior::Fail, Behavior::Fail]);
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(1);
        let s = w.status();
        assert_eq!((s.state, s.attempts, s.backoff), (State::Idle, 0, None));

        w.connect(Some(vec!["a", "b"]), When::Now).unwrap();
        h.settle().await;
        let s = w.status();
        assert_eq!(s.state, State::Waiting);
        assert_eq!(s.attempts, 2);
        // The first step is `min`, spread upwards by the jitter.
        let first = s.backoff.unwrap();
        assert!(first >= 100 * MS && first <= 110 * MS, "{first:?}");
        assert_eq!(s.next_attempt, Some(h.clock.now() + first));
        assert_eq!(
            s.last_error.as_ref().map(|e| e.to_string()).as_deref(),
            Some("connection refused")
        );
        assert_eq!(s.in_flight, 0);

        h.advance(first).await;
        h.settle().await;
        assert_eq!(w.status().attempts, 4);
        h.advance(w.status().backoff.unwrap()).await;
        let s = w.status();
        assert_eq!(s.state, State::Idle);
        assert_eq!(s.attempts, 0, "reset by the connection");
        assert!(s.last_error.is_none());
        assert_eq!(s.last_good, Some("a"));
        assert!(s.backoff.unwrap() > 100 * MS, "the level is kept");
    });
}

#[test]
fn after_disconnect_from_a_stable_connection_reconnects_after_the_minimum() {
    testkit::run(async {
        let h = harness();
        h.dialer.script("a", [Behavior::Fail; 4]);
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        for _ in 0..4 {
            h.settle().await;
            let wait = h.clock.next_wake().unwrap();
            h.advance(wait).await;
        }
        assert_eq!(w.status().state, State::Idle);
        assert!(w.status().backoff.unwrap() >= 700 * MS);

        // Up for an hour (beyond the 10 min stable duration): back to min.
        w.connect(
            None,
            When::AfterDisconnect {
                connected_for: Some(Duration::from_secs(3600)),
            },
        )
        .unwrap();
        h.settle().await;
        let level = w.status().backoff.unwrap();
        assert!(level >= 100 * MS && level <= 110 * MS, "{level:?}");
        assert_eq!(h.clock.next_wake(), Some(level));
    });
}

#[test]
fn a_disconnect_record_steps_the_level_even_when_a_later_connect_replaces_it() {
    testkit::run(async {
        let h = harness();
        h.dialer.set("a", Behavior::Hang);
        let w = h.spawn(1);
        w.update_addrs(vec!["a"]).unwrap();
        h.settle().await;
        // Both posted before the worker looks.
        w.connect(
            None,
            When::AfterDisconnect {
                connected_for: None,
            },
        )
        .unwrap();
        w.connect(None, When::Now).unwrap();
        h.settle().await;
        let level = w.status().backoff.unwrap();
        assert!(level >= 100 * MS && level <= 110 * MS, "{level:?}");
        assert_eq!(w.status().state, State::Dialing);
    });
}

#[test]
fn events_are_tagged_with_the_peer() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Succeed);
        let w1 = h.spawn(1);
        let w2 = h.spawn(2);
        w1.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        w2.connect(Some(vec!["b"]), When::Now).unwrap();
        let events = h.events().await;
        let of = |p: u32| -> Vec<Seen<&str>> {
            events
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, s)| s.clone())
                .collect()
        };
        assert_eq!(
            of(1),
            [
                Seen::Idle,
                Seen::DialStarted("a"),
                Seen::Connected("a"),
                Seen::Idle
            ]
        );
        let two = of(2);
        assert_eq!(
            two[..3],
            [Seen::Idle, Seen::DialStarted("b"), Seen::DialFailed("b")]
        );
        assert!(
            matches!(two[3..], [Seen::Waiting(d)] if d >= 100 * MS && d <= 110 * MS),
            "{two:?}"
        );
        assert_eq!(h.conns.len(), 1);
        assert_eq!(h.conns[0].0, 1);
    });
}

#[test]
fn manual_clock_wakes_due_sleeps_in_deadline_order() {
    testkit::run(async {
        let h = harness();
        let w1 = h.spawn(1);
        let w2 = h.spawn(2);
        w1.connect(Some(vec!["a"]), When::After(300 * MS)).unwrap();
        w2.connect(Some(vec!["b"]), When::After(200 * MS)).unwrap();
        h.settle().await;
        assert_eq!(h.clock.pending_sleeps(), [200 * MS, 300 * MS]);
        h.advance(250 * MS).await;
        assert_eq!(h.dialer.dialed(), ["b"]);
        // "b" failed at 200 ms and waits its first step (100 to 110 ms)
        // from then, not from 250 ms.
        let sleeps = h.clock.pending_sleeps();
        assert_eq!(sleeps[0], 50 * MS);
        assert!(sleeps[1] >= 50 * MS && sleeps[1] <= 60 * MS, "{sleeps:?}");
        h.advance(sleeps[1]).await;
        assert_eq!(h.dialer.dialed(), ["b", "a", "b"]);
    });
}

#[test]
fn withdrawing_every_address_mid_round_awaits_addresses_without_a_backoff_step() {
    testkit::run(async {
        let mut h = harness();
        h.dialer.set("a", Behavior::Hang);
        h.dialer.set("b", Behavior::Succeed);
        let w = h.spawn(1);
        // Advertised addresses can be withdrawn; user-given ones cannot.
        w.update_addrs(vec!["a"]).unwrap();
        w.connect(None, When::Now).unwrap();
        h.settle().await;
        w.update_addrs(vec![]).unwrap();
        h.settle().await;
        assert_eq!(w.status().state, State::AwaitingAddrs);
        assert_eq!(w.status().backoff, None);
        assert_eq!(h.dialer.in_flight(), 0);

        w.update_addrs(vec!["b"]).unwrap();
        assert_eq!(
            h.seen().await,
            [
                Seen::Idle,
                Seen::DialStarted("a"),
                Seen::DialCancelled("a"),
                Seen::AwaitingAddrs,
                Seen::DialStarted("b"),
                Seen::Connected("b"),
                Seen::Idle,
            ]
        );
    });
}

#[test]
fn a_peer_that_restarts_after_a_stable_connection_is_redialed_every_ten_seconds() {
    // Issue 18 through the worker on the manual clock: the default policy
    // (1 s to 1 h, with its reconnect phase), connected for an hour, then
    // refused for 9 rounds (a restart of about a minute): every wait of the
    // phase is at most 10 s, and the tenth dial connects.
    testkit::run(async {
        let mut h = Harness::new(conn_worker::Config::default().with_seed(18));
        h.dialer.script("a", [Behavior::Succeed]);
        h.dialer.script("a", [Behavior::Fail; 9]);
        h.dialer.set("a", Behavior::Succeed);
        let w = h.spawn(1);
        w.connect(Some(vec!["a"]), When::Now).unwrap();
        h.settle().await;
        assert_eq!(w.status().state, State::Idle);
        h.seen().await;
        w.connect(
            None,
            When::AfterDisconnect {
                connected_for: Some(Duration::from_secs(3600)),
            },
        )
        .unwrap();
        let mut waits = Vec::new();
        for _ in 0..10 {
            h.settle().await;
            let wait = h.clock.next_wake().expect("waiting");
            waits.push(wait);
            h.advance(wait).await;
        }
        assert_eq!(w.status().state, State::Idle, "reconnected: {waits:?}");
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(10)),
            "{waits:?}"
        );
        // The waits still grow through 1, 2, 4 and 8 s up to the cap.
        assert!(waits[3] >= Duration::from_millis(7600), "{waits:?}");
        let seen = h.seen().await;
        let dials = seen
            .iter()
            .filter(|s| matches!(s, Seen::DialStarted(_)))
            .count();
        assert_eq!(dials, 10, "{seen:?}");
    });
}
