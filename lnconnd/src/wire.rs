//! The part of BOLT 1 this program speaks: `init`, `ping` / `pong` (the
//! `liveness` crate's), and the rule for unknown message types (odd:
//! ignore; even: close).

use std::fmt;

use liveness::{Ping, Pong};

/// `init`.
pub(crate) const INIT: u16 = 16;
/// `error`.
pub(crate) const ERROR: u16 = 17;
/// `ping`.
pub(crate) const PING: u16 = liveness::PING_TYPE;
/// `pong`.
pub(crate) const PONG: u16 = liveness::PONG_TYPE;
/// `warning`.
pub(crate) const WARNING: u16 = 1;
/// The first custom message type (BOLT 1: types 32768..=65535 are for
/// experiments and applications).
pub(crate) const CUSTOM_MIN: u16 = 32768;

/// A message as this program understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// `init`: the peer's feature bits (global and local, merged as BOLT 9
    /// asks) and whatever TLVs follow, unread.
    Init { features: Vec<u8> },
    /// `ping`.
    Ping(Ping),
    /// `pong`.
    Pong(Pong),
    /// `error` or `warning`, with its text as sent.
    ErrorOrWarning { kind: u16, text: String },
    /// A message type we do not interpret.
    Other { kind: u16, payload: &'a [u8] },
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// Fewer than two bytes: no type.
    #[error("message shorter than its 2-byte type")]
    NoType,
    /// A known message type whose body is cut short.
    #[error("truncated {0} message")]
    Truncated(&'static str),
    /// A malformed `ping` or `pong`.
    #[error(transparent)]
    PingPong(#[from] liveness::Error),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl<'a> Message<'a> {
    /// Reads one decrypted message.
    pub(crate) fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let kind = u16_at(msg, 0).ok_or(WireError::NoType)?;
        let body = &msg[2..];
        match kind {
            INIT => {
                let trunc = || WireError::Truncated("init");
                let glen = usize::from(u16_at(body, 0).ok_or_else(trunc)?);
                let global = body.get(2..2 + glen).ok_or_else(trunc)?;
                let flen = usize::from(u16_at(body, 2 + glen).ok_or_else(trunc)?);
                let local = body.get(4 + glen..4 + glen + flen).ok_or_else(trunc)?;
                Ok(Message::Init {
                    features: merge_features(global, local),
                })
            }
            PING => Ok(Message::Ping(Ping::decode(msg)?)),
            PONG => Ok(Message::Pong(Pong::decode(msg)?)),
            ERROR | WARNING => {
                let len = usize::from(u16_at(body, 32).ok_or(WireError::Truncated("error"))?);
                let data = body
                    .get(34..34 + len)
                    .ok_or(WireError::Truncated("error"))?;
                Ok(Message::ErrorOrWarning {
                    kind,
                    text: String::from_utf8_lossy(data).into(),
                })
            }
            _ => Ok(Message::Other {
                kind,
                payload: body,
            }),
        }
    }
}

/// Global and local feature bit fields OR-ed together, right-aligned.
fn merge_features(global: &[u8], local: &[u8]) -> Vec<u8> {
    let len = global.len().max(local.len());
    let mut out = vec![0u8; len];
    for (src, off) in [(global, len - global.len()), (local, len - local.len())] {
        for (i, b) in src.iter().enumerate() {
            out[off + i] |= b;
        }
    }
    // Leading zero bytes say nothing.
    let first = out.iter().position(|&b| b != 0).unwrap_or(out.len());
    out.split_off(first)
}

/// Our `init`: no features required or offered, no TLVs.
pub(crate) fn init() -> Vec<u8> {
    let mut m = INIT.to_be_bytes().to_vec();
    m.extend_from_slice(&[0, 0, 0, 0]);
    m
}

/// A custom message of type `kind` carrying `payload`.
pub(crate) fn custom(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = kind.to_be_bytes().to_vec();
    m.extend_from_slice(payload);
    m
}

/// Feature bits as lowercase hex.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_init_parses_as_an_init_with_no_features() {
        assert_eq!(
            Message::parse(&init()),
            Ok(Message::Init { features: vec![] })
        );
    }

    #[test]
    fn init_features_are_merged_and_tlvs_skipped() {
        // globalfeatures 0x02, features 0x0100 | TLV bytes after.
        let m = [0, 16, 0, 1, 0x02, 0, 2, 0x01, 0x00, 1, 2, 3];
        assert_eq!(
            Message::parse(&m),
            Ok(Message::Init {
                features: vec![0x01, 0x02]
            })
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        assert_eq!(Message::parse(&[]), Err(WireError::NoType));
        assert_eq!(Message::parse(&[0]), Err(WireError::NoType));
        assert_eq!(
            Message::parse(&[0, 16, 0, 5, 1]),
            Err(WireError::Truncated("init"))
        );
        assert_eq!(
            Message::parse(&[0, 18, 0, 1, 0, 9]),
            Err(WireError::PingPong(liveness::Error::Truncated("ping")))
        );
        assert_eq!(
            Message::parse(&[0, 17, 1]),
            Err(WireError::Truncated("error"))
        );
    }

    #[test]
    fn ping_and_pong_are_read_by_the_liveness_crate() {
        let ping = Ping::new(3, 1);
        assert_eq!(Message::parse(&ping.encode()), Ok(Message::Ping(ping)));
        assert_eq!(
            Message::parse(&Pong::new(3).encode()),
            Ok(Message::Pong(Pong::new(3)))
        );
    }

    #[test]
    fn unknown_types_carry_their_payload() {
        let m = custom(32769, b"hi");
        assert_eq!(
            Message::parse(&m),
            Ok(Message::Other {
                kind: 32769,
                payload: b"hi"
            })
        );
    }
}
