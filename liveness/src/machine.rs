use std::time::{Duration, Instant};

use crate::{Config, Error, Ping, Pong};

/// What the caller must do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this ping to the peer (encode it with [`Ping::encode`]).
    SendPing(Ping),
    /// The peer is dead or broke the ping rules: disconnect it for this
    /// reason ([`Error::PongTimeout`] or [`Error::PongLength`]).
    Disconnect(Error),
}

#[derive(Debug, Clone)]
enum State {
    /// No ping outstanding.
    Quiet,
    /// A ping asking for `len` bytes went out at `sent`; a probe since
    /// `probe.0` wants a sign of life by `probe.1`.
    Awaiting {
        sent: Instant,
        len: u16,
        probe: Option<(Instant, Instant)>,
    },
    /// Found dead at `at`, not yet reported.
    Dead { reason: Error, at: Instant },
    /// Reported dead: nothing more to do.
    Done,
}

/// One connection's BOLT 1 liveness, sans I/O: tell it what arrives, ask
/// it what to do.
///
/// It pings after [`Config::ping_interval`] with nothing received, and
/// declares the peer dead when nothing at all arrives within
/// [`Config::pong_timeout`] of that ping. Any message counts as alive
/// (a busy peer whose pong waits behind other traffic is not dropped),
/// and a pong must carry the length the ping asked for. It also answers
/// the peer's pings ([`on_ping`](Self::on_ping)) within a byte budget.
///
/// Time is passed in as `now`, never read: the caller polls at
/// [`next_deadline`](Self::next_deadline) and after each input. Times that
/// go backwards are taken as the latest time seen.
#[derive(Debug, Clone)]
pub struct Liveness {
    config: Config,
    state: State,
    /// The last time anything arrived (or the start).
    heard: Instant,
    /// Pong bytes sent since `window`.
    pong_used: u32,
    window: Instant,
}

impl Liveness {
    /// The liveness of a connection established at `now`.
    pub fn new(config: Config, now: Instant) -> Self {
        Liveness {
            config,
            state: State::Quiet,
            heard: now,
            pong_used: 0,
            window: now,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A message (any message, of any type) arrived at `now`.
    pub fn on_message_received(&mut self, now: Instant) {
        self.heard = self.heard.max(now);
    }

    /// A pong of `len` ignored bytes arrived at `now` (it counts as a
    /// message: no need to call [`on_message_received`](Self::on_message_received)
    /// too). A pong of another length than asked makes the peer dead
    /// ([`Error::PongLength`], returned by the next [`poll`](Self::poll));
    /// a pong with no ping outstanding is only a sign of life.
    pub fn on_pong(&mut self, now: Instant, len: u16) {
        self.on_message_received(now);
        if let State::Awaiting { len: expected, .. } = self.state {
            self.state = if len == expected {
                State::Quiet
            } else {
                State::Dead {
                    reason: Error::PongLength { expected, got: len },
                    at: self.heard,
                }
            };
        }
    }

    /// The peer's ping arrived at `now` (it counts as a message): the pong
    /// to send, if any. `None` when BOLT 1 says not to answer (65532 pong
    /// bytes or more asked for), or when answering would pass
    /// [`Config::pong_budget`] bytes of pongs within one ping interval.
    #[must_use = "the pong must be sent"]
    pub fn on_ping(&mut self, now: Instant, ping: &Ping) -> Option<Pong> {
        self.on_message_received(now);
        let pong = ping.pong()?;
        if self
            .window
            .checked_add(self.config.ping_interval())
            .is_some_and(|end| end <= self.heard)
        {
            self.window = self.heard;
            self.pong_used = 0;
        }
        let cost = 4 + u32::from(pong.len());
        let used = self.pong_used.checked_add(cost)?;
        if used > self.config.pong_budget() {
            return None;
        }
        self.pong_used = used;
        Some(pong)
    }

    /// What to do at `now`, if anything: send a ping, or disconnect (once;
    /// after that, always `None`).
    #[must_use = "the action must be carried out"]
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        match &self.state {
            State::Done => None,
            State::Dead { reason, .. } => {
                let reason = reason.clone();
                self.state = State::Done;
                Some(Action::Disconnect(reason))
            }
            State::Quiet => {
                if self.ping_due().is_some_and(|due| due <= now) {
                    let len = self.config.pong_bytes();
                    self.state = State::Awaiting {
                        sent: now.max(self.heard),
                        len,
                        probe: None,
                    };
                    Some(Action::SendPing(Ping::new(len, 0)))
                } else {
                    None
                }
            }
            State::Awaiting { probe, .. } => {
                let probed = probe.filter(|&(asked, _)| self.heard <= asked);
                if self.pong_due().is_some_and(|due| due <= now) {
                    // The probe's own timeout if it is what expired.
                    let timeout = match probed {
                        Some((asked, due)) if due <= now => due.saturating_duration_since(asked),
                        _ => self.config.pong_timeout(),
                    };
                    self.state = State::Done;
                    Some(Action::Disconnect(Error::PongTimeout { timeout }))
                } else {
                    None
                }
            }
        }
    }

    /// When [`poll`](Self::poll) next has something to do (unless an input
    /// comes first); `None` once the peer was reported dead.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Quiet => self.ping_due(),
            State::Awaiting { .. } => self.pong_due(),
            State::Dead { at, .. } => Some(*at),
            State::Done => None,
        }
    }

    /// Asks for a sign of life now, sooner than the next ping would: the
    /// peer is dead unless something (a pong, any message) arrives within
    /// `within` of `now`. For a connection suspected dead (say, the peer
    /// has just opened another one): a half-open link is then found in
    /// `within` rather than in [`Config::detection_bound`].
    ///
    /// Returns the ping to send, or `None` if one of ours is already out
    /// (its answer, or anything else arriving, satisfies the probe too) or
    /// the peer was already found dead. A probe never moves the regular
    /// deadlines later.
    #[must_use = "the ping must be sent"]
    pub fn probe(&mut self, now: Instant, within: Duration) -> Option<Ping> {
        let now = now.max(self.heard);
        let due = now.checked_add(within)?;
        match &mut self.state {
            State::Quiet => {
                let len = self.config.pong_bytes();
                self.state = State::Awaiting {
                    sent: now,
                    len,
                    probe: Some((now, due)),
                };
                Some(Ping::new(len, 0))
            }
            State::Awaiting { probe, .. } => {
                let earlier = probe.filter(|&(asked, d)| self.heard <= asked && d <= due);
                *probe = Some(earlier.unwrap_or((now, due)));
                None
            }
            State::Dead { .. } | State::Done => None,
        }
    }

    /// Whether a ping of ours awaits its pong.
    pub fn is_awaiting_pong(&self) -> bool {
        matches!(self.state, State::Awaiting { .. })
    }

    /// Whether the peer was found dead (reported or about to be).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, State::Dead { .. } | State::Done)
    }

    fn ping_due(&self) -> Option<Instant> {
        self.heard.checked_add(self.config.ping_interval())
    }

    /// Something must arrive within the timeout of the ping, or of the
    /// last message if one came after it.
    fn pong_due(&self) -> Option<Instant> {
        match self.state {
            State::Awaiting { sent, probe, .. } => {
                let regular = sent.max(self.heard).checked_add(self.config.pong_timeout());
                // A probe stands until anything arrives after it was asked.
                match probe.filter(|&(asked, _)| self.heard <= asked) {
                    Some((_, due)) => Some(regular.map_or(due, |r| r.min(due))),
                    None => regular,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn config() -> Config {
        Config::new(200 * MS, 300 * MS).expect("valid")
    }

    #[test]
    fn quiet_link_is_pinged_then_declared_dead_after_the_timeout() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(), t0);
        assert_eq!(l.next_deadline(), Some(t0 + 200 * MS));
        assert_eq!(l.poll(t0 + 199 * MS), None);
        assert_eq!(
            l.poll(t0 + 200 * MS),
            Some(Action::SendPing(Ping::new(0, 0)))
        );
        assert_eq!(l.next_deadline(), Some(t0 + 500 * MS));
        assert_eq!(l.poll(t0 + 499 * MS), None);
        assert_eq!(
            l.poll(t0 + 500 * MS),
            Some(Action::Disconnect(Error::PongTimeout { timeout: 300 * MS }))
        );
        assert_eq!(l.poll(t0 + 10_000 * MS), None);
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn pong_of_the_asked_length_keeps_the_peer_alive() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config().with_pong_bytes(5).expect("valid"), t0);
        assert_eq!(
            l.poll(t0 + 200 * MS),
            Some(Action::SendPing(Ping::new(5, 0)))
        );
        l.on_pong(t0 + 250 * MS, 5);
        assert!(!l.is_awaiting_pong());
        assert_eq!(l.next_deadline(), Some(t0 + 450 * MS));
    }

    #[test]
    fn pong_of_another_length_is_a_typed_disconnect() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config().with_pong_bytes(5).expect("valid"), t0);
        assert!(matches!(l.poll(t0 + 200 * MS), Some(Action::SendPing(_))));
        l.on_pong(t0 + 210 * MS, 4);
        assert!(l.is_dead());
        assert_eq!(
            l.poll(t0 + 210 * MS),
            Some(Action::Disconnect(Error::PongLength {
                expected: 5,
                got: 4
            }))
        );
    }

    #[test]
    fn any_message_after_a_ping_counts_as_alive() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(), t0);
        assert!(matches!(l.poll(t0 + 200 * MS), Some(Action::SendPing(_))));
        l.on_message_received(t0 + 400 * MS);
        assert_eq!(l.poll(t0 + 500 * MS), None);
        assert_eq!(l.next_deadline(), Some(t0 + 700 * MS));
    }

    #[test]
    fn unsolicited_pong_is_a_sign_of_life() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(), t0);
        l.on_pong(t0 + 100 * MS, 7);
        assert!(!l.is_dead());
        assert_eq!(l.next_deadline(), Some(t0 + 300 * MS));
    }

    #[test]
    fn pings_past_the_pong_budget_are_not_answered_until_the_next_interval() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config().with_pong_budget(2 * (4 + 100)), t0);
        let ping = Ping::new(100, 0);
        assert_eq!(l.on_ping(t0, &ping), Some(Pong::new(100)));
        assert_eq!(l.on_ping(t0 + MS, &ping), Some(Pong::new(100)));
        assert_eq!(l.on_ping(t0 + 2 * MS, &ping), None);
        assert_eq!(l.on_ping(t0 + 200 * MS, &ping), Some(Pong::new(100)));
        assert_eq!(l.on_ping(t0 + 200 * MS, &Ping::new(65532, 0)), None);
    }

    #[test]
    fn time_going_backwards_does_not_move_deadlines_back() {
        let t0 = Instant::now() + 1000 * MS;
        let mut l = Liveness::new(config(), t0);
        l.on_message_received(t0 - 500 * MS);
        assert_eq!(l.next_deadline(), Some(t0 + 200 * MS));
    }

    #[test]
    fn an_unanswered_probe_finds_the_peer_dead_within_its_own_timeout() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(), t0);
        assert_eq!(l.probe(t0 + 10 * MS, 50 * MS), Some(Ping::new(0, 0)));
        assert_eq!(l.next_deadline(), Some(t0 + 60 * MS));
        assert_eq!(l.poll(t0 + 59 * MS), None);
        assert_eq!(
            l.poll(t0 + 60 * MS),
            Some(Action::Disconnect(Error::PongTimeout { timeout: 50 * MS }))
        );
    }

    #[test]
    fn anything_arriving_after_a_probe_satisfies_it() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(), t0);
        assert!(l.probe(t0, 50 * MS).is_some());
        l.on_message_received(t0 + 20 * MS);
        // Back to the regular timeout, counted from the last message.
        assert_eq!(l.next_deadline(), Some(t0 + 320 * MS));
        assert_eq!(l.poll(t0 + 60 * MS), None);
        l.on_pong(t0 + 70 * MS, 0);
        assert!(!l.is_awaiting_pong());
    }

    #[test]
    fn a_probe_during_a_ping_sends_nothing_more_and_shortens_the_wait() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(), t0);
        assert!(matches!(l.poll(t0 + 200 * MS), Some(Action::SendPing(_))));
        assert_eq!(l.probe(t0 + 210 * MS, 50 * MS), None);
        assert_eq!(l.next_deadline(), Some(t0 + 260 * MS));
        // A later, longer probe does not push it back.
        assert_eq!(l.probe(t0 + 220 * MS, 500 * MS), None);
        assert_eq!(l.next_deadline(), Some(t0 + 260 * MS));
        assert_eq!(
            l.poll(t0 + 260 * MS),
            Some(Action::Disconnect(Error::PongTimeout { timeout: 50 * MS }))
        );
    }

    #[test]
    fn a_probe_never_moves_the_regular_deadline_later() {
        let t0 = Instant::now();
        let mut l = Liveness::new(config(), t0);
        assert!(matches!(l.poll(t0 + 200 * MS), Some(Action::SendPing(_))));
        // Due at 500 ms; a probe of 1 s asked at 210 ms changes nothing.
        assert_eq!(l.probe(t0 + 210 * MS, 1000 * MS), None);
        assert_eq!(l.next_deadline(), Some(t0 + 500 * MS));
        let dead = l.poll(t0 + 500 * MS);
        assert_eq!(
            dead,
            Some(Action::Disconnect(Error::PongTimeout { timeout: 300 * MS }))
        );
        assert_eq!(l.probe(t0 + 600 * MS, MS), None, "dead: nothing to probe");
    }
}
