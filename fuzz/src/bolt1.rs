//! BOLT 1 messages as `lnconnd` reads them from a peer (`init`, `ping`,
//! `pong`, `error`, `warning`, anything else), after decryption.
//!
//! `lnconnd` is a binary, so its parser (`lnconnd/src/wire.rs`) is
//! included here by path.

#[allow(dead_code, unreachable_pub)]
#[path = "../../lnconnd/src/wire.rs"]
mod wire;

use wire::{Message, WireError};

/// Parses one decrypted message. What must hold: nothing panics; an `init`
/// fit in the message and its merged features have no leading zero byte
/// and are no longer than the longer field; a `ping`'s answer is
/// withheld exactly when BOLT 1 says so, and otherwise is a `pong` of the
/// asked size that fits a BOLT 8 frame; a message of another type carries
/// the rest of the input untouched. Returns the message's kind, or the
/// error's text.
///
/// # Panics
/// If one of those breaks.
pub fn parse_message(data: &[u8]) -> Result<&'static str, String> {
    let parsed = Message::parse(data);
    match &parsed {
        Err(WireError::NoType) => assert!(data.len() < 2),
        Err(WireError::Truncated(_) | WireError::PingPong(_)) => {}
        Ok(Message::Init { features }) => {
            assert_ne!(features.first(), Some(&0), "a leading zero byte");
            let glen = usize::from(u16::from_be_bytes([data[2], data[3]]));
            let flen = usize::from(u16::from_be_bytes([data[4 + glen], data[5 + glen]]));
            assert!(data.len() >= 6 + glen + flen);
            assert!(features.len() <= glen.max(flen));
        }
        Ok(Message::Ping(ping)) => match ping.pong() {
            None => assert!(
                ping.num_pong_bytes() >= 65532,
                "an answerable ping was not answered"
            ),
            Some(pong) => {
                assert!(ping.num_pong_bytes() < 65532);
                let bytes = pong.encode();
                assert_eq!(bytes.len(), 4 + usize::from(ping.num_pong_bytes()));
                assert!(bytes.len() <= brontide::MAX_MESSAGE_LEN);
                assert_eq!(Message::parse(&bytes), Ok(Message::Pong(pong)));
            }
        },
        Ok(Message::Pong(_)) => {}
        Ok(Message::ErrorOrWarning { kind, .. }) => {
            assert!(*kind == wire::ERROR || *kind == wire::WARNING)
        }
        Ok(Message::Other { kind, payload }) => {
            assert!(![
                wire::INIT,
                wire::PING,
                wire::PONG,
                wire::ERROR,
                wire::WARNING
            ]
            .contains(kind));
            assert_eq!(*payload, &data[2..]);
            assert_eq!(Message::parse(&wire::custom(*kind, payload)), parsed);
        }
    }
    match parsed {
        Ok(Message::Init { features }) => {
            let _ = wire::Hex(&features).to_string();
            Ok("init")
        }
        Ok(Message::Ping(_)) => Ok("ping"),
        Ok(Message::Pong(_)) => Ok("pong"),
        Ok(Message::ErrorOrWarning { .. }) => Ok("error or warning"),
        Ok(Message::Other { .. }) => Ok("other"),
        Err(e) => Err(e.to_string()),
    }
}
