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
    /// When both connections are opening at once (the existing one is
    /// younger than [`Config::simultaneous_open_window`](crate::Config::simultaneous_open_window)),
    /// keep the one initiated by the node with the smaller public key
    /// (compared as 33-byte compressed keys): the rule lnd's code intends.
    /// Both ends apply it to the same two keys, so they keep the same
    /// connection and a simultaneous open converges at once. Otherwise the
    /// established connection wins, as lnd and LDK decide, so a peer that
    /// does not apply the key rule still agrees with us.
    #[default]
    SmallerKeyInitiates,
    /// lnd's effective behaviour: an existing connection in the other
    /// direction wins, a new one in the same direction replaces the old one.
    /// Two lnd-like nodes opening at once can each keep a different
    /// connection and lose both.
    LndEffective,
}

/// What to do with a new connection when one to the same peer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Keep the new connection and close the existing one.
    ReplaceExisting,
    /// Keep the existing connection and close the new one.
    KeepExisting,
}

impl DuplicateRule {
    /// Decides between an existing connection in direction `existing` and a
    /// new one in direction `new`, for a peer `remote` of node `local`.
    /// `simultaneous`: the existing connection is recent enough (within
    /// [`Config::simultaneous_open_window`](crate::Config::simultaneous_open_window))
    /// that both were opening at once.
    pub(crate) fn resolve(
        self,
        local: &PublicKey,
        remote: &PublicKey,
        existing: Direction,
        new: Direction,
        simultaneous: bool,
    ) -> Resolution {
        if existing == new {
            // The peer (or we) opened again in the same direction: the old
            // one is stale, as lnd decides.
            return Resolution::ReplaceExisting;
        }
        match self {
            // An established connection in the other direction wins, as in
            // lnd and LDK: a peer running either keeps its existing
            // connection and closes the new one, so replacing ours would
            // leave neither.
            Self::LndEffective => Resolution::KeepExisting,
            Self::SmallerKeyInitiates if !simultaneous => Resolution::KeepExisting,
            Self::SmallerKeyInitiates => {
                let preferred = preferred_direction(local, remote);
                if new == preferred {
                    Resolution::ReplaceExisting
                } else {
                    Resolution::KeepExisting
                }
            }
        }
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

    #[test]
    fn both_ends_keep_the_same_connection_under_the_smaller_key_rule() {
        let (a, b) = (key(1), key(2));
        let rule = DuplicateRule::SmallerKeyInitiates;
        // A dialed B (A: outbound, B: inbound) and B dialed A (A: inbound,
        // B: outbound). Whichever each side saw first, both keep the same one.
        for a_first in [Direction::Outbound, Direction::Inbound] {
            for b_first in [Direction::Outbound, Direction::Inbound] {
                let a_keeps = match rule.resolve(&a, &b, a_first, a_first.flip(), true) {
                    Resolution::ReplaceExisting => a_first.flip(),
                    Resolution::KeepExisting => a_first,
                };
                let b_keeps = match rule.resolve(&b, &a, b_first, b_first.flip(), true) {
                    Resolution::ReplaceExisting => b_first.flip(),
                    Resolution::KeepExisting => b_first,
                };
                // A's outbound is B's inbound: the same connection.
                assert_eq!(a_keeps, b_keeps.flip());
                assert_eq!(a_keeps, preferred_direction(&a, &b));
            }
        }
    }

    #[test]
    fn lnd_rule_keeps_the_existing_other_direction() {
        let (a, b) = (key(1), key(2));
        let rule = DuplicateRule::LndEffective;
        assert_eq!(
            rule.resolve(&a, &b, Direction::Inbound, Direction::Outbound, true),
            Resolution::KeepExisting
        );
        assert_eq!(
            rule.resolve(&a, &b, Direction::Outbound, Direction::Outbound, true),
            Resolution::ReplaceExisting
        );
    }

    #[test]
    fn an_established_connection_wins_outside_the_window() {
        let (a, b) = (key(1), key(2));
        let rule = DuplicateRule::SmallerKeyInitiates;
        for existing in [Direction::Outbound, Direction::Inbound] {
            assert_eq!(
                rule.resolve(&a, &b, existing, existing.flip(), false),
                Resolution::KeepExisting
            );
            assert_eq!(
                rule.resolve(&b, &a, existing, existing.flip(), false),
                Resolution::KeepExisting
            );
        }
    }
}
