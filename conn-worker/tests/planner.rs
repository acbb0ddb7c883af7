//! Property tests of the sans-IO planner, with no runtime: any sequence of
//! facts at any times keeps the planner's promises.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use conn_worker::{Action, AttemptId, Phase, Planner, Policy, When, MAX_USER_ADDRS};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);
const STAGGER: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
enum Fact {
    Connect(Vec<u8>, When),
    Announce(Vec<u8>),
    StandDown(Option<u8>),
    Advance(u64),
}

/// How a dial to an address ends, and after how long.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Fail(u64),
    Connect(u64),
    Hang,
}

fn addrs() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..6, 0..4)
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        Just(When::Now),
        Just(When::Soon),
        (0u64..400).prop_map(|ms| When::After(Duration::from_millis(ms))),
        prop::option::of(0u64..2_000_000).prop_map(|ms| When::AfterDisconnect {
            connected_for: ms.map(Duration::from_millis)
        }),
    ]
}

fn fact() -> impl Strategy<Value = Fact> {
    prop_oneof![
        (addrs(), when()).prop_map(|(a, w)| Fact::Connect(a, w)),
        addrs().prop_map(Fact::Announce),
        prop::option::of(0u8..6).prop_map(Fact::StandDown),
        (0u64..300).prop_map(Fact::Advance),
    ]
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        (0u64..200).prop_map(Fate::Fail),
        (0u64..200).prop_map(Fate::Connect),
        Just(Fate::Hang),
    ]
}

/// Drives a planner as the async worker would, with dial slots always free
/// and each address's dials ending as its fate says.
struct Sim {
    planner: Planner<u8>,
    now: Instant,
    fates: Vec<Fate>,
    /// Attempts in flight: address, and when it ends with what.
    flight: HashMap<AttemptId, (u8, Option<(Instant, bool)>)>,
    dialed: Vec<(Instant, u8)>,
    max_parallel: usize,
    max_seen_in_flight: usize,
}

impl Sim {
    fn new(max_parallel: usize, fates: Vec<Fate>) -> Self {
        let policy = Policy::new(100 * MS, 2000 * MS).expect("valid");
        Sim {
            planner: Planner::new(policy, STAGGER, max_parallel, 7),
            now: Instant::now(),
            fates,
            flight: HashMap::new(),
            dialed: Vec::new(),
            max_parallel,
            max_seen_in_flight: 0,
        }
    }

    /// Carries out the planner's actions; a dial gets its slot at once.
    fn act(&mut self) {
        while let Some(action) = self.planner.poll_action() {
            match action {
                Action::Dial { id, addr, .. } => {
                    let end = match self.fates[usize::from(addr)] {
                        Fate::Fail(ms) => Some((self.now + Duration::from_millis(ms), false)),
                        Fate::Connect(ms) => Some((self.now + Duration::from_millis(ms), true)),
                        Fate::Hang => None,
                    };
                    self.flight.insert(id, (addr, end));
                    self.dialed.push((self.now, addr));
                    self.max_seen_in_flight = self.max_seen_in_flight.max(self.flight.len());
                    self.planner.attempt_started(self.now, id);
                }
                Action::Cancel { id } => {
                    self.flight.remove(&id);
                }
                _ => {}
            }
        }
    }

    /// Runs time forward to `until`, delivering deadlines and attempt ends
    /// in order.
    fn run_to(&mut self, until: Instant) {
        for step in 0.. {
            // A deadline that is due but does nothing would spin the worker.
            assert!(step < 10_000, "the planner spins at {:?}", self.now);
            self.act();
            let attempt = self
                .flight
                .iter()
                .filter_map(|(id, (_, end))| end.map(|(t, ok)| (t, *id, ok)))
                .min();
            let deadline = self.planner.next_deadline();
            let next = match (attempt.map(|a| a.0), deadline) {
                (Some(a), Some(d)) => a.min(d),
                (a, d) => match a.or(d) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            match attempt {
                Some((t, id, ok)) if t <= self.now => {
                    self.flight.remove(&id);
                    if ok {
                        assert!(self.planner.attempt_connected(self.now, id));
                    } else {
                        self.planner.attempt_failed(self.now, id);
                    }
                }
                _ => self.planner.handle_timeout(self.now),
            }
        }
        self.now = self.now.max(until);
        self.planner.handle_timeout(self.now);
        self.act();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        rng_seed: RngSeed::Fixed(12),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A user's connect dials its address within one stagger, whatever the
    /// planner was doing (or the peer got connected meanwhile).
    #[test]
    fn a_users_connect_dials_its_address_within_one_stagger(
        max_parallel in 1usize..=3,
        fates in prop::collection::vec(fate(), 6),
        facts in prop::collection::vec(fact(), 0..30),
        addr in 0u8..6,
    ) {
        let mut sim = Sim::new(max_parallel, fates);
        for f in facts {
            apply(&mut sim, f);
        }
        let t0 = sim.now;
        sim.planner.connect(t0, &[addr], When::Now);
        let already = sim.flight.values().any(|(a, _)| *a == addr);
        sim.run_to(t0 + STAGGER);
        let dialed = sim.dialed.iter().any(|(t, a)| *a == addr && *t >= t0 && *t <= t0 + STAGGER);
        let connected = sim.planner.phase() == Phase::Idle;
        prop_assert!(already || dialed || connected, "{:?}", sim.dialed);
        prop_assert!(sim.max_seen_in_flight <= sim.max_parallel);
    }

    /// No announcement drops a user-given address, and the user list keeps
    /// the latest ones in order.
    #[test]
    fn a_user_address_is_never_dropped_by_an_announcement(
        fates in prop::collection::vec(fate(), 6),
        facts in prop::collection::vec(fact(), 0..40),
    ) {
        let mut sim = Sim::new(2, fates);
        let mut user: Vec<u8> = Vec::new();
        for f in facts {
            if let Fact::Connect(a, _) = &f {
                for x in a.iter().rev() {
                    user.retain(|u| u != x);
                    user.insert(0, *x);
                }
                user.truncate(MAX_USER_ADDRS);
            }
            apply(&mut sim, f);
            prop_assert_eq!(sim.planner.user_addrs(), &user[..]);
            for u in &user {
                prop_assert!(sim.planner.addrs().contains(u));
            }
        }
    }

    /// An announcement never lengthens a wait, and cuts one at most once per
    /// backoff level unless it brings an address never seen before.
    #[test]
    fn announcements_never_lengthen_a_wait_and_cut_it_once_per_level(
        fates in prop::collection::vec(fate(), 6),
        facts in prop::collection::vec(fact(), 0..60),
    ) {
        let mut sim = Sim::new(1, fates);
        let mut seen: HashSet<u8> = HashSet::new();
        let mut cuts_at_level: Option<(Option<Duration>, usize)> = None;
        for f in facts {
            let before = sim.planner.waiting_until();
            let level = sim.planner.backoff();
            let announce = match &f {
                Fact::Announce(a) => Some(a.clone()),
                _ => None,
            };
            for a in sim.planner.addrs() {
                seen.insert(a);
            }
            apply(&mut sim, f);
            let Some(list) = announce else { continue };
            let fresh = list.iter().any(|a| !seen.contains(a));
            seen.extend(list.iter().copied());
            if let Some(until) = before {
                let after = sim.planner.waiting_until();
                if let Some(after) = after {
                    prop_assert!(after <= until, "lengthened {until:?} -> {after:?}");
                    if after < until && !fresh {
                        let count = match cuts_at_level {
                            Some((l, n)) if l == level => n + 1,
                            _ => 1,
                        };
                        prop_assert!(count <= 1, "two cuts at level {level:?} without a new address");
                        cuts_at_level = Some((level, count));
                    }
                }
            }
            if sim.planner.backoff() != level {
                cuts_at_level = None;
            }
        }
    }
}

fn apply(sim: &mut Sim, fact: Fact) {
    let now = sim.now;
    match fact {
        Fact::Connect(a, when) => sim.planner.connect(now, &a, when),
        Fact::Announce(a) => sim.planner.update_addrs(now, &a),
        Fact::StandDown(good) => sim.planner.stand_down(now, good),
        Fact::Advance(ms) => sim.run_to(now + Duration::from_millis(ms)),
    }
    sim.act();
}

#[test]
fn a_round_that_already_tried_the_users_address_dials_it_again_at_once() {
    // Issue 12, item 4: the address failed earlier in this round; a perm
    // connect for it must not wait for the round's backoff.
    let policy = Policy::new(Duration::from_secs(1), Duration::from_secs(3600)).expect("valid");
    let mut p: Planner<u8> = Planner::new(policy, Duration::from_secs(10), 1, 1);
    let t0 = Instant::now();
    p.update_addrs(t0, &[1, 2]);
    p.connect(t0, &[], When::Now);
    let Some(Action::Report(_)) = p.poll_action() else {
        panic!("dialing")
    };
    let Some(Action::Dial { id, addr: 1, .. }) = p.poll_action() else {
        panic!("dials 1")
    };
    p.attempt_started(t0, id);
    p.attempt_failed(t0, id);
    let Some(Action::Dial {
        id: id2, addr: 2, ..
    }) = p.poll_action()
    else {
        panic!("dials 2")
    };
    p.attempt_started(t0, id2);
    // The user asks for 1 while 2 (hanging) holds the peer's only slot.
    p.connect(t0, &[1], When::Now);
    assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(10)));
    p.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(p.poll_action(), Some(Action::Cancel { id: id2 }));
    assert!(matches!(
        p.poll_action(),
        Some(Action::Dial { addr: 1, .. })
    ));
}
