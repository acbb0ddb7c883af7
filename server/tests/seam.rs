//! The server ⇄ worker seam: one test per defect seen through the public
//! API (issue 12), on the manual clock with mock dialers, plus races of
//! every state-changing operation on a multi-thread runtime.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{key, key_below, node, Conn, Fixture, Handler, SECOND};
use conn_worker::dial_fn;
use server::{DialFailure, Direction, DisconnectReason, FailureClass, Server, ServerEvent, State};
use testkit::{run, settle, Behavior, ManualClock};
use tokio::sync::broadcast::Receiver;

const US: u8 = 200;

fn drain<E>(events: &mut Receiver<ServerEvent<E>>) -> Vec<ServerEvent<E>> {
    let mut out = Vec::new();
    while let Ok(e) = events.try_recv() {
        out.push(e);
    }
    out
}

fn dials_to(f: &Fixture, port: u16, peer: server::PublicKey) -> usize {
    f.dialer
        .dialed()
        .iter()
        .filter(|a| **a == node(peer, port))
        .count()
}

/// Item 1: a dialer that panics fails that attempt only. The peer stays
/// persistent, is retried with backoff, connects when the dialer behaves,
/// and every operation keeps working.
#[test]
fn a_panicking_dialer_fails_one_attempt_and_the_peer_is_still_redialed() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer
            .script(node(peer, 1), [Behavior::Panic, Behavior::Panic]);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        let mut events = f.server.events();
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        for _ in 0..2 {
            f.clock.advance_to_next().await;
        }
        assert!(f.server.is_connected(&peer));
        let panics = drain(&mut events)
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    ServerEvent::DialFailed {
                        failure: DialFailure::Panicked(_),
                        class: FailureClass::Local,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(panics, 2);
        assert_eq!(f.server.persistence(&peer), Some(true));
        assert!(f.server.disconnect(&peer).await.is_ok());
        assert_eq!(f.server.persistence(&peer), None);
        f.server.shutdown().await;
    });
}

/// Item 2: a handler that panics clears its connection: the peer is not a
/// ghost, its end is reported once with the reason, it is redialed, and its
/// own inbound connections are accepted again.
#[test]
fn a_panicking_handler_clears_its_connection_and_the_peer_comes_back() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        let mut events = f.server.events();
        f.handler.panic_next(1);
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        let seen = drain(&mut events);
        let ends: Vec<_> = seen
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Disconnected {
                    reason,
                    reconnecting,
                    ..
                } => Some((reason.clone(), *reconnecting)),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 1, "{seen:?}");
        assert!(matches!(ends[0].0, DisconnectReason::HandlerPanicked(_)));
        assert!(ends[0].1, "a persistent peer is reconnected");
        assert_eq!(f.server.health().handler_panics, 1);
        assert!(!f.server.is_connected(&peer), "no ghost connection");
        // Redialed after its backoff, and served this time.
        f.clock.advance_to_next().await;
        assert!(f.server.is_connected(&peer));

        // A peer without a worker: its inbound connection after a panic is
        // accepted, not refused as a duplicate of a ghost.
        let other = key(2);
        f.handler.panic_next(1);
        assert!(f.server.inbound(other, Conn::lone(), None));
        settle().await;
        assert!(!f.server.is_connected(&other));
        assert!(f.server.inbound(other, Conn::lone(), None));
        settle().await;
        assert!(f.server.is_connected(&other));
        f.server.shutdown().await;
    });
}

/// A dialer error whose `Display` panics, from a dialer whose `classify`
/// panics too.
#[derive(Debug)]
struct Poisoned;

impl std::fmt::Display for Poisoned {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("a Display that panics")
    }
}

impl std::error::Error for Poisoned {}

/// Item 3: user code that would panic on the event path (an error's
/// `Display`, the dialer's `classify`) cannot stop it: failures are still
/// reported, later connections still delivered, and health says all is well.
#[test]
fn user_code_that_panics_cannot_stop_the_event_path() {
    run(async {
        let clock = ManualClock::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let dialer = dial_fn(move |_: server::NodeAddr, _| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(Poisoned)
                } else {
                    Ok(Conn::lone())
                }
            }
        });
        let handler = Handler::default();
        let server = Server::new(key(US), common::config(), dialer, clock.clone(), handler);
        let mut events = server.events();
        let peer = key(1);
        server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        for _ in 0..3 {
            clock.advance_to_next().await;
        }
        assert!(server.is_connected(&peer), "the fourth dial was delivered");
        let failed = drain(&mut events)
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    ServerEvent::DialFailed {
                        failure: DialFailure::Error(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(failed, 3);
        let health = server.health();
        assert!(health.event_task_running);
        assert_eq!(health.event_panics, 0);
        server.shutdown().await;
        assert!(!server.health().event_task_running);
    });
}

/// Item 4: a perm connect while the worker's round has already tried the
/// address (it failed) and another attempt holds the peer's only slot: the
/// address is dialed again within one stagger, not after the backoff.
#[test]
fn a_perm_connect_dials_within_one_stagger_even_if_the_round_tried_the_address() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.script(node(peer, 1), [Behavior::Fail]);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.dialer.set(node(peer, 2), Behavior::Hang);
        f.server.node_announcement(peer, vec![common::addr(2)]);
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        // 1 failed, 2 hangs: the round is still going.
        assert_eq!(dials_to(&f, 1, peer), 1);
        assert_eq!(dials_to(&f, 2, peer), 1);
        let t0 = f.clock.elapsed();
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        while !f.server.is_connected(&peer) {
            f.clock.advance_to_next().await;
            assert!(
                f.clock.elapsed() - t0 <= 10 * SECOND,
                "waited past one stagger"
            );
        }
        assert_eq!(dials_to(&f, 1, peer), 2);
        f.server.shutdown().await;
    });
}

/// Item 5: an announcement while a perm peer is retrying keeps the address
/// the user gave: it is still dialed, first, on the next round.
#[test]
fn an_announcement_never_undoes_a_users_perm_address() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.script(node(peer, 1), [Behavior::Fail]);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.dialer.set(node(peer, 2), Behavior::Fail);
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        f.server.node_announcement(peer, vec![common::addr(2)]);
        settle().await;
        let status = f.server.status();
        let worker = status[0].worker.as_ref().expect("persistent");
        assert_eq!(worker.user_addrs, [node(peer, 1)]);
        assert_eq!(worker.addrs[0], node(peer, 1), "the user's address first");
        f.clock.advance_to_next().await;
        assert!(f.server.is_connected(&peer));
        assert_eq!(
            dials_to(&f, 2, peer),
            0,
            "the user's address answered first"
        );
        f.server.shutdown().await;
    });
}

/// Item 6: one disconnect, one `Disconnected`.
#[test]
fn one_disconnect_emits_exactly_one_disconnected() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Succeed);
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        let mut events = f.server.events();
        f.server.disconnect(&peer).await.expect("connected");
        settle().await;
        f.clock.advance(3600 * SECOND).await;
        let ends = drain(&mut events)
            .into_iter()
            .filter(|e| matches!(e, ServerEvent::Disconnected { .. }))
            .count();
        assert_eq!(ends, 1);
        f.server.shutdown().await;
    });
}

/// Item 7: disconnecting a persistent peer that is dialing (not connected)
/// stops its persistence; nothing is left half-way.
#[test]
fn disconnect_of_a_dialing_peer_stops_its_persistence() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Hang);
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        assert_eq!(f.dialer.in_flight(), 1);
        f.server.disconnect(&peer).await.expect("persistent");
        settle().await;
        assert_eq!(f.server.persistence(&peer), None);
        assert_eq!(f.dialer.in_flight(), 0);
        assert!(f.server.status().is_empty());
        f.clock.advance(3600 * SECOND).await;
        assert_eq!(f.dialer.dialed().len(), 1, "no dial after disconnect");
        // A peer never seen is still an error.
        assert!(f.server.disconnect(&key(9)).await.is_err());
        f.server.shutdown().await;
    });
}

/// Item 8: a node with the smaller key restarts and its peers reconnect
/// inbound first: each inbound connection stands its worker down at once,
/// so no slot is held dialing a connected peer and the others are dialed.
#[test]
fn inbound_connections_free_the_dial_slots_of_workers_dialing_those_peers() {
    run(async {
        let peers: Vec<_> = (1..=30u8).map(key).collect();
        let us = key_below(*peers.iter().min_by_key(|k| k.serialize()).expect("peers"));
        let f = Fixture::new(us);
        for p in &peers[..10] {
            f.dialer.set(node(*p, 1), Behavior::Hang);
        }
        for p in &peers[10..] {
            f.dialer.set(node(*p, 1), Behavior::Succeed);
        }
        // Ten slots, all taken by dials to the first ten peers.
        for p in &peers {
            f.server.connect(node(*p, 1), true).await.expect("perm");
        }
        settle().await;
        assert_eq!(f.server.dials_in_flight(), 10);
        // They dial us back: their connections arrive inbound.
        for p in &peers[..10] {
            assert!(f.server.inbound(*p, Conn::lone(), None));
        }
        settle().await;
        // The slots went to the other peers at once: all 30 connected with
        // no time passing.
        for p in &peers {
            assert!(f.server.is_connected(p), "{p}");
        }
        assert_eq!(f.server.dials_in_flight(), 0);
        for p in &peers[..10] {
            let s = f
                .server
                .status()
                .into_iter()
                .find(|s| s.pubkey == *p)
                .expect("known");
            assert_eq!(s.connection.map(|c| c.direction), Some(Direction::Inbound));
            assert_eq!(s.worker.map(|w| w.state), Some(State::Idle));
        }
        f.server.shutdown().await;
    });
}

/// Item 9: announcements alternating `[A]` and `[A, B]` every 10 s cut a
/// long backoff wait once, not each time.
#[test]
fn alternating_announcements_cut_a_wait_at_most_once_per_backoff_level() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set_fallback(Behavior::Fail);
        f.server.node_announcement(peer, vec![common::addr(1)]);
        f.server.channel_opened(peer);
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        // Fail until the level is above half an hour.
        loop {
            let status = f.server.status();
            let level = status[0].worker.as_ref().and_then(|w| w.backoff);
            if level.is_some_and(|l| l > 1800 * SECOND) {
                break;
            }
            f.clock.advance_to_next().await;
        }
        let before = f.dialer.dialed().len();
        for i in 0..360u32 {
            let addrs = if i % 2 == 0 {
                vec![common::addr(1), common::addr(2)]
            } else {
                vec![common::addr(1)]
            };
            f.server.node_announcement(peer, addrs);
            f.clock.advance(10 * SECOND).await;
        }
        let dials = f.dialer.dialed().len() - before;
        // Rounds of two dials: the cut for B (never seen), then per wait of
        // at least half an hour its expiry and at most one more cut.
        assert!(dials <= 2 * 5, "{dials} dials in an hour");
        f.server.shutdown().await;
    });
}

/// A worker that ends unasked is replaced with an event saying why; this
/// cannot be caused through the public API without a bug, so it is shown on
/// the worker side (a panicking clock) in conn-worker's tests. Here: a
/// stopped worker (forget) is reported as stopped, not failed.
#[test]
fn a_forgotten_worker_is_reported_stopped_not_failed() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set(node(peer, 1), Behavior::Hang);
        f.server.connect(node(peer, 1), true).await.expect("perm");
        settle().await;
        let mut events = f.server.events();
        assert!(f.server.forget(&peer).await.expect("no store"));
        settle().await;
        let seen = drain(&mut events);
        assert!(seen
            .iter()
            .any(|e| matches!(e, ServerEvent::WorkerStopped { .. })));
        assert!(!seen
            .iter()
            .any(|e| matches!(e, ServerEvent::WorkerFailed { .. })));
        assert_eq!(f.server.health().worker_failures, 0);
        f.server.shutdown().await;
    });
}

/// Every state-changing operation, from several threads at once, in seeded
/// random order: afterwards the registry tells the truth (no stopped worker
/// registered, no dial for a peer that is not persistent), every connection
/// reported as established is reported as ended exactly once, and shutdown
/// leaves no task.
#[test]
fn every_operation_raced_against_every_other_keeps_the_registry_true() {
    for seed in 0..8u64 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let f = Arc::new(Fixture::new(key(US)));
            let peers: Vec<_> = (1..=12u8).map(key).collect();
            for (i, p) in peers.iter().enumerate() {
                let b = match i % 4 {
                    0 => Behavior::Succeed,
                    1 => Behavior::Fail,
                    2 => Behavior::Hang,
                    _ => Behavior::Panic,
                };
                f.dialer.set(node(*p, 1), b);
            }
            f.handler.panic_next(5);
            let mut events = f.server.events();
            let counter = tokio::spawn(async move {
                let (mut up, mut down) = (0usize, 0usize);
                loop {
                    match events.recv().await {
                        Ok(ServerEvent::Connected { .. }) => up += 1,
                        Ok(ServerEvent::Disconnected { .. }) => down += 1,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                (up, down)
            });
            let mut tasks = Vec::new();
            for t in 0..4u64 {
                let f = Arc::clone(&f);
                let peers = peers.clone();
                tasks.push(tokio::spawn(async move {
                    let mut rng = backoff::SplitMix64::new(seed * 31 + t);
                    for _ in 0..300 {
                        let p = peers[(rng.next_u64() % peers.len() as u64) as usize];
                        match rng.next_u64() % 11 {
                            0 | 1 => drop(f.server.connect(node(p, 1), true).await),
                            2 => drop(f.server.disconnect(&p).await),
                            3 => drop(f.server.forget(&p).await),
                            4 => drop(f.server.inbound(p, Conn::lone(), None)),
                            5 => f.server.node_announcement(p, vec![common::addr(1)]),
                            6 => f.server.ban(p, None).await.expect("no store"),
                            7 => f.server.unban(&p).await.expect("no store"),
                            8 => f.server.channel_opened(p),
                            9 => drop(f.server.prune(&p)),
                            _ => f.handler.close(&p),
                        }
                        if rng.next_u64() % 8 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.expect("no operation panics");
            }
            settle().await;
            for s in f.server.status() {
                if let Some(w) = &s.worker {
                    assert_ne!(w.state, State::Stopped, "a stopped worker is registered");
                }
            }
            assert!(f.server.health().event_task_running);
            assert_eq!(f.server.health().event_panics, 0);
            f.server.shutdown().await;
            assert_eq!(f.server.tasks(), 0);
            let fx = Arc::try_unwrap(f).ok().expect("tasks ended");
            drop(fx);
            let (up, down) = counter.await.expect("counter");
            assert_eq!(up, down, "seed {seed}: each connection ends exactly once");
        });
    }
}

/// A peer restored from a store starts at its stored backoff level and is
/// dialed first at its last good address.
#[test]
fn startup_restores_the_backoff_level_and_the_last_good_address() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.dialer.set_fallback(Behavior::Fail);
        let mut p = server::StartupPeer::new(peer, vec![common::addr(1), common::addr(2)], true);
        p.last_good = Some(common::addr(2));
        p.backoff = Some(600 * SECOND);
        f.server.startup([p]);
        settle().await;
        assert_eq!(f.dialer.dialed()[0], node(peer, 2), "last good first");
        // The round failed: the next wait doubles the stored level.
        let wait = f.clock.next_wake().expect("waits");
        assert!(wait >= 1100 * SECOND, "{wait:?}");
        f.server.shutdown().await;
    });
}
