//! Property tests: the state machine's promises for any timing of any
//! traffic, and ping/pong round trips for any sizes and any bytes.

use std::time::{Duration, Instant};

use liveness::{Action, Config, Error, Liveness, Ping, Pong, MAX_ANSWERED_PONG_BYTES};
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(interval_ms: u64, timeout_ms: u64, pong_bytes: u16) -> Config {
    Config::new(ms(interval_ms), ms(timeout_ms))
        .and_then(|c| c.with_pong_bytes(pong_bytes))
        .expect("non-zero durations, an answerable size")
}

/// Something that happens on the link after `dt` ms.
#[derive(Debug, Clone)]
enum Input {
    Nothing,
    Message,
    /// A pong of the length asked (or, with `Some`, of this length).
    Pong(Option<u16>),
}

fn input() -> impl Strategy<Value = (u64, Input)> {
    (
        0u64..700,
        prop_oneof![
            3 => Just(Input::Nothing),
            2 => Just(Input::Message),
            2 => Just(Input::Pong(None)),
            1 => any::<u16>().prop_map(|l| Input::Pong(Some(l))),
        ],
    )
}

proptest! {
    /// Whatever arrives when: a ping goes out only after an interval of
    /// silence with none outstanding; a timeout only after the timeout of
    /// silence following a ping that got no pong; a wrong pong only for a
    /// pong of another length; one disconnect, then nothing; and `poll`
    /// before `next_deadline` does nothing.
    #[test]
    fn actions_follow_the_rules_for_any_traffic(
        interval in 1u64..500,
        timeout in 1u64..500,
        pong_bytes in 0u16..100,
        script in prop::collection::vec(input(), 1..200),
    ) {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(interval, timeout, pong_bytes), t0);
        let (mut now, mut heard) = (t0, t0);
        let mut outstanding: Option<Instant> = None;
        let mut disconnected = false;
        for (dt, input) in script {
            now += ms(dt);
            match input {
                Input::Nothing => {}
                Input::Message => {
                    l.on_message_received(now);
                    heard = now;
                }
                Input::Pong(len) => {
                    let len = len.unwrap_or(pong_bytes);
                    l.on_pong(now, len);
                    heard = now;
                    if outstanding.take().is_some() && len != pong_bytes && !disconnected {
                        prop_assert_eq!(
                            l.poll(now),
                            Some(Action::Disconnect(Error::PongLength { expected: pong_bytes, got: len }))
                        );
                        disconnected = true;
                    }
                }
            }
            if let Some(deadline) = l.next_deadline() {
                if deadline > now {
                    prop_assert_eq!(l.poll(now), None);
                    continue;
                }
            }
            match l.poll(now) {
                None => {}
                Some(_) if disconnected => prop_assert!(false, "an action after the disconnect"),
                Some(Action::SendPing(ping)) => {
                    prop_assert!(outstanding.is_none(), "two pings outstanding");
                    prop_assert!(now >= heard + ms(interval));
                    prop_assert_eq!(ping.num_pong_bytes(), pong_bytes);
                    outstanding = Some(now);
                }
                Some(Action::Disconnect(e)) => {
                    prop_assert_eq!(e, Error::PongTimeout { timeout: ms(timeout) });
                    let sent = outstanding.expect("a ping was outstanding");
                    prop_assert!(now >= sent + ms(timeout) && now >= heard + ms(timeout));
                    disconnected = true;
                }
            }
        }
        if disconnected {
            prop_assert_eq!(l.next_deadline(), None);
        }
    }

    /// A peer that answers every ping within the timeout, whatever else it
    /// sends, is never dropped.
    #[test]
    fn a_peer_answering_in_time_is_never_dropped(
        interval in 1u64..500,
        timeout in 2u64..500,
        delays in prop::collection::vec((0u64..1000, 0u64..1000, any::<bool>()), 1..100),
    ) {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(interval, timeout, 3), t0);
        let mut now = t0;
        for (answer, chatter, chat) in delays {
            let at = l.next_deadline().expect("alive");
            now = now.max(at);
            match l.poll(now) {
                Some(Action::SendPing(_)) => {
                    if chat {
                        // Some traffic first, before the pong.
                        now += ms(chatter % timeout);
                        l.on_message_received(now);
                    }
                    now += ms(answer % timeout);
                    l.on_pong(now, 3);
                }
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }

    /// After the last byte from a link that then goes silent, the machine
    /// (polled at its deadlines) disconnects with a pong timeout no sooner
    /// than the timeout and no later than interval + timeout.
    #[test]
    fn a_black_holed_link_is_found_within_interval_plus_timeout(
        interval in 1u64..500,
        timeout in 1u64..500,
        alive in prop::collection::vec(0u64..300, 0..50),
    ) {
        let t0 = Instant::now();
        let c = config(interval, timeout, 0);
        let bound = c.detection_bound();
        let mut l = Liveness::new(c, t0);
        let mut last = t0;
        for dt in alive {
            last += ms(dt);
            l.on_message_received(last);
            while let Some(Action::SendPing(_)) = l.poll(last) {
                l.on_pong(last, 0);
            }
        }
        let mut pings = 0;
        loop {
            let at = l.next_deadline().expect("not dead yet");
            prop_assert!(at <= last + bound);
            match l.poll(at) {
                Some(Action::SendPing(_)) => pings += 1,
                Some(Action::Disconnect(e)) => {
                    prop_assert_eq!(e, Error::PongTimeout { timeout: ms(timeout) });
                    prop_assert!(at >= last + ms(timeout));
                    break;
                }
                None => prop_assert!(false, "a deadline with nothing to do"),
            }
            prop_assert!(pings <= 1, "more than one ping into silence");
        }
    }

    /// Over any span, the pong bytes answered stay within the budget per
    /// started interval, and each answer is the size asked.
    #[test]
    fn pong_bytes_answered_are_bounded_per_interval(
        budget in 0u32..300_000,
        pings in prop::collection::vec((0u64..50, any::<u16>()), 1..300),
    ) {
        let interval = 100u64;
        let t0 = Instant::now();
        let mut l = Liveness::new(config(interval, 50, 0).with_pong_budget(budget), t0);
        let (mut now, mut sent) = (t0, 0u64);
        for (dt, n) in pings {
            now += ms(dt);
            let ping = Ping::new(n, 0);
            if let Some(pong) = l.on_ping(now, &ping) {
                prop_assert_eq!(pong.len(), n);
                prop_assert!(n <= MAX_ANSWERED_PONG_BYTES);
                sent += 4 + u64::from(pong.len());
            }
        }
        let span = (now - t0).as_millis() as u64;
        prop_assert!(sent <= u64::from(budget) * (span / interval + 1));
    }

    #[test]
    fn ping_round_trips(n in any::<u16>(), padding in 0u16..2048) {
        let ping = Ping::new(n, padding);
        let bytes = ping.encode();
        prop_assert_eq!(bytes.len(), 6 + usize::from(padding));
        prop_assert_eq!(Ping::decode(&bytes), Ok(ping));
        prop_assert_eq!(ping.pong().is_some(), n < 65532);
        for cut in 0..bytes.len() {
            prop_assert!(Ping::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn pong_round_trips(len in 0u16..4096) {
        let bytes = Pong::new(len).encode();
        prop_assert_eq!(bytes.len(), 4 + usize::from(len));
        prop_assert_eq!(Pong::decode(&bytes), Ok(Pong::new(len)));
        for cut in 0..bytes.len() {
            prop_assert!(Pong::decode(&bytes[..cut]).is_err());
        }
    }

    /// Any bytes: decoding never panics, and what decodes fits the input.
    #[test]
    fn decoding_any_bytes_is_total(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        match Ping::decode(&bytes) {
            Ok(p) => prop_assert!(bytes.len() >= 6 + usize::from(p.padding())),
            Err(e) => prop_assert!(e.is_peer_fault()),
        }
        if let Ok(p) = Pong::decode(&bytes) {
            prop_assert!(bytes.len() >= 4 + usize::from(p.len()));
        }
    }
}
