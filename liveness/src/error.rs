use std::time::Duration;

/// Everything that can go wrong here: a refused [`Config`](crate::Config),
/// a malformed `ping` or `pong`, or a peer found dead
/// ([`Action::Disconnect`](crate::Action::Disconnect)).
///
/// [`Error::is_peer_fault`] tells the peer's faults from local ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ping interval of zero (a ping at every poll).
    #[error("ping interval is zero")]
    ZeroPingInterval,
    /// A pong timeout of zero (every peer dead at once).
    #[error("pong timeout is zero")]
    ZeroPongTimeout,
    /// Asking for 65532 pong bytes or more: BOLT 1 tells the peer not to
    /// answer, so every ping would time out.
    #[error("a ping asking for {0} pong bytes is never answered")]
    UnanswerablePing(u16),
    /// Fewer than two bytes: no message type.
    #[error("message shorter than its 2-byte type")]
    NoType,
    /// The message is of another type than the one being decoded.
    #[error("message type {got}, expected {expected}")]
    WrongType {
        /// The type asked for (18: ping, 19: pong).
        expected: u16,
        /// The type the message has.
        got: u16,
    },
    /// A `ping` or `pong` shorter than its length fields say.
    #[error("truncated {0} message")]
    Truncated(&'static str),
    /// Nothing at all came from the peer within the pong timeout after a
    /// ping: the link is dead (or the peer is).
    #[error("no reply to a ping within {timeout:?}")]
    PongTimeout {
        /// The configured pong timeout.
        timeout: Duration,
    },
    /// The peer's pong does not carry the number of bytes our ping asked
    /// for (BOLT 1: it must).
    #[error("pong of {got} bytes, {expected} asked for")]
    PongLength {
        /// What the ping asked for.
        expected: u16,
        /// What the pong carried.
        got: u16,
    },
}

impl Error {
    /// Whether the peer (or the link to it) is at fault, not our own
    /// configuration.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            Error::ZeroPingInterval | Error::ZeroPongTimeout | Error::UnanswerablePing(_)
        )
    }
}
