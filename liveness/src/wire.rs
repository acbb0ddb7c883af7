//! BOLT 1 `ping` (type 18) and `pong` (type 19), whole messages with
//! their 2-byte type, as they are after BOLT 8 decryption.

use crate::Error;

/// The message type of `ping`.
pub const PING_TYPE: u16 = 18;
/// The message type of `pong`.
pub const PONG_TYPE: u16 = 19;
/// The most pong bytes a ping may ask for and still be answered: BOLT 1
/// says not to answer a ping whose `num_pong_bytes` is 65532 or more (a
/// ping can use that to say "no answer needed").
pub const MAX_ANSWERED_PONG_BYTES: u16 = 65531;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Checks the type; returns the body's `(u16 field, byteslen)` after
/// checking the message holds `byteslen` bytes. Extra bytes after them
/// are ignored, as BOLT 1 asks of data past what a reader expects.
fn read(msg: &[u8], kind: u16, name: &'static str) -> Result<(u16, u16), Error> {
    let got = u16_at(msg, 0).ok_or(Error::NoType)?;
    if got != kind {
        return Err(Error::WrongType {
            expected: kind,
            got,
        });
    }
    match kind {
        PING_TYPE => {
            let num_pong_bytes = u16_at(msg, 2).ok_or(Error::Truncated(name))?;
            let byteslen = u16_at(msg, 4).ok_or(Error::Truncated(name))?;
            if msg.len() < 6 + usize::from(byteslen) {
                return Err(Error::Truncated(name));
            }
            Ok((num_pong_bytes, byteslen))
        }
        _ => {
            let byteslen = u16_at(msg, 2).ok_or(Error::Truncated(name))?;
            if msg.len() < 4 + usize::from(byteslen) {
                return Err(Error::Truncated(name));
            }
            Ok((byteslen, byteslen))
        }
    }
}

/// A BOLT 1 `ping`: `num_pong_bytes` asked back, and `byteslen` bytes of
/// padding the receiver ignores.
///
/// Decoding reads only the two lengths: the padding is checked to be
/// there but never copied, and nothing is allocated from a length on the
/// wire. The answer ([`Ping::pong`]) is sized by `num_pong_bytes` alone and
/// is zeros, never the ping's padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    num_pong_bytes: u16,
    padding: u16,
}

impl Ping {
    /// A ping asking for `num_pong_bytes` back, with `padding` ignored
    /// bytes (zeros) of its own.
    pub fn new(num_pong_bytes: u16, padding: u16) -> Self {
        Ping {
            num_pong_bytes,
            padding,
        }
    }

    /// How many bytes the pong must carry.
    pub fn num_pong_bytes(&self) -> u16 {
        self.num_pong_bytes
    }

    /// How many ignored bytes the ping carries.
    pub fn padding(&self) -> u16 {
        self.padding
    }

    /// The message, type first: `6 + padding` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(6 + usize::from(self.padding));
        m.extend_from_slice(&PING_TYPE.to_be_bytes());
        m.extend_from_slice(&self.num_pong_bytes.to_be_bytes());
        m.extend_from_slice(&self.padding.to_be_bytes());
        m.resize(6 + usize::from(self.padding), 0);
        m
    }

    /// Reads a ping (type first).
    ///
    /// # Errors
    /// [`Error::NoType`], [`Error::WrongType`] or [`Error::Truncated`].
    pub fn decode(msg: &[u8]) -> Result<Self, Error> {
        let (num_pong_bytes, padding) = read(msg, PING_TYPE, "ping")?;
        Ok(Ping {
            num_pong_bytes,
            padding,
        })
    }

    /// The answer BOLT 1 requires: a pong of `num_pong_bytes`, or `None`
    /// when the ping asks for more than [`MAX_ANSWERED_PONG_BYTES`].
    /// ([`Liveness::on_ping`](crate::Liveness::on_ping) also bounds how
    /// many pong bytes a peer can make us send.)
    pub fn pong(&self) -> Option<Pong> {
        (self.num_pong_bytes <= MAX_ANSWERED_PONG_BYTES).then_some(Pong {
            len: self.num_pong_bytes,
        })
    }
}

/// A BOLT 1 `pong`: `byteslen` ignored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    len: u16,
}

impl Pong {
    /// A pong of `len` ignored bytes (zeros).
    pub fn new(len: u16) -> Self {
        Pong { len }
    }

    /// How many ignored bytes it carries (what the ping asked for).
    pub fn len(&self) -> u16 {
        self.len
    }

    /// Whether it carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message, type first: `4 + len` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(4 + usize::from(self.len));
        m.extend_from_slice(&PONG_TYPE.to_be_bytes());
        m.extend_from_slice(&self.len.to_be_bytes());
        m.resize(4 + usize::from(self.len), 0);
        m
    }

    /// Reads a pong (type first).
    ///
    /// # Errors
    /// [`Error::NoType`], [`Error::WrongType`] or [`Error::Truncated`].
    pub fn decode(msg: &[u8]) -> Result<Self, Error> {
        let (len, _) = read(msg, PONG_TYPE, "pong")?;
        Ok(Pong { len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_encodes_as_bolt1_says() {
        assert_eq!(Ping::new(3, 2).encode(), [0, 18, 0, 3, 0, 2, 0, 0]);
        assert_eq!(Pong::new(3).encode(), [0, 19, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn ping_asking_65532_or_more_is_not_answered() {
        assert_eq!(Ping::new(65531, 0).pong(), Some(Pong::new(65531)));
        assert_eq!(Ping::new(65532, 0).pong(), None);
        assert_eq!(Ping::new(u16::MAX, 0).pong(), None);
    }

    #[test]
    fn ping_with_padding_past_the_end_is_truncated() {
        assert_eq!(
            Ping::decode(&[0, 18, 0, 1, 0, 9, 0]),
            Err(Error::Truncated("ping"))
        );
        assert_eq!(Ping::decode(&[0, 18, 0]), Err(Error::Truncated("ping")));
        assert_eq!(
            Pong::decode(&[0, 19, 0, 2, 0]),
            Err(Error::Truncated("pong"))
        );
        assert_eq!(Pong::decode(&[0, 19]), Err(Error::Truncated("pong")));
    }

    #[test]
    fn wrong_type_and_no_type_are_typed() {
        assert_eq!(Ping::decode(&[0]), Err(Error::NoType));
        assert_eq!(
            Ping::decode(&Pong::new(0).encode()),
            Err(Error::WrongType {
                expected: PING_TYPE,
                got: PONG_TYPE
            })
        );
    }

    #[test]
    fn data_past_the_ignored_bytes_is_ignored() {
        let mut m = Ping::new(4, 1).encode();
        m.extend_from_slice(&[1, 2, 3]);
        assert_eq!(Ping::decode(&m), Ok(Ping::new(4, 1)));
    }
}
