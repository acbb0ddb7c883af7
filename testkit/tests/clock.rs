//! The manual clock and the mock dialer, on their own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use conn_worker::{Clock, Dialer};
use testkit::{settle, Behavior, ManualClock, MockDialer, MockError, Outcome};
use tokio_util::sync::CancellationToken;

const MS: Duration = Duration::from_millis(1);

#[test]
fn time_moves_only_when_advanced() {
    testkit::run(async {
        let clock = ManualClock::new();
        let t0 = clock.now();
        settle().await;
        assert_eq!(clock.now(), t0);
        clock.advance(5 * MS).await;
        assert_eq!(clock.now(), t0 + 5 * MS);
        assert_eq!(clock.elapsed(), 5 * MS);
    });
}

#[test]
fn advance_wakes_exactly_the_due_sleeps_in_deadline_order() {
    testkit::run(async {
        let clock = ManualClock::new();
        let woken = Arc::new(Mutex::new(Vec::new()));
        for ms in [30u64, 10, 20] {
            let clock = clock.clone();
            let woken = Arc::clone(&woken);
            tokio::spawn(async move {
                clock
                    .sleep_until(clock.now() + Duration::from_millis(ms))
                    .await;
                woken.lock().unwrap().push((ms, clock.elapsed()));
            });
        }
        settle().await;
        assert_eq!(clock.pending_sleeps(), [10 * MS, 20 * MS, 30 * MS]);
        clock.advance(25 * MS).await;
        assert_eq!(*woken.lock().unwrap(), [(10, 10 * MS), (20, 20 * MS)]);
        assert_eq!(clock.pending_sleeps(), [5 * MS]);
        clock.advance(5 * MS).await;
        assert_eq!(woken.lock().unwrap().len(), 3);
        assert_eq!(clock.next_wake(), None);
    });
}

#[test]
fn a_sleep_started_by_a_woken_task_counts_from_the_deadline_that_woke_it() {
    testkit::run(async {
        let clock = ManualClock::new();
        let ticks = Arc::new(Mutex::new(Vec::new()));
        {
            let clock = clock.clone();
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                for _ in 0..3 {
                    clock.sleep_until(clock.now() + 10 * MS).await;
                    ticks.lock().unwrap().push(clock.elapsed());
                }
            });
        }
        clock.advance(35 * MS).await;
        assert_eq!(*ticks.lock().unwrap(), [10 * MS, 20 * MS, 30 * MS]);
        assert_eq!(clock.elapsed(), 35 * MS);
        assert_eq!(clock.advance_to_next().await, None);
    });
}

#[test]
fn a_dropped_sleep_is_no_longer_pending() {
    testkit::run(async {
        let clock = ManualClock::new();
        let sleep = clock.sleep_until(clock.now() + MS);
        assert_eq!(clock.pending_sleeps(), [MS]);
        drop(sleep);
        assert_eq!(clock.pending_sleeps(), []);
    });
}

#[test]
fn mock_dialer_follows_its_script_and_records_every_attempt() {
    testkit::run(async {
        let clock = ManualClock::new();
        let dialer: MockDialer<u32, &str> = MockDialer::new(clock.clone());
        dialer.script("a", [Behavior::Fail, Behavior::SucceedAfter(10 * MS)]);
        dialer.set("a", Behavior::Hang);
        let d = dialer.for_peer(7);

        assert_eq!(
            d.dial(&"a", CancellationToken::new()).await.unwrap_err(),
            MockError::Refused
        );
        let slow = tokio::spawn({
            let d = d.clone();
            async move { d.dial(&"a", CancellationToken::new()).await }
        });
        let token = CancellationToken::new();
        let hang = tokio::spawn({
            let d = d.clone();
            let token = token.clone();
            async move { d.dial(&"a", token).await }
        });
        settle().await;
        assert_eq!(d.in_flight(), 2);
        assert_eq!(d.in_flight_for(&7), 2);
        clock.advance(10 * MS).await;
        let conn = slow.await.unwrap().unwrap();
        assert_eq!(dialer.open_conns(), 1);
        token.cancel();
        assert_eq!(hang.await.unwrap().unwrap_err(), MockError::Cancelled);
        drop(conn);
        assert_eq!(dialer.open_conns(), 0);

        // A dial future dropped before it completes is recorded as such.
        drop(d.dial(&"b", CancellationToken::new()));

        let attempts = dialer.attempts();
        let outcomes: Vec<_> = attempts
            .iter()
            .map(|a| (a.addr, a.outcome, a.cancelled))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("a", Outcome::Failed, false),
                ("a", Outcome::Connected, false),
                ("a", Outcome::Failed, true),
                ("b", Outcome::Dropped, true),
            ]
        );
        assert_eq!(attempts[1].ended, Some(attempts[1].started + 10 * MS));
        assert_eq!(dialer.max_in_flight(), 2);
        assert_eq!(dialer.max_in_flight_for(&7), 2);
        assert_eq!(dialer.in_flight(), 0);
    });
}
