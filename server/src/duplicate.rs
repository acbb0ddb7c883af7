//! Which of two connections to the same peer stays.
//!
//! # The rule, and why both ends agree
//!
//! Each end, holding connection `old` when `new` completes:
//!
//! 1. **Same direction: the new one replaces the old.** The initiator
//!    dialed again, so on its side the old one is dead (a half-open link:
//!    the peer's laptop changed network, a NAT dropped the mapping). Both
//!    ends see the same pair in the same order of initiation, and lnd,
//!    Core Lightning and Eclair decide the same way.
//! 2. **Other directions: the connection initiated by the node with the
//!    smaller public key stays** (keys compared as 33-byte compressed
//!    encodings), whatever the age of either. Both ends compare the same two
//!    keys, so two of our nodes keep the same connection in every ordering
//!    and latency: no timer, no window whose edge the two ends could see
//!    differently, decides.
//! 3. **The loser is parked, not closed, when it is the new one.** A peer
//!    that runs another rule (LDK and lnd keep the first connection they
//!    saw, Core Lightning and Eclair the newest) may keep the other one; it
//!    then closes ours. For [`Config::duplicate_grace`] the server holds the
//!    losing new connection unread (its bytes wait in the socket) and asks
//!    the handler to [`probe`](crate::PeerHandler::probe) the winner: if the
//!    winner ends within the grace (the peer closed it, or it was dead), the
//!    parked connection is handed to the handler instead. Between two of
//!    our nodes the winner never ends for this reason, so the grace changes
//!    nothing there; against a first-wins or newest-wins peer the pair keeps
//!    the one connection the peer kept.
//! 4. **A duplicate resolution is not a failure.** When the new connection
//!    wins (it replaces a running one, which cannot be parked) and then
//!    ends within the grace, the peer kept the other one and closed both:
//!    the peer's worker redials at once (with a small jitter), not after a
//!    backoff step.
//!
//! Workers stand down as soon as another connection to their peer is live,
//! which cancels a dial that has not completed (its peer has not completed
//! it either: the responder's side completes only on the initiator's last
//! act), so most crossings never become duplicates at all.

use bitcoin::secp256k1::PublicKey;

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

impl Direction {
    /// The other direction.
    pub fn flip(self) -> Self {
        match self {
            Self::Inbound => Self::Outbound,
            Self::Outbound => Self::Inbound,
        }
    }
}

/// How to choose between two connections to the same peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DuplicateRule {
    /// This workspace's rule (see the module docs): the same direction
    /// replaces, across directions the smaller key's connection stays, a
    /// losing new connection is parked for the grace.
    #[default]
    SmallerKeyInitiates,
    /// lnd's effective behaviour: an existing connection in the other
    /// direction wins, a new one in the same direction replaces the old one.
    /// Two lnd-like nodes opening at once can each keep a different
    /// connection and lose both. No parking.
    LndEffective,
    /// LDK's: the first connection stays, any new one is closed. A model
    /// for tests. No parking.
    FirstWins,
    /// Core Lightning's and Eclair's: the newest connection stays. A model
    /// for tests. No parking.
    NewestWins,
}

/// What to do with a new connection when one to the same peer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Keep the new connection and close the existing one.
    ReplaceExisting,
    /// Keep the existing connection; close the new one (or park it, if the
    /// rule parks).
    KeepExisting,
}

impl DuplicateRule {
    /// Decides between an existing connection in direction `existing` and a
    /// new one in direction `new`, for a peer `remote` of node `local`.
    pub(crate) fn resolve(
        self,
        local: &PublicKey,
        remote: &PublicKey,
        existing: Direction,
        new: Direction,
    ) -> Resolution {
        match self {
            Self::FirstWins => Resolution::KeepExisting,
            Self::NewestWins => Resolution::ReplaceExisting,
            _ if existing == new => Resolution::ReplaceExisting,
            Self::LndEffective => Resolution::KeepExisting,
            Self::SmallerKeyInitiates => {
                if new == preferred_direction(local, remote) {
                    Resolution::ReplaceExisting
                } else {
                    Resolution::KeepExisting
                }
            }
        }
    }

    /// Whether a losing new connection is parked for the grace.
    pub(crate) fn parks(self) -> bool {
        self == Self::SmallerKeyInitiates
    }
}

/// The direction the smaller-key rule keeps, seen from `local`.
pub(crate) fn preferred_direction(local: &PublicKey, remote: &PublicKey) -> Direction {
    if local.serialize() < remote.serialize() {
        Direction::Outbound
    } else {
        Direction::Inbound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn key(b: u8) -> PublicKey {
        let sk = SecretKey::from_slice(&[b; 32]).expect("valid scalar");
        PublicKey::from_secret_key(&Secp256k1::signing_only(), &sk)
    }

    fn kept(rule: DuplicateRule, l: &PublicKey, r: &PublicKey, first: Direction) -> Direction {
        match rule.resolve(l, r, first, first.flip()) {
            Resolution::ReplaceExisting => first.flip(),
            Resolution::KeepExisting => first,
        }
    }

    #[test]
    fn both_ends_keep_the_same_connection_whatever_each_saw_first() {
        let (a, b) = (key(1), key(2));
        let rule = DuplicateRule::SmallerKeyInitiates;
        for a_first in [Direction::Outbound, Direction::Inbound] {
            for b_first in [Direction::Outbound, Direction::Inbound] {
                let a_keeps = kept(rule, &a, &b, a_first);
                let b_keeps = kept(rule, &b, &a, b_first);
                // A's outbound is B's inbound: the same connection.
                assert_eq!(a_keeps, b_keeps.flip());
                assert_eq!(a_keeps, preferred_direction(&a, &b));
            }
        }
    }

    #[test]
    fn the_same_direction_replaces_under_every_rule_but_first_wins() {
        let (a, b) = (key(1), key(2));
        for rule in [
            DuplicateRule::SmallerKeyInitiates,
            DuplicateRule::LndEffective,
            DuplicateRule::NewestWins,
        ] {
            for d in [Direction::Inbound, Direction::Outbound] {
                assert_eq!(rule.resolve(&a, &b, d, d), Resolution::ReplaceExisting);
            }
        }
        assert_eq!(
            DuplicateRule::FirstWins.resolve(&a, &b, Direction::Inbound, Direction::Inbound),
            Resolution::KeepExisting
        );
    }

    #[test]
    fn lnd_rule_keeps_the_existing_other_direction() {
        let (a, b) = (key(1), key(2));
        let rule = DuplicateRule::LndEffective;
        assert_eq!(
            rule.resolve(&a, &b, Direction::Inbound, Direction::Outbound),
            Resolution::KeepExisting
        );
    }
}
