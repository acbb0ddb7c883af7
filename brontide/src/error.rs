//! Error types: [`HandshakeError`] for the sans-IO handshake, [`DecryptError`]
//! for the message framing, and [`Error`] for everything that does I/O.

use std::fmt;
use std::io;

/// One of the three acts of the BOLT 8 handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Act {
    /// Act one: initiator to responder, 50 bytes.
    One,
    /// Act two: responder to initiator, 50 bytes.
    Two,
    /// Act three: initiator to responder, 66 bytes.
    Three,
}

impl Act {
    /// The act's number as the spec writes it (1, 2 or 3).
    pub fn number(self) -> u8 {
        match self {
            Act::One => 1,
            Act::Two => 2,
            Act::Three => 3,
        }
    }

    /// The act's exact length on the wire, version byte included.
    pub fn wire_len(self) -> usize {
        match self {
            Act::One | Act::Two => crate::handshake::ACT_ONE_LEN,
            Act::Three => crate::handshake::ACT_THREE_LEN,
        }
    }
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Act::One => f.write_str("act one"),
            Act::Two => f.write_str("act two"),
            Act::Three => f.write_str("act three"),
        }
    }
}

/// What was wrong with an act the peer sent (the spec's failure labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PeerFault {
    /// The act was shorter (or longer) than the spec requires (`READ_FAILED`).
    #[error("expected {expected} bytes, got {got}")]
    ReadFailed {
        /// Bytes the act must have.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The version byte was not 0 (`BAD_VERSION`).
    #[error("bad version {0}")]
    BadVersion(u8),
    /// A public key did not parse as a point on secp256k1 (`BAD_PUBKEY`).
    #[error("bad public key")]
    BadPubkey,
    /// An authentication tag did not verify (`BAD_TAG`).
    #[error("bad tag")]
    BadTag,
    /// Act three: the encrypted static key did not decrypt (`BAD_CIPHERTEXT`).
    #[error("bad ciphertext")]
    BadCiphertext,
}

impl PeerFault {
    /// The spec's label without the act prefix, e.g. `BAD_VERSION`.
    pub fn label(&self) -> &'static str {
        match self {
            PeerFault::ReadFailed { .. } => "READ_FAILED",
            PeerFault::BadVersion(_) => "BAD_VERSION",
            PeerFault::BadPubkey => "BAD_PUBKEY",
            PeerFault::BadTag => "BAD_TAG",
            PeerFault::BadCiphertext => "BAD_CIPHERTEXT",
        }
    }
}

/// A handshake step failed.
///
/// Peer faults (the other node sent something wrong) are kept apart from
/// local faults (this process could not do its part), so callers can tell a
/// bad peer from a bad environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's act was invalid.
    #[error("{act}: {fault}")]
    Peer {
        /// The act in which the fault was detected.
        act: Act,
        /// What was wrong with it.
        fault: PeerFault,
    },
    /// This side could not complete its step (no randomness, or an internal
    /// error of the Noise state machine).
    #[error("{act}: local failure: {reason}")]
    Local {
        /// The act being produced or consumed.
        act: Act,
        /// A short description.
        reason: &'static str,
    },
}

impl HandshakeError {
    /// The act in which the error happened.
    pub fn act(&self) -> Act {
        match self {
            HandshakeError::Peer { act, .. } | HandshakeError::Local { act, .. } => *act,
        }
    }

    /// The peer's fault, if the peer is to blame.
    pub fn peer_fault(&self) -> Option<PeerFault> {
        match self {
            HandshakeError::Peer { fault, .. } => Some(*fault),
            HandshakeError::Local { .. } => None,
        }
    }

    /// The spec's label for a peer fault, e.g. `ACT2_BAD_VERSION`; `None` for
    /// local faults.
    pub fn code(&self) -> Option<String> {
        self.peer_fault()
            .map(|fault| format!("ACT{}_{}", self.act().number(), fault.label()))
    }

    pub(crate) fn peer(act: Act, fault: PeerFault) -> Self {
        HandshakeError::Peer { act, fault }
    }
}

/// A message frame failed to authenticate: the peer (or the path to it)
/// corrupted the stream. The decryptor must not be used afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The 18-byte length header did not authenticate.
    #[error("bad tag on message length")]
    BadLengthTag,
    /// The message body did not authenticate.
    #[error("bad tag on message body")]
    BadBodyTag,
    /// The buffer handed in has the wrong size for the frame part.
    #[error("frame part has {got} bytes, expected {expected}")]
    WrongLength {
        /// The size the frame part must have.
        expected: usize,
        /// The size given.
        got: usize,
    },
    /// A previous frame failed to decrypt, so this decryptor is unusable.
    #[error("decryptor already failed")]
    Poisoned,
}

/// A message longer than [`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN) was
/// handed to an encryptor. Nothing was written and the cipher state is
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message of {len} bytes exceeds the 65535-byte maximum")]
pub struct MessageTooLarge {
    /// The length of the refused message.
    pub len: usize,
}

/// Errors of the I/O layer: dialing, accepting and the message codec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's cancellation token fired.
    #[error("cancelled")]
    Cancelled,
    /// The connect did not complete within the connect timeout.
    #[error("connect timed out")]
    ConnectTimedOut,
    /// The connect failed.
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    /// The peer did not complete an act within the per-act timeout.
    #[error("handshake timed out in {0}")]
    HandshakeTimedOut(Act),
    /// The handshake failed (see the act and the failure inside).
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// Reading or writing an act failed at the socket.
    #[error("handshake i/o failed in {act}: {source}")]
    HandshakeIo {
        /// The act being read or written.
        act: Act,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// A message frame failed to authenticate.
    #[error("decrypt failed: {0}")]
    Decrypt(#[from] DecryptError),
    /// A message was too large to send.
    #[error(transparent)]
    MessageTooLarge(#[from] MessageTooLarge),
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
    /// A socket error after the handshake.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// `true` if the other node is to blame (it sent invalid handshake data or
    /// a frame that does not authenticate), `false` for local faults,
    /// timeouts, cancellation and network errors.
    pub fn is_peer_fault(&self) -> bool {
        match self {
            Error::Handshake(e) => e.peer_fault().is_some(),
            Error::Decrypt(_) | Error::TruncatedFrame => true,
            _ => false,
        }
    }
}
