//! `tokio_util::codec` adapters over the cipher states.
//!
//! [`MessageCodec`] gives a [`Framed`](tokio_util::codec::Framed) stream and
//! sink of messages. To read and write in different tasks, split the byte
//! stream and use [`MessageDecoder`] with a
//! [`FramedRead`](tokio_util::codec::FramedRead) and [`MessageEncoder`] with a
//! [`FramedWrite`](tokio_util::codec::FramedWrite); each owns its cipher state.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::cipher::{Decryptor, Encryptor, BODY_TAG_LEN, HEADER_LEN};
use crate::error::Error;

/// Encodes messages (any `AsRef<[u8]>`, at most 65535 bytes) as BOLT 8 frames.
#[derive(Debug)]
pub struct MessageEncoder {
    encryptor: Encryptor,
}

impl MessageEncoder {
    /// An encoder over `encryptor`.
    pub fn new(encryptor: Encryptor) -> Self {
        MessageEncoder { encryptor }
    }

    /// The cipher state back.
    pub fn into_inner(self) -> Encryptor {
        self.encryptor
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MessageEncoder {
    type Error = Error;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), Error> {
        self.encryptor.encrypt_into(item.as_ref(), dst)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum ReadState {
    Header,
    Body { len: usize },
}

/// Decodes BOLT 8 frames into messages.
///
/// The length header is authenticated as soon as its 18 bytes arrive, before
/// any of the body is read; the body is decrypted in place in the read buffer
/// and handed out without copying.
#[derive(Debug)]
pub struct MessageDecoder {
    decryptor: Decryptor,
    state: ReadState,
}

impl MessageDecoder {
    /// A decoder over `decryptor`.
    pub fn new(decryptor: Decryptor) -> Self {
        MessageDecoder {
            decryptor,
            state: ReadState::Header,
        }
    }

    /// The cipher state back.
    pub fn into_inner(self) -> Decryptor {
        self.decryptor
    }
}

impl Decoder for MessageDecoder {
    type Item = BytesMut;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        if let ReadState::Header = self.state {
            let Some(header) = src.get(..HEADER_LEN) else {
                src.reserve(HEADER_LEN - src.len());
                return Ok(None);
            };
            let mut header_bytes = [0u8; HEADER_LEN];
            header_bytes.copy_from_slice(header);
            let len = usize::from(self.decryptor.decrypt_header(&header_bytes)?);
            let _ = src.split_to(HEADER_LEN);
            self.state = ReadState::Body { len };
        }
        let ReadState::Body { len } = self.state else {
            return Ok(None);
        };
        let body_len = len + BODY_TAG_LEN;
        if src.len() < body_len {
            src.reserve(body_len - src.len());
            return Ok(None);
        }
        let mut body = src.split_to(body_len);
        self.decryptor.decrypt_body_in_place(&mut body)?;
        body.truncate(len);
        self.state = ReadState::Header;
        Ok(Some(body))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        match self.decode(src)? {
            Some(msg) => Ok(Some(msg)),
            None if src.is_empty() && matches!(self.state, ReadState::Header) => Ok(None),
            None => Err(Error::TruncatedFrame),
        }
    }
}

/// Encoder and decoder together, for a
/// [`Framed`](tokio_util::codec::Framed) over one byte stream.
#[derive(Debug)]
pub struct MessageCodec {
    encoder: MessageEncoder,
    decoder: MessageDecoder,
}

impl MessageCodec {
    /// A codec over an established session's cipher states.
    pub fn new(encryptor: Encryptor, decryptor: Decryptor) -> Self {
        MessageCodec {
            encoder: MessageEncoder::new(encryptor),
            decoder: MessageDecoder::new(decryptor),
        }
    }

    /// The two halves, to use in different tasks.
    pub fn split(self) -> (MessageEncoder, MessageDecoder) {
        (self.encoder, self.decoder)
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MessageCodec {
    type Error = Error;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), Error> {
        self.encoder.encode(item, dst)
    }
}

impl Decoder for MessageCodec {
    type Item = BytesMut;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        self.decoder.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        self.decoder.decode_eof(src)
    }
}
