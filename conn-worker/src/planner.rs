//! The worker's decisions as a pure state machine: no I/O, no clock, no
//! runtime (quinn-proto's shape).
//!
//! A [`Planner`] owns one peer's address book, its backoff level and what it
//! is trying to do. Facts go in through its methods (`connect`,
//! `update_addrs`, `stand_down`, and what became of each attempt), each with
//! the current time; decisions come out of [`Planner::poll_action`] (dial
//! this address, cancel that attempt, report a new state), and
//! [`Planner::next_deadline`] says when to call [`Planner::handle_timeout`]
//! next. The async worker is a thin driver over it; the planner can be used
//! (and is property-tested) without one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use backoff::{Policy, SplitMix64};
use tokio::time::Instant;

use crate::clock::deadline_after;
use crate::{Priority, When};

/// How many user-given addresses a peer keeps (the latest ones).
pub const MAX_USER_ADDRS: usize = 8;

/// How many addresses a planner remembers having seen, to tell an
/// announcement that brings a new address from one that only reshuffles
/// known ones.
const SEEN_CAP: usize = 128;

/// One attempt, as the planner names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(u64);

/// What the planner wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action<A> {
    /// Start an attempt at `addr`: take a global dial slot, then dial.
    /// Report [`Planner::attempt_started`] when the dialer is called, and
    /// then exactly one of [`Planner::attempt_failed`] or
    /// [`Planner::attempt_connected`].
    Dial {
        /// The attempt.
        id: AttemptId,
        /// The address to dial.
        addr: A,
        /// Its place in the queue for a global dial slot.
        priority: Priority,
    },
    /// Cancel this attempt and drop whatever it produces; the planner has
    /// forgotten it.
    Cancel {
        /// The attempt.
        id: AttemptId,
    },
    /// The planner entered a new state.
    Report(Report),
}

/// A state the planner entered, for the driver to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Report {
    /// Nothing to do until told (connected, stood down, or never asked).
    Idle,
    /// Waiting until `until` before the next round.
    Waiting {
        /// When the next round starts.
        until: Instant,
    },
    /// A round of dials started.
    Dialing,
    /// It wants to connect but knows no address.
    AwaitingAddrs,
}

/// What the planner is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Not trying to connect.
    Idle,
    /// Waiting before the next round.
    Waiting,
    /// Dialing.
    Dialing,
    /// Wants to connect, knows no address.
    AwaitingAddrs,
}

/// The peer's addresses, each list with its own owner.
#[derive(Debug, Clone, Default)]
struct Book<A> {
    /// Given by a user (`connect`), latest first. Never dropped by an
    /// announcement.
    user: Vec<A>,
    /// From the latest announcement.
    advertised: Vec<A>,
    /// The address of the last connection made (by a dial of ours, or one
    /// the owner reported with `stand_down`).
    last_good: Option<A>,
    /// Addresses seen in any list, oldest first, bounded (a `Vec`, not a
    /// `VecDeque`: 8 bytes less in every worker; dropping the oldest of
    /// 128 is rare).
    seen: Vec<A>,
}

impl<A: Clone + Eq> Book<A> {
    /// The order a round tries: last good first (if still listed), then the
    /// user's, then the advertised ones, and last good at the very end if
    /// no list has it any more (a last resort, lnd's "else the last used
    /// one").
    fn order(&self) -> Vec<A> {
        order(&self.user, &self.advertised, self.last_good.as_ref())
    }

    fn contains(&self, a: &A) -> bool {
        self.user.contains(a) || self.advertised.contains(a) || self.last_good.as_ref() == Some(a)
    }

    fn is_empty(&self) -> bool {
        self.user.is_empty() && self.advertised.is_empty() && self.last_good.is_none()
    }

    /// Remembers `a` as seen; returns whether it was never seen before.
    fn see(&mut self, a: &A) -> bool {
        if self.seen.contains(a) {
            return false;
        }
        if self.seen.len() == SEEN_CAP {
            self.seen.remove(0);
        }
        self.seen.push(a.clone());
        true
    }

    /// Puts user-given addresses first, in the order given.
    fn add_user(&mut self, addrs: &[A]) {
        for a in addrs.iter().rev() {
            self.user.retain(|u| u != a);
            self.user.insert(0, a.clone());
            self.see(a);
        }
        self.user.truncate(MAX_USER_ADDRS);
    }
}

/// The order a round tries a book's addresses in: see `Book::order`.
pub(crate) fn order<A: Clone + PartialEq>(
    user: &[A],
    advertised: &[A],
    last_good: Option<&A>,
) -> Vec<A> {
    let listed = |a: &A| user.contains(a) || advertised.contains(a);
    let mut out: Vec<A> = Vec::with_capacity(user.len() + advertised.len() + 1);
    if let Some(good) = last_good.filter(|g| listed(g)) {
        out.push(good.clone());
    }
    for a in user.iter().chain(advertised) {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    if let Some(good) = last_good.filter(|g| !listed(g)) {
        out.push(good.clone());
    }
    out
}

/// The gate on starting another attempt while some are in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// At once.
    Open,
    /// Not until the last attempt started has its slot.
    Blocked,
    /// From this time (the stagger after the last start).
    At(Instant),
}

#[derive(Debug, Clone)]
struct Flight<A> {
    id: AttemptId,
    addr: A,
    /// When the planner asked for it.
    queued: Instant,
    /// When the dialer was called; `None` while waiting for a slot.
    started: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Round<A> {
    queue: VecDeque<A>,
    tried: Vec<A>,
    flight: Vec<Flight<A>>,
    gate: Gate,
    /// A user's address that must start within one stagger.
    priority: Option<A>,
}

#[derive(Debug, Clone)]
enum State<A> {
    Idle,
    Waiting(Instant),
    AwaitingAddrs,
    Dialing(Box<Round<A>>),
}

/// What the planners of one spawner share, set once: one allocation for
/// all of them rather than a copy in each.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) policy: Policy,
    pub(crate) stagger: Duration,
    /// At least 1.
    pub(crate) max_parallel: usize,
    /// Not the planner's: the worker's, shared the same way.
    pub(crate) attempt_timeout: Duration,
}

/// One peer's dial / wait / retry decisions. See the module docs.
#[derive(Debug, Clone)]
pub struct Planner<A> {
    settings: Arc<Settings>,
    rng: SplitMix64,
    book: Book<A>,
    backoff: Option<Duration>,
    /// An announcement that brought no new address already cut a wait since
    /// the last wait served in full (or the last disconnect).
    cut_used: bool,
    /// The current wait is one an announcement cut short: its end does not
    /// count as a wait served in full.
    cut_wait: bool,
    /// A round failed since the peer was last connected (its dials queue
    /// behind those of peers that did not fail).
    failed: bool,
    /// Failed rounds left in the reconnect phase that the end of a stable
    /// connection started (see [`backoff::Reconnect`]).
    reconnect_left: u16,
    state: State<A>,
    next_id: u64,
    /// Decisions not yet polled, oldest first (a few at most).
    out: Vec<Action<A>>,
}

impl<A: Clone + Eq> Planner<A> {
    /// An idle planner with an empty address book. `max_parallel` is the
    /// number of attempts in flight at once (at least 1); `seed` drives the
    /// backoff jitter.
    pub fn new(policy: Policy, stagger: Duration, max_parallel: usize, seed: u64) -> Self {
        let settings = Settings {
            policy,
            stagger,
            max_parallel: max_parallel.max(1),
            attempt_timeout: crate::Config::DEFAULT_ATTEMPT_TIMEOUT,
        };
        Self::with_settings(Arc::new(settings), seed)
    }

    /// An idle planner on settings shared with others.
    pub(crate) fn with_settings(settings: Arc<Settings>, seed: u64) -> Self {
        Planner {
            settings,
            rng: SplitMix64::new(seed),
            book: Book {
                user: Vec::new(),
                advertised: Vec::new(),
                last_good: None,
                seen: Vec::new(),
            },
            backoff: None,
            cut_used: false,
            cut_wait: false,
            failed: false,
            reconnect_left: 0,
            state: State::Idle,
            next_id: 0,
            out: Vec::new(),
        }
    }

    /// Starts from a known backoff level (a restored peer), as if its last
    /// round had failed at that level.
    pub fn set_backoff(&mut self, level: Option<Duration>) {
        self.backoff =
            level.map(|l| l.clamp(self.settings.policy.min(), self.settings.policy.max()));
        self.failed = self.backoff.is_some();
        self.reconnect_left = 0;
    }

    /// The user wants the peer connected: `addrs` (if any) go to the front
    /// of the user-given addresses and stay there until a later `connect`
    /// pushes them out; `when` says when to dial.
    ///
    /// [`When::Now`] dials within one stagger whatever the planner is doing:
    /// a round in progress is not restarted (a handshake about to succeed
    /// is kept), but the first given address (else the first known one) is
    /// put at the head of the round, dialed again even if the round has
    /// tried it, and if every slot of the peer is busy, the oldest attempt
    /// is cancelled for it once it has run for a stagger.
    /// [`When::After`] replaces whatever the planner is doing with that
    /// wait. [`When::AfterDisconnect`] steps the backoff level for a
    /// connection that lasted `connected_for` and waits it (a wait already
    /// shorter is kept; a round in progress goes on). [`When::Soon`] waits a
    /// small jitter, with no backoff step.
    pub fn connect(&mut self, now: Instant, addrs: &[A], when: When) {
        self.book.add_user(addrs);
        match when {
            When::Now => self.dial_now(now, addrs.first().cloned()),
            When::After(d) if d.is_zero() => self.dial_now(now, addrs.first().cloned()),
            When::After(d) => {
                self.cancel_round();
                self.wait(deadline_after(now, d));
            }
            When::AfterDisconnect { connected_for } => {
                self.record_disconnect(connected_for);
                let d = self.backoff.unwrap_or_else(|| self.settings.policy.min());
                self.wait_at_most(deadline_after(now, d));
            }
            When::Soon => {
                let jitter = self.soon_jitter();
                self.wait_at_most(deadline_after(now, jitter));
            }
        }
        self.pump(now);
    }

    /// Adds user-given addresses (to the front of the user list) without
    /// changing what the planner does.
    pub fn add_user_addrs(&mut self, addrs: &[A]) {
        self.book.add_user(addrs);
    }

    /// Steps the backoff level for a connection that lasted `connected_for`
    /// (`None`: it never started), without changing what the planner does.
    ///
    /// A connection that lasted at least the policy's stable duration
    /// starts its reconnect phase ([`backoff::Reconnect`]): this wait and
    /// those after the next [`Reconnect::rounds`](backoff::Reconnect::rounds)
    /// failed rounds are at most [`Policy::reconnect_cap`] long, so a peer
    /// that restarted is dialed within the cap of being back; doubling
    /// resumes after them. A shorter connection (or none) ends any phase:
    /// a flapping or dead peer backs off as lnd's.
    pub fn record_disconnect(&mut self, connected_for: Option<Duration>) {
        let entropy = self.rng.next_u64();
        self.backoff = Some(self.settings.policy.after_disconnect(
            self.backoff,
            connected_for,
            entropy,
        ));
        self.reconnect_left = self.settings.policy.reconnect_rounds(connected_for);
        self.cut_used = false;
        self.failed = false;
    }

    /// New advertised addresses (a node announcement) replace the old
    /// advertised ones; user-given addresses and the last good one stay.
    ///
    /// Never lengthens a wait. Waiting, it cuts the wait to at most the
    /// policy's `min` from now if the announcement brings an address never
    /// seen before, or one not in the book — the latter once until a wait
    /// is served in full (so at most once per backoff level: announcements
    /// that alternate between known lists cannot make a peer at a long
    /// backoff be dialed every few seconds).
    /// Dialing, attempts at withdrawn addresses are cancelled (not counted
    /// as failures) and new ones join the round.
    pub fn update_addrs(&mut self, now: Instant, addrs: &[A]) {
        let mut list: Vec<A> = Vec::with_capacity(addrs.len());
        for a in addrs {
            if !list.contains(a) {
                list.push(a.clone());
            }
        }
        let mut new_to_book = false;
        let mut never_seen = false;
        for a in &list {
            if !self.book.contains(a) {
                new_to_book = true;
                never_seen |= self.book.see(a);
            }
        }
        self.book.advertised = list;
        match &mut self.state {
            State::Idle => {}
            State::AwaitingAddrs => {
                if !self.book.is_empty() {
                    self.start_round(now, None);
                }
            }
            State::Waiting(until) => {
                if never_seen || (new_to_book && !self.cut_used) {
                    self.cut_used = true;
                    let soon = deadline_after(now, self.settings.policy.min());
                    if soon < *until {
                        *until = soon;
                        self.cut_wait = true;
                        self.out
                            .push(Action::Report(Report::Waiting { until: soon }));
                    }
                }
            }
            State::Dialing(round) => {
                let book = &self.book;
                for f in round.flight.iter().filter(|f| !book.contains(&f.addr)) {
                    self.out.push(Action::Cancel { id: f.id });
                }
                round.flight.retain(|f| book.contains(&f.addr));
                if round.priority.as_ref().is_some_and(|p| !book.contains(p)) {
                    round.priority = None;
                }
                let flight = &round.flight;
                let tried = &round.tried;
                let mut queue: VecDeque<A> = book
                    .order()
                    .into_iter()
                    .filter(|a| !tried.contains(a) && !flight.iter().any(|f| f.addr == *a))
                    .collect();
                if let Some(p) = &round.priority {
                    if let Some(p) = queue
                        .iter()
                        .position(|a| a == p)
                        .and_then(|i| queue.remove(i))
                    {
                        queue.push_front(p);
                    }
                }
                round.queue = queue;
                if round.flight.is_empty() {
                    round.gate = Gate::Open;
                }
                if round.flight.is_empty() && round.queue.is_empty() && self.book.is_empty() {
                    // Every address was withdrawn: nothing failed.
                    self.state = State::AwaitingAddrs;
                    self.out.push(Action::Report(Report::AwaitingAddrs));
                }
            }
        }
        self.pump(now);
    }

    /// A connection to the peer is live that the planner did not make (an
    /// inbound one, or one the owner dialed at `good`): go idle, cancelling
    /// any wait or round. `good` becomes the last good address.
    pub fn stand_down(&mut self, now: Instant, good: Option<A>) {
        if let Some(good) = good {
            self.learn_good(good);
        }
        let _ = now;
        self.reconnect_left = 0;
        self.cancel_round();
        self.go_idle();
    }

    /// Keeps `addr` as the last good address (a connection the owner made
    /// there), without changing what the planner does.
    pub fn learn_good(&mut self, addr: A) {
        self.book.see(&addr);
        self.book.last_good = Some(addr);
    }

    /// The attempt got its slot and its dialer was called.
    pub fn attempt_started(&mut self, now: Instant, id: AttemptId) {
        if let State::Dialing(round) = &mut self.state {
            if let Some(f) = round.flight.iter_mut().find(|f| f.id == id) {
                f.started = Some(now);
                round.gate = Gate::At(deadline_after(now, self.settings.stagger));
            }
        }
        self.pump(now);
    }

    /// The attempt failed (an error, a timeout, a panic in the dialer).
    pub fn attempt_failed(&mut self, now: Instant, id: AttemptId) {
        if let State::Dialing(round) = &mut self.state {
            if let Some(i) = round.flight.iter().position(|f| f.id == id) {
                let f = round.flight.remove(i);
                if round.priority.as_ref() == Some(&f.addr) {
                    round.priority = None;
                }
                round.tried.push(f.addr);
                round.gate = Gate::Open;
            }
        }
        self.pump(now);
    }

    /// The attempt connected. Returns whether the planner takes the
    /// connection (it then goes idle, and the other attempts are
    /// cancelled); `false` for an attempt it no longer wants (drop it).
    pub fn attempt_connected(&mut self, now: Instant, id: AttemptId) -> bool {
        let State::Dialing(round) = &mut self.state else {
            return false;
        };
        let Some(i) = round.flight.iter().position(|f| f.id == id) else {
            return false;
        };
        let f = round.flight.remove(i);
        self.book.last_good = Some(f.addr);
        self.failed = false;
        self.reconnect_left = 0;
        let _ = now;
        self.cancel_round();
        self.go_idle();
        true
    }

    /// Time passed: act on a deadline that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Waiting(until) = self.state {
            if now >= until {
                // A wait served in full lets a later announcement cut the
                // next one; a wait that was itself cut does not.
                if !std::mem::take(&mut self.cut_wait) {
                    self.cut_used = false;
                }
                self.start_round(now, None);
            }
        }
        self.pump(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do
    /// next, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Waiting(until) => Some(*until),
            State::Dialing(round) => {
                let full = round.flight.len() >= self.settings.max_parallel;
                let gate = match round.gate {
                    Gate::At(t) if !full && !round.queue.is_empty() => Some(t),
                    _ => None,
                };
                let preempt = if full && priority_pending(round) {
                    preemptible(round, self.settings.stagger).map(|(_, at)| at)
                } else {
                    None
                };
                match (gate, preempt) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Idle | State::AwaitingAddrs => None,
        }
    }

    /// Frees the buffer of polled decisions if it is empty (an idle
    /// planner's driver calls this so that idle peers keep no spare
    /// capacity).
    pub(crate) fn shrink_to_fit(&mut self) {
        if self.out.is_empty() {
            self.out.shrink_to_fit();
        }
    }

    /// The settings it runs on.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The next decision, if any.
    pub fn poll_action(&mut self) -> Option<Action<A>> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.remove(0))
        }
    }

    /// What the planner is doing.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Waiting(_) => Phase::Waiting,
            State::AwaitingAddrs => Phase::AwaitingAddrs,
            State::Dialing(_) => Phase::Dialing,
        }
    }

    /// When the wait ends, if waiting.
    pub fn waiting_until(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(until) => Some(until),
            _ => None,
        }
    }

    /// Attempts in flight (waiting for a slot or dialing).
    pub fn in_flight(&self) -> usize {
        match &self.state {
            State::Dialing(round) => round.flight.len(),
            _ => 0,
        }
    }

    /// The backoff level: the last wait after a failed round or a
    /// disconnect (`None` before the first).
    pub fn backoff(&self) -> Option<Duration> {
        self.backoff
    }

    /// Failed rounds left in the reconnect phase (0: none, the backoff
    /// doubles as lnd's). See [`record_disconnect`](Self::record_disconnect).
    pub fn reconnect_rounds_left(&self) -> u16 {
        self.reconnect_left
    }

    /// Every address in the order a round tries them.
    pub fn addrs(&self) -> Vec<A> {
        self.book.order()
    }

    /// The user-given addresses, latest first.
    pub fn user_addrs(&self) -> &[A] {
        &self.book.user
    }

    /// The advertised addresses, from the latest announcement.
    pub fn advertised_addrs(&self) -> &[A] {
        &self.book.advertised
    }

    /// The address of the last connection.
    pub fn last_good(&self) -> Option<&A> {
        self.book.last_good.as_ref()
    }

    /// Starts a round now, or puts `priority` at the head of the one in
    /// progress.
    fn dial_now(&mut self, now: Instant, priority: Option<A>) {
        let State::Dialing(round) = &mut self.state else {
            self.start_round(now, priority);
            return;
        };
        let priority = priority.or_else(|| self.book.order().into_iter().next());
        let flight = &round.flight;
        let mut queue: VecDeque<A> = self
            .book
            .order()
            .into_iter()
            .filter(|a| !flight.iter().any(|f| f.addr == *a))
            .collect();
        let in_flight = priority
            .as_ref()
            .is_some_and(|p| flight.iter().any(|f| f.addr == *p));
        if let Some(p) = priority.as_ref().filter(|_| !in_flight) {
            queue.retain(|a| a != p);
            queue.push_front(p.clone());
        }
        round.queue = queue;
        round.tried.clear();
        round.priority = if in_flight { None } else { priority };
        round.gate = Gate::Open;
    }

    fn start_round(&mut self, now: Instant, priority: Option<A>) {
        let mut queue: VecDeque<A> = self.book.order().into();
        if queue.is_empty() {
            self.state = State::AwaitingAddrs;
            self.out.push(Action::Report(Report::AwaitingAddrs));
            return;
        }
        if let Some(p) = &priority {
            queue.retain(|a| a != p);
            queue.push_front(p.clone());
        }
        self.state = State::Dialing(Box::new(Round {
            queue,
            tried: Vec::new(),
            flight: Vec::new(),
            gate: Gate::Open,
            priority,
        }));
        self.out.push(Action::Report(Report::Dialing));
        let _ = now;
    }

    /// Starts what the round allows, preempts for a user's address, ends a
    /// round with nothing left.
    fn pump(&mut self, now: Instant) {
        let State::Dialing(round) = &mut self.state else {
            return;
        };
        // A user's address waiting behind a full set of attempts takes the
        // place of the oldest one that has had its stagger.
        if round.flight.len() >= self.settings.max_parallel && priority_pending(round) {
            if let Some((i, at)) = preemptible(round, self.settings.stagger) {
                if now >= at {
                    let f = round.flight.remove(i);
                    self.out.push(Action::Cancel { id: f.id });
                    // Tried again later in this round.
                    let at = usize::from(!round.queue.is_empty());
                    round.queue.insert(at.min(round.queue.len()), f.addr);
                    round.gate = Gate::Open;
                }
            }
        }
        while round.flight.len() < self.settings.max_parallel {
            let open = round.flight.is_empty()
                || match round.gate {
                    Gate::Open => true,
                    Gate::Blocked => false,
                    Gate::At(t) => now >= t,
                };
            if !open {
                break;
            }
            let Some(addr) = round.queue.pop_front() else {
                break;
            };
            let id = AttemptId(self.next_id);
            self.next_id += 1;
            let priority = if round.priority.as_ref() == Some(&addr) {
                Priority::User
            } else if self.failed {
                Priority::Retry
            } else {
                Priority::Fresh
            };
            round.flight.push(Flight {
                id,
                addr: addr.clone(),
                queued: now,
                started: None,
            });
            round.gate = Gate::Blocked;
            self.out.push(Action::Dial { id, addr, priority });
        }
        if round.flight.is_empty() && round.queue.is_empty() {
            if self.book.is_empty() {
                self.state = State::AwaitingAddrs;
                self.out.push(Action::Report(Report::AwaitingAddrs));
                return;
            }
            // Every address of the round failed.
            let entropy = self.rng.next_u64();
            let next = match self.backoff {
                None => self.settings.policy.first(entropy),
                Some(current) if self.reconnect_left > 0 => {
                    self.reconnect_left -= 1;
                    self.settings
                        .policy
                        .after_failure_reconnecting(current, entropy)
                }
                Some(current) => self.settings.policy.after_failure(current, entropy),
            };
            // A round that an announcement's cut started does not earn
            // another cut: only a wait served to its end (or a new fact
            // from the peer's connection) does.
            self.backoff = Some(next);
            self.failed = true;
            let until = deadline_after(now, next);
            self.cut_wait = false;
            self.state = State::Waiting(until);
            self.out.push(Action::Report(Report::Waiting { until }));
        }
    }

    fn wait(&mut self, until: Instant) {
        self.cut_wait = false;
        self.state = State::Waiting(until);
        self.out.push(Action::Report(Report::Waiting { until }));
    }

    /// Waits until `until` unless already waiting less or dialing.
    fn wait_at_most(&mut self, until: Instant) {
        match self.state {
            State::Dialing(_) => {}
            State::Waiting(current) if current <= until => {}
            _ => self.wait(until),
        }
    }

    fn soon_jitter(&mut self) -> Duration {
        let window = self.settings.policy.min() / 10;
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.rng.next_u64() % nanos)
    }

    fn cancel_round(&mut self) {
        if let State::Dialing(round) = &mut self.state {
            for f in round.flight.drain(..) {
                self.out.push(Action::Cancel { id: f.id });
            }
        }
    }

    fn go_idle(&mut self) {
        if !matches!(self.state, State::Idle) {
            self.state = State::Idle;
            self.out.push(Action::Report(Report::Idle));
        }
    }
}

/// Whether the round's priority address waits in the queue.
fn priority_pending<A: PartialEq>(round: &Round<A>) -> bool {
    round
        .priority
        .as_ref()
        .is_some_and(|p| round.queue.contains(p))
}

/// The attempt to cancel for a priority address, and from when: one still
/// waiting for a slot at once, else the oldest once it has run for a
/// stagger.
fn preemptible<A>(round: &Round<A>, stagger: Duration) -> Option<(usize, Instant)> {
    let mut best: Option<(usize, Instant)> = None;
    for (i, f) in round.flight.iter().enumerate() {
        let at = match f.started {
            None => return Some((i, f.queued)),
            Some(s) => deadline_after(s, stagger),
        };
        if best.is_none_or(|(_, b)| at < b) {
            best = Some((i, at));
        }
    }
    best
}
