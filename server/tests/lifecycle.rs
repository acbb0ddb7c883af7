//! lnd's peer lifecycle, on the manual clock with mock dialers: PR #10640's
//! server tests, one test per known defect, and the operations of lnd's
//! server.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use conn_worker::State;
use server::{Direction, DuplicateRule, ServerError, StartupPeer};
use testkit::{run, settle, Behavior};

const US: u8 = 0xFE;

#[test]
fn connect_to_peer_accumulation() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Hang);
        for _ in 0..10 {
            f.server
                .connect(node(peer, 1), true)
                .await
                .expect("perm connect");
        }
        settle().await;
        let status = f.server.status();
        assert_eq!(status.len(), 1, "one worker for one peer");
        assert_eq!(status[0].persistent, Some(true));
        assert_eq!(f.dialer.in_flight(), 1);
        assert!(f.max_in_flight_for(&peer) <= 1);
        f.server.shutdown().await;
    });
}

#[test]
fn perm_connect_during_a_dial_keeps_the_dial() {
    // A repeated `connect --perm` must not cancel a handshake that may be
    // about to succeed: the worker takes the addresses into its round.
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(
            node(peer, 1),
            Behavior::SucceedAfter(Duration::from_secs(3)),
        );
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        for _ in 0..10 {
            f.clock.advance(Duration::from_millis(100)).await;
            f.server
                .connect(node(peer, 1), true)
                .await
                .expect("perm connect");
        }
        f.clock.advance(Duration::from_secs(3)).await;
        assert!(f.server.is_connected(&peer));
        let attempts = f.dialer.attempts();
        assert_eq!(attempts.len(), 1, "one dial, never restarted");
        assert!(!attempts[0].cancelled);
        f.server.shutdown().await;
    });
}

#[test]
fn perm_connect_dials_and_hands_the_connection_to_the_handler() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        assert!(f.server.is_connected(&peer));
        let runs = f.handler.runs();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].direction, Direction::Outbound);
        let status = f.server.status();
        assert_eq!(
            status[0].worker.as_ref().map(|w| w.state),
            Some(State::Idle)
        );
        f.server.shutdown().await;
    });
}

#[test]
fn get_or_create_returns_the_same_worker_and_upgrades_perm() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.server.channel_opened(peer);
        assert_eq!(f.server.persistence(&peer), Some(false));
        settle().await;
        assert!(
            f.dialer.attempts().is_empty(),
            "a new channel creates an idle worker"
        );
        f.dialer.set(node(peer, 1), Behavior::Hang);
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        assert_eq!(f.server.persistence(&peer), Some(true));
        // Perm is never downgraded.
        f.server.channel_opened(peer);
        assert_eq!(f.server.persistence(&peer), Some(true));
        assert_eq!(f.server.status().len(), 1);
        f.server.shutdown().await;
    });
}

#[test]
fn disconnect_stops_the_worker_and_closes_the_connection() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        f.server.disconnect(&peer).await.expect("connected");
        settle().await;
        assert!(!f.server.is_connected(&peer));
        assert_eq!(f.server.persistence(&peer), None);
        assert_eq!(f.dialer.open_conns(), 0, "the connection was dropped");
        f.clock.advance(Duration::from_secs(3600)).await;
        assert_eq!(f.dialer.attempts().len(), 1, "no redial after disconnect");
        f.server.shutdown().await;
    });
}

#[test]
fn disconnect_of_an_unknown_peer_is_refused() {
    run(async {
        let f = Fixture::new(key(US));
        let err = f
            .server
            .disconnect(&key(9))
            .await
            .expect_err("not connected");
        assert!(matches!(err, ServerError::UnknownPeer(k) if k == key(9)));
        f.server.shutdown().await;
    });
}

#[test]
fn non_perm_connect_dials_once_and_refuses_when_connected() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.server
            .connect(node(peer, 1), false)
            .await
            .expect("one-off dial");
        assert!(f.server.is_connected(&peer));
        assert_eq!(f.server.persistence(&peer), None);
        let again = f.server.connect(node(peer, 1), false).await;
        assert!(matches!(again, Err(ServerError::AlreadyConnected(_))));
        // The peer closes: a non-persistent peer is not redialed.
        f.handler.close(&peer);
        settle().await;
        f.clock.advance(Duration::from_secs(3600)).await;
        assert_eq!(f.dialer.attempts().len(), 1);
        f.server.shutdown().await;
    });
}

#[test]
fn non_perm_connect_failure_is_reported() {
    run(async {
        let f = Fixture::new(key(US));
        let err = f
            .server
            .connect(node(key(1), 1), false)
            .await
            .expect_err("refused");
        assert!(
            matches!(
                err,
                ServerError::Dial {
                    class: server::FailureClass::Network,
                    ..
                }
            ),
            "{err}"
        );
        // Each part of the chain says its own piece once, and the dialer's
        // error keeps its type.
        assert_eq!(err.to_string(), "dial failed (network)");
        let source = std::error::Error::source(&err).expect("the dialer's error");
        assert_eq!(source.to_string(), "connection refused");
        assert_eq!(
            source.downcast_ref::<testkit::MockError>(),
            Some(&testkit::MockError::Refused)
        );
        assert!(matches!(
            f.server.connect(node(key(US), 1), false).await,
            Err(ServerError::SelfConnect)
        ));
        f.server.shutdown().await;
    });
}

#[test]
fn stop_worker_never_orphans() {
    // PR #10640 could drop a stop when the worker's channel was full and
    // still remove the worker from its map: an orphan that kept dialing.
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        f.dialer.set(node(peer, 1), Behavior::Hang);
        // Flood the worker with commands, then disconnect mid-dial.
        f.handler.close(&peer);
        for port in 0..1000 {
            f.server
                .node_announcement(peer, vec![addr(1), addr(2 + port % 7)]);
        }
        f.clock.advance(Duration::from_secs(2)).await;
        assert_eq!(
            f.server.status()[0].worker.as_ref().map(|w| w.state),
            Some(State::Dialing)
        );
        assert!(f.server.forget(&peer).await.expect("no store"));
        settle().await;
        let dials = f.dialer.attempts().len();
        assert_eq!(f.dialer.in_flight(), 0, "the hanging dial was cancelled");
        f.clock.advance(Duration::from_secs(24 * 3600)).await;
        assert_eq!(f.dialer.attempts().len(), dials, "no dial after stop");
        assert_eq!(
            f.server.tasks(),
            1,
            "only the server's own event task is left"
        );
        f.server.shutdown().await;
        assert_eq!(f.server.tasks(), 0);
    });
}

#[test]
fn no_deadlock_sending_under_registry_lock() {
    // PR #10640 sent to a worker with a blocking send while holding the
    // server lock, while the worker waited for that lock to hand over its
    // connection. Here every command is a non-blocking post and connections
    // reach the server through a channel it drains on its own task: flood
    // the server with commands while 200 workers deliver connections.
    run(async {
        let f = Fixture::new(key(US));
        let peers: Vec<_> = (1..=200u8).map(key).collect();
        for p in &peers {
            f.dialer.set(node(*p, 1), Behavior::Succeed);
        }
        for round in 0..5 {
            for p in &peers {
                f.server
                    .connect(node(*p, 1), true)
                    .await
                    .expect("perm connect");
                f.server.node_announcement(*p, vec![addr(1)]);
                let _ = f.server.status();
            }
            if round % 2 == 0 {
                settle().await;
            }
        }
        settle().await;
        assert!(peers.iter().all(|p| f.server.is_connected(p)));
        f.server.shutdown().await;
        assert_eq!(f.server.tasks(), 0);
    });
}

#[test]
fn address_update_never_dropped() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        // Port 1 refuses: the worker waits its backoff. 10,000 announcements
        // arrive; the last one names the address that works.
        for port in 2..10_000u16 {
            f.server.node_announcement(peer, vec![addr(port)]);
        }
        f.dialer.set(node(peer, 10_000), Behavior::Succeed);
        f.server.node_announcement(peer, vec![addr(10_000)]);
        f.clock.advance(Duration::from_secs(2)).await;
        assert!(f.server.is_connected(&peer));
        let dialed = f.dialer.dialed();
        assert_eq!(dialed.last(), Some(&node(peer, 10_000)));
        assert!(
            dialed.len() <= 3,
            "updates coalesce: {} dials",
            dialed.len()
        );
        f.server.shutdown().await;
    });
}

#[test]
fn late_connection_is_closed_not_leaked() {
    run(async {
        // We have the larger key, so an inbound connection is the one both
        // ends keep and it stands our worker down.
        let peer = key(1);
        let f = Fixture::new(key_above(peer));
        f.dialer.set(
            node(peer, 1),
            Behavior::SucceedAfterIgnoringCancel(Duration::from_secs(5)),
        );
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        assert!(f.server.inbound(peer, Conn::lone(), None));
        settle().await;
        f.clock.advance(Duration::from_secs(10)).await;
        // The dialer ignores its token (as lnd's does): the worker drops the
        // dial, so its connection can never be made, delivered or leaked.
        let attempts = f.dialer.attempts();
        assert_eq!(attempts.len(), 1);
        assert!(attempts[0].cancelled);
        assert_eq!(attempts[0].outcome, testkit::Outcome::Dropped);
        assert_eq!(f.dialer.open_conns(), 0);
        let runs = f.handler.runs();
        assert_eq!(runs.len(), 1, "never delivered: {runs:?}");
        assert_eq!(runs[0].direction, Direction::Inbound);
        f.server.shutdown().await;
    });
}

#[test]
fn backoff_never_read_across_threads() {
    // PR #10640's server read the worker's backoff from its own thread. Here
    // the server only says how long the connection lasted; the worker steps
    // its own backoff: min after the first short connection, then doubled.
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        let mut waits = Vec::new();
        for _ in 0..3 {
            f.clock.advance(Duration::from_secs(5)).await;
            f.handler.close(&peer);
            settle().await;
            waits.push(f.clock.next_wake().expect("the worker waits"));
            f.clock.advance_to_next().await;
            assert!(f.server.is_connected(&peer));
        }
        let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
        // No backoff yet: min, spread upwards by the jitter. Then doubled,
        // within the ±5% jitter.
        assert!((1.0..=1.1).contains(&secs[0]), "{secs:?}");
        assert!((1.9..2.31).contains(&secs[1]), "{secs:?}");
        assert!((3.8..4.62).contains(&secs[2]), "{secs:?}");
        f.server.shutdown().await;
    });
}

#[test]
fn zero_backoff_never_sticks() {
    // A connect with no delay, then a connection that drops at once: the
    // redial still waits at least `min`, never zero.
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        for _ in 0..5 {
            f.handler.close(&peer);
            settle().await;
            let wait = f.clock.next_wake().expect("the worker waits");
            assert!(wait >= SECOND, "redial after {wait:?}");
            f.clock.advance_to_next().await;
        }
        f.server.shutdown().await;
    });
}

#[test]
fn stand_down_cancels_tcp_connect() {
    run(async {
        let peer = key(1);
        let f = Fixture::new(key_above(peer));
        f.dialer.set(node(peer, 1), Behavior::Hang);
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        assert_eq!(f.dialer.in_flight(), 1);
        let before = conn_worker::Clock::now(&f.clock);
        assert!(f.server.inbound(peer, Conn::lone(), None));
        settle().await;
        let attempts = f.dialer.attempts();
        assert_eq!(attempts.len(), 1);
        assert!(attempts[0].cancelled);
        assert_eq!(
            attempts[0].ended,
            Some(before),
            "cancelled with no time passing"
        );
        f.server.shutdown().await;
    });
}

#[test]
fn inbound_peer_without_address_is_not_redialed_at_its_source_port() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.server.channel_opened(peer);
        let source = "10.9.9.9:53211".parse().expect("socket address");
        assert!(f.server.inbound(peer, Conn::lone(), Some(source)));
        settle().await;
        f.handler.close(&peer);
        f.clock.advance(Duration::from_secs(3600)).await;
        assert!(f.dialer.attempts().is_empty(), "{:?}", f.dialer.dialed());
        let w = f.server.status()[0].worker.clone().expect("persistent");
        assert_eq!(w.state, State::AwaitingAddrs);
        // An announcement gives an address: now it is dialed.
        f.dialer.set(node(peer, 9735), Behavior::Succeed);
        f.server.node_announcement(peer, vec![addr(9735)]);
        f.clock.advance(Duration::from_secs(2)).await;
        assert_eq!(f.dialer.dialed(), vec![node(peer, 9735)]);
        assert!(f.server.is_connected(&peer));
        f.server.shutdown().await;
    });
}

#[test]
fn prune_stops_only_non_perm_peers_without_channels() {
    run(async {
        let f = Fixture::new(key(US));
        let (a, b, c) = (key(1), key(2), key(3));
        f.server.channel_opened(a);
        f.server.channel_opened(b);
        f.server.channel_closed(&b);
        f.dialer.set(node(c, 1), Behavior::Hang);
        f.server.connect(node(c, 1), true).await.expect("perm");
        assert!(!f.server.prune(&a), "a has a channel");
        assert!(f.server.prune(&b), "b has none");
        assert!(!f.server.prune(&c), "c is perm");
        assert_eq!(f.server.persistence(&b), None);
        f.server.shutdown().await;
    });
}

#[test]
fn ban_refuses_inbound_and_stops_non_perm_workers() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.server.channel_opened(peer);
        f.server.ban(peer, None).await.expect("no store");
        assert_eq!(f.server.persistence(&peer), None);
        let mut events = f.server.events();
        assert!(!f.server.inbound(peer, Conn::lone(), None));
        assert!(matches!(
            events.try_recv(),
            Ok(server::ServerEvent::RefusedBanned { .. })
        ));
        f.server.unban(&peer).await.expect("no store");
        assert!(f.server.inbound(peer, Conn::lone(), None));
        f.server.shutdown().await;
    });
}

/// A ban whose end has already passed replaces the peer's ban (lifting a
/// permanent one) and does nothing else: the connection stays, and so does
/// a channel peer's worker.
#[test]
fn a_ban_that_has_already_ended_closes_and_stops_nothing() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.server.channel_opened(peer);
        assert!(f.server.inbound(peer, Conn::lone(), None));
        settle().await;
        assert!(f.server.is_connected(&peer));
        f.server.ban(peer, None).await.expect("no store");
        assert!(f.server.is_banned(&peer));
        let past = SystemTime::now() - Duration::from_secs(1);
        // Lifts the permanent ban, as any new ban replaces the old one.
        f.server.ban(peer, Some(past)).await.expect("no store");
        assert!(!f.server.is_banned(&peer));
        assert!(f.server.inbound(peer, Conn::lone(), None), "not refused");
        settle().await;
        let other = key(2);
        f.server.channel_opened(other);
        assert!(f.server.inbound(other, Conn::lone(), None));
        settle().await;
        f.server.ban(other, Some(past)).await.expect("no store");
        settle().await;
        assert!(f.server.is_connected(&other), "its connection stays");
        assert_eq!(
            f.server.persistence(&other),
            Some(false),
            "its worker stays"
        );
        f.server.shutdown().await;
    });
}

#[test]
fn startup_dials_a_first_batch_at_once_and_spreads_the_rest() {
    run(async {
        let f = Fixture::new(key(US));
        let peers: Vec<_> = (1..=40u8).map(key).collect();
        for p in &peers {
            f.dialer.set(node(*p, 1), Behavior::Succeed);
        }
        f.server.startup(
            peers
                .iter()
                .map(|p| StartupPeer::new(*p, vec![addr(1)], false)),
        );
        settle().await;
        let at_once = f.dialer.attempts().len();
        assert!((10..=12).contains(&at_once), "{at_once} dialed at once");
        let waits = f.clock.pending_sleeps();
        assert!(waits.iter().all(|w| *w < Duration::from_secs(30)));
        assert!(waits.iter().all(|w| w.subsec_nanos() == 0), "whole seconds");
        f.clock.advance(Duration::from_secs(30)).await;
        let missing: Vec<_> = f
            .server
            .status()
            .into_iter()
            .filter(|s| s.connection.is_none())
            .map(|s| s.worker)
            .collect();
        assert!(missing.is_empty(), "{missing:#?}");
        let ignore = f.server.bootstrap_ignore();
        assert_eq!(ignore.len(), 41, "every peer and ourselves");
        assert!(ignore.contains(&key(US)));
        f.server.shutdown().await;
    });
}

/// A startup entry without addresses (none stored) is no news: the
/// worker keeps what an announcement told it, and dials it.
#[test]
fn startup_without_addresses_keeps_the_announced_ones() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 7), Behavior::Succeed);
        f.server.channel_opened(peer);
        f.server.node_announcement(peer, vec![addr(7)]);
        f.server
            .startup([StartupPeer::new(peer, Vec::new(), false)]);
        settle().await;
        assert!(
            f.server.is_connected(&peer),
            "dialed at its announced address"
        );
        assert_eq!(f.dialer.dialed(), vec![node(peer, 7)]);
        f.server.shutdown().await;
    });
}

#[test]
fn duplicate_in_the_same_direction_replaces_the_old_one() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        assert!(f.server.inbound(peer, Conn::lone(), None));
        settle().await;
        assert!(f.server.inbound(peer, Conn::lone(), None));
        settle().await;
        let runs = f.handler.runs();
        assert_eq!(runs.len(), 2);
        let status = f.server.status();
        assert_eq!(status.len(), 1);
        f.server.shutdown().await;
    });
}

#[test]
fn simultaneous_open_converges() {
    for (a_key, b_key) in [(1u8, 2u8), (2, 1)] {
        run(async move {
            let mut net = Network::new();
            let (a, ha) = net.server(key(a_key), config());
            let (b, hb) = net.server(key(b_key), config());
            a.connect(node(key(b_key), 1), true).await.expect("perm");
            b.connect(node(key(a_key), 1), true).await.expect("perm");
            settle().await;
            assert!(a.is_connected(&key(b_key)) && b.is_connected(&key(a_key)));
            // Both ends hold the same single link.
            let live = |h: &Handler| {
                let runs = h.runs();
                runs.last().map(|r| r.id)
            };
            let a_status = a.status();
            let b_status = b.status();
            let a_dir = a_status[0].connection.as_ref().map(|c| c.direction);
            let b_dir = b_status[0].connection.as_ref().map(|c| c.direction);
            assert_eq!(a_dir.map(Direction::flip), b_dir);
            assert_eq!(live(&ha), live(&hb));
            // No reconnect cycle: an hour later nothing has changed.
            let runs_before = (ha.runs().len(), hb.runs().len());
            net.clock.advance(Duration::from_secs(3600)).await;
            assert_eq!((ha.runs().len(), hb.runs().len()), runs_before);
            assert!(a.is_connected(&key(b_key)) && b.is_connected(&key(a_key)));
            a.shutdown().await;
            b.shutdown().await;
        });
    }
}

#[test]
fn lnd_rule_is_available_as_an_option() {
    run(async {
        let mut c = config();
        c.duplicate_rule = DuplicateRule::LndEffective;
        let f = Fixture::with_config(key(US), c);
        let peer = key(1);
        assert!(f.server.inbound(peer, Conn::lone(), None));
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        // An outbound connection while the inbound one lives: lnd keeps the
        // existing connection in the other direction.
        assert!(!f.server.outbound(node(peer, 1), Conn::lone()));
        settle().await;
        assert_eq!(f.handler.runs().len(), 1);
        f.server.shutdown().await;
    });
}

#[test]
fn shutdown_ends_every_task() {
    run(async {
        let f = Fixture::new(key(US));
        for i in 1..=50u8 {
            let behavior = if i % 2 == 0 {
                Behavior::Succeed
            } else {
                Behavior::Hang
            };
            f.dialer.set(node(key(i), 1), behavior);
            f.server.connect(node(key(i), 1), true).await.expect("perm");
        }
        settle().await;
        assert!(f.server.tasks() > 50);
        f.server.shutdown().await;
        assert_eq!(f.server.tasks(), 0);
        assert_eq!(f.dialer.in_flight(), 0);
        assert_eq!(f.dialer.open_conns(), 0);
        assert!(matches!(
            f.server.connect(node(key(1), 1), true).await,
            Err(ServerError::ShutDown)
        ));
    });
}

#[test]
fn shutdown_aborts_a_handler_that_ignores_cancellation_after_the_grace() {
    run(async {
        let f = Fixture::new(key(US));
        f.handler.ignore_cancellation();
        let conn = Conn::lone();
        let closed = conn.watch();
        assert!(f.server.inbound(key(1), conn, None));
        settle().await;
        let server = f.server.clone();
        let shutdown = tokio::spawn(async move { server.shutdown().await });
        settle().await;
        assert!(!shutdown.is_finished(), "the handler still runs");
        assert!(!closed.is_cancelled());
        f.clock
            .advance(server::Config::DEFAULT_SHUTDOWN_GRACE)
            .await;
        shutdown.await.expect("shutdown returns");
        assert_eq!(f.server.tasks(), 0);
        assert!(
            closed.is_cancelled(),
            "the aborted handler's connection is closed"
        );
    });
}

#[test]
fn a_perm_address_that_worked_outlives_a_stale_announcement() {
    // The peer announces an old address; the user's perm connect names the
    // one that works. After a disconnect the worker redials the working
    // address, not only the announced one.
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.server.node_announcement(peer, vec![addr(1)]);
        f.dialer.set(node(peer, 2), Behavior::Succeed);
        f.server
            .connect(node(peer, 2), true)
            .await
            .expect("perm connect");
        settle().await;
        assert!(f.server.is_connected(&peer));
        f.handler.close(&peer);
        settle().await;
        f.clock.advance(Duration::from_secs(5)).await;
        assert!(
            f.server.is_connected(&peer),
            "dialed: {:?}",
            f.dialer.dialed()
        );
        assert_eq!(f.dialer.dialed().last(), Some(&node(peer, 2)));
        f.server.shutdown().await;
    });
}

#[test]
fn an_established_connection_wins_over_a_late_dial() {
    // Our key is the smaller, so a simultaneous open would keep our dial.
    // But the inbound connection has been up longer than the window when
    // the dial completes: like lnd and LDK, we keep the established one
    // (a peer running either would close our new connection).
    run(async {
        let peer = key(1);
        let f = Fixture::new(key_below(peer));
        f.dialer.set(
            node(peer, 1),
            Behavior::SucceedAfter(Duration::from_secs(30)),
        );
        f.server
            .connect(node(peer, 1), true)
            .await
            .expect("perm connect");
        settle().await;
        assert!(f.server.inbound(peer, Conn::lone(), None));
        let mut events = f.server.events();
        f.clock.advance(Duration::from_secs(30)).await;
        let runs = f.handler.runs();
        assert_eq!(
            runs.len(),
            1,
            "the late outbound never reached the handler: {runs:?}"
        );
        assert_eq!(runs[0].direction, Direction::Inbound);
        let status = f.server.status();
        let conn = status[0].connection.as_ref().expect("connected");
        assert_eq!(conn.direction, Direction::Inbound);
        // The inbound connection stood the worker down: its dial was
        // cancelled before it completed, so there was no duplicate at all,
        // and no dial slot was held for it.
        while let Ok(e) = events.try_recv() {
            assert!(
                !matches!(e, server::ServerEvent::DuplicateResolved { .. }),
                "{e:?}"
            );
        }
        assert_eq!(f.dialer.in_flight(), 0);
        assert_eq!(f.server.dials_in_flight(), 0);
        f.server.shutdown().await;
    });
}
