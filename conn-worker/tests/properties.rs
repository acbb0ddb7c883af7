//! A seeded property test: random command sequences against a randomly
//! scripted dialer keep the worker's invariants.

use std::num::NonZeroUsize;
use std::time::Duration;

use conn_worker::{State, When};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use testkit::{Behavior, Harness, Seen};

type H = Harness<u32, &'static str>;

const ADDRS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Cmd {
    Connect(Option<Vec<usize>>, When),
    Update(Vec<usize>),
    StandDown,
    Advance(u64),
}

#[derive(Debug, Clone)]
enum Last {
    Connect(Option<Vec<usize>>, When),
    StandDown,
    Stop,
}

fn addrs() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..ADDRS.len(), 0..4)
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        Just(When::Now),
        (0u64..400).prop_map(|ms| When::After(Duration::from_millis(ms))),
        prop::option::of(0u64..2_000_000).prop_map(|ms| When::AfterDisconnect {
            connected_for: ms.map(Duration::from_millis)
        }),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        (prop::option::of(addrs()), when()).prop_map(|(a, w)| Cmd::Connect(a, w)),
        addrs().prop_map(Cmd::Update),
        Just(Cmd::StandDown),
        (0u64..300).prop_map(Cmd::Advance),
    ]
}

fn last() -> impl Strategy<Value = Last> {
    prop_oneof![
        (prop::option::of(addrs()), when()).prop_map(|(a, w)| Last::Connect(a, w)),
        Just(Last::StandDown),
        Just(Last::Stop),
    ]
}

fn behavior() -> impl Strategy<Value = Behavior> {
    prop_oneof![
        Just(Behavior::Fail),
        Just(Behavior::Succeed),
        Just(Behavior::Hang),
        (1u64..200).prop_map(|ms| Behavior::FailAfter(Duration::from_millis(ms))),
        (1u64..200).prop_map(|ms| Behavior::SucceedAfter(Duration::from_millis(ms))),
        (1u64..200).prop_map(|ms| Behavior::SucceedAfterIgnoringCancel(Duration::from_millis(ms))),
    ]
}

fn pick(ix: &[usize]) -> Vec<&'static str> {
    ix.iter().map(|&i| ADDRS[i]).collect()
}

fn check(
    max_parallel: usize,
    scripts: Vec<(Vec<Behavior>, Behavior)>,
    cmds: Vec<Cmd>,
    last: Last,
) -> Result<(), TestCaseError> {
    testkit::run(async move {
        let config =
            H::pr10640_config().with_max_parallel(NonZeroUsize::new(max_parallel).expect("1..=3"));
        let mut h: H = Harness::new(config);
        for (addr, (script, then)) in ADDRS.iter().zip(scripts) {
            h.dialer.script(addr, script);
            h.dialer.set(addr, then);
        }
        let w = h.spawn(1);
        for cmd in cmds {
            let posted = match cmd {
                Cmd::Connect(a, when) => w.connect(a.as_deref().map(pick), when),
                Cmd::Update(a) => w.update_addrs(pick(&a)),
                Cmd::StandDown => w.stand_down(),
                Cmd::Advance(ms) => {
                    h.advance(Duration::from_millis(ms)).await;
                    Ok(())
                }
            };
            prop_assert!(posted.is_ok());
        }
        let _ = h.events().await;
        let mut connect_addrs = None;
        match &last {
            Last::Connect(a, when) => {
                connect_addrs = a.as_deref().map(pick);
                prop_assert!(w.connect(connect_addrs.clone(), *when).is_ok());
            }
            Last::StandDown => prop_assert!(w.stand_down().is_ok()),
            Last::Stop => w.stop(),
        }
        let dialed_at_last = h.dialer.dialed().len();
        let after = h.seen().await;
        let status = w.status();
        match last {
            Last::Stop => {
                prop_assert_eq!(status.state, State::Stopped);
                prop_assert_eq!(after.last(), Some(&Seen::Stopped));
                h.advance(Duration::from_secs(10)).await;
                prop_assert_eq!(h.dialer.dialed().len(), dialed_at_last, "dial after stop");
                prop_assert_eq!(h.dialer.in_flight(), 0);
            }
            Last::StandDown => {
                prop_assert_eq!(status.state, State::Idle);
                prop_assert_eq!(h.dialer.in_flight(), 0);
                h.advance(Duration::from_secs(10)).await;
                prop_assert_eq!(
                    h.dialer.dialed().len(),
                    dialed_at_last,
                    "dial after stand-down"
                );
            }
            Last::Connect(..) => {
                let connected = after.iter().any(|s| matches!(s, Seen::Connected(_)));
                match status.state {
                    State::Waiting | State::Dialing => {}
                    State::AwaitingAddrs => prop_assert!(status.addrs.is_empty()),
                    State::Idle => prop_assert!(connected, "idle without a connection: {after:?}"),
                    State::Stopped => prop_assert!(false, "stopped"),
                    _ => prop_assert!(false, "unknown state"),
                }
                if let Some(addrs) = connect_addrs {
                    // The last connect's addresses head the user's list.
                    let mut given: Vec<&str> = Vec::new();
                    for a in addrs {
                        if !given.contains(&a) {
                            given.push(a);
                        }
                    }
                    prop_assert_eq!(&status.user_addrs[..given.len()], &given[..]);
                }
            }
        }
        prop_assert!(h.dialer.max_in_flight_for(&1) <= max_parallel);
        // Every attempt the worker dropped or cancelled left no connection
        // open: the only open ones were delivered.
        prop_assert_eq!(h.dialer.open_conns(), h.conns.len());
        h.shutdown().await;
        prop_assert_eq!(h.dialer.in_flight(), 0);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(10640),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_commands_keep_per_peer_limit_never_dial_after_stop_and_end_as_last_asked(
        max_parallel in 1usize..=3,
        scripts in prop::collection::vec(
            (prop::collection::vec(behavior(), 0..6), behavior()),
            ADDRS.len(),
        ),
        cmds in prop::collection::vec(cmd(), 0..40),
        last in last(),
    ) {
        check(max_parallel, scripts, cmds, last)?;
    }
}
