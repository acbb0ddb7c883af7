//! The transport's cipher states: BOLT 8 message framing with key rotation.
//!
//! A message on the wire is `encrypted length (2 bytes, big-endian) || tag (16)`
//! followed by `encrypted body || tag (16)`. Each part uses one nonce; after a
//! key has been used 1000 times it rotates: `ck', k' = HKDF(ck, k)`, nonce 0.

use zeroize::Zeroize;

use crate::crypto::{hkdf2, AeadKey, TAG_LEN};
use crate::error::{DecryptError, MessageTooLarge};

/// The largest message body BOLT 8 can carry, in bytes.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// Length of the encrypted length header: 2 bytes plus a 16-byte tag.
pub const HEADER_LEN: usize = 2 + TAG_LEN;

/// Length of the tag after a message body.
pub const BODY_TAG_LEN: usize = TAG_LEN;

/// Uses of one key before it rotates.
const ROTATE_AFTER: u64 = 1000;

/// The bytes a message of `len` bytes takes on the wire.
pub const fn frame_len(len: usize) -> usize {
    HEADER_LEN + len + BODY_TAG_LEN
}

/// One direction's key, chaining key and nonce. The key bytes are erased
/// when it is dropped (ring's expanded key is ring's to keep).
struct CipherState {
    ck: [u8; 32],
    k: [u8; 32],
    key: AeadKey,
    nonce: u64,
}

impl Drop for CipherState {
    fn drop(&mut self) {
        self.ck.zeroize();
        self.k.zeroize();
    }
}

impl CipherState {
    fn new(ck: [u8; 32], k: [u8; 32]) -> Self {
        CipherState {
            ck,
            k,
            key: AeadKey::new(&k),
            nonce: 0,
        }
    }

    /// Advances the nonce after a use of the key, rotating after 1000 uses.
    fn advance(&mut self) {
        self.nonce += 1;
        if self.nonce == ROTATE_AFTER {
            let (ck, k) = hkdf2(&self.ck, &self.k);
            *self = CipherState::new(ck, k);
        }
    }

    fn seal(&mut self, in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self.key.seal(self.nonce, &[], in_out);
        self.advance();
        tag
    }

    fn open(&mut self, in_out: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), ()> {
        let result = self.key.open(self.nonce, &[], in_out, tag);
        self.advance();
        result
    }
}

/// The sending half of an established BOLT 8 session. Its state is boxed
/// (ring's key is over 500 bytes): a session and the connection that holds
/// it are moved several times between the handshake and the caller, and a
/// pointer moves cheaper than a key.
pub struct Encryptor {
    state: Box<CipherState>,
}

impl Encryptor {
    /// An encryptor from a chaining key and a sending key, nonce 0.
    ///
    /// The handshake builds these; this constructor exists for test vectors
    /// and in-memory test pairs.
    pub fn new(chaining_key: [u8; 32], sending_key: [u8; 32]) -> Self {
        Encryptor {
            state: Box::new(CipherState::new(chaining_key, sending_key)),
        }
    }

    /// Encrypts `msg` into `out`, which must be exactly
    /// [`frame_len(msg.len())`](frame_len) bytes long.
    ///
    /// # Errors
    /// [`MessageTooLarge`] if `msg` exceeds [`MAX_MESSAGE_LEN`]; nothing is
    /// written and the nonce does not move.
    ///
    /// # Panics
    /// If `out` has the wrong length (a caller bug, never peer input).
    pub fn encrypt_to_slice(&mut self, msg: &[u8], out: &mut [u8]) -> Result<(), MessageTooLarge> {
        let len = checked_len(msg)?;
        assert_eq!(
            out.len(),
            frame_len(msg.len()),
            "output must be frame_len(msg.len()) bytes"
        );
        out[..2].copy_from_slice(&len);
        out[HEADER_LEN..HEADER_LEN + msg.len()].copy_from_slice(msg);
        self.seal_frame(out);
        Ok(())
    }

    /// Encrypts `msg` and appends the frame to `out`.
    ///
    /// # Errors
    /// [`MessageTooLarge`] if `msg` exceeds [`MAX_MESSAGE_LEN`]; `out` and the
    /// nonce are unchanged.
    pub fn encrypt_into(
        &mut self,
        msg: &[u8],
        out: &mut bytes::BytesMut,
    ) -> Result<(), MessageTooLarge> {
        let len = checked_len(msg)?;
        let start = out.len();
        out.reserve(frame_len(msg.len()));
        out.extend_from_slice(&len);
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(msg);
        out.extend_from_slice(&[0; BODY_TAG_LEN]);
        self.seal_frame(&mut out[start..]);
        Ok(())
    }

    /// Encrypts `msg` into a new frame.
    ///
    /// # Errors
    /// [`MessageTooLarge`] if `msg` exceeds [`MAX_MESSAGE_LEN`].
    pub fn encrypt(&mut self, msg: &[u8]) -> Result<Vec<u8>, MessageTooLarge> {
        let len = checked_len(msg)?;
        let mut out = Vec::with_capacity(frame_len(msg.len()));
        out.extend_from_slice(&len);
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(msg);
        out.extend_from_slice(&[0; BODY_TAG_LEN]);
        self.seal_frame(&mut out);
        Ok(out)
    }

    /// Seals a frame laid out as `length (2) | space (16) | body | space (16)`
    /// with the plaintext length and body in place.
    fn seal_frame(&mut self, frame: &mut [u8]) {
        let (header, rest) = frame.split_at_mut(HEADER_LEN);
        let (len, header_tag) = header.split_at_mut(2);
        header_tag.copy_from_slice(&self.state.seal(len));
        let body_len = rest.len() - BODY_TAG_LEN;
        let (body, body_tag) = rest.split_at_mut(body_len);
        body_tag.copy_from_slice(&self.state.seal(body));
    }
}

/// The big-endian length of `msg`, if it fits a frame.
fn checked_len(msg: &[u8]) -> Result<[u8; 2], MessageTooLarge> {
    u16::try_from(msg.len())
        .map(u16::to_be_bytes)
        .map_err(|_| MessageTooLarge { len: msg.len() })
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("nonce", &self.state.nonce)
            .finish_non_exhaustive()
    }
}

/// The receiving half of an established BOLT 8 session (its state boxed,
/// as the [`Encryptor`]'s).
///
/// Reading is split in two, as the spec asks: decrypt the 18-byte header to
/// learn the length, then read and decrypt exactly `length + 16` body bytes.
/// After any failure the decryptor refuses further use.
pub struct Decryptor {
    state: Box<CipherState>,
    poisoned: bool,
}

impl Decryptor {
    /// A decryptor from a chaining key and a receiving key, nonce 0.
    ///
    /// The handshake builds these; this constructor exists for test vectors
    /// and in-memory test pairs.
    pub fn new(chaining_key: [u8; 32], receiving_key: [u8; 32]) -> Self {
        Decryptor {
            state: Box::new(CipherState::new(chaining_key, receiving_key)),
            poisoned: false,
        }
    }

    /// Decrypts a frame's 18-byte header and returns the body length (the
    /// body then takes `length + 16` bytes on the wire).
    ///
    /// # Errors
    /// [`DecryptError::BadLengthTag`] if the header does not authenticate.
    pub fn decrypt_header(&mut self, header: &[u8; HEADER_LEN]) -> Result<u16, DecryptError> {
        if self.poisoned {
            return Err(DecryptError::Poisoned);
        }
        let mut len = [header[0], header[1]];
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&header[2..]);
        if self.state.open(&mut len, &tag).is_err() {
            self.poisoned = true;
            return Err(DecryptError::BadLengthTag);
        }
        Ok(u16::from_be_bytes(len))
    }

    /// Decrypts a body in place: `body` is the `length + 16` bytes after the
    /// header; on success its first `length` bytes are the plaintext, which
    /// is returned.
    ///
    /// # Errors
    /// [`DecryptError::BadBodyTag`] if the body does not authenticate;
    /// [`DecryptError::WrongLength`] if `body` is shorter than a tag.
    pub fn decrypt_body_in_place<'a>(
        &mut self,
        body: &'a mut [u8],
    ) -> Result<&'a mut [u8], DecryptError> {
        if self.poisoned {
            return Err(DecryptError::Poisoned);
        }
        let Some(len) = body.len().checked_sub(BODY_TAG_LEN) else {
            self.poisoned = true;
            return Err(DecryptError::WrongLength {
                expected: BODY_TAG_LEN,
                got: body.len(),
            });
        };
        let (plain, tag) = body.split_at_mut(len);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        if self.state.open(plain, &tag_bytes).is_err() {
            self.poisoned = true;
            return Err(DecryptError::BadBodyTag);
        }
        Ok(plain)
    }

    /// Decrypts one whole frame (header and body) in place and returns the
    /// plaintext, a sub-slice of `frame`.
    ///
    /// # Errors
    /// As [`decrypt_header`](Self::decrypt_header) and
    /// [`decrypt_body_in_place`](Self::decrypt_body_in_place), and
    /// [`DecryptError::WrongLength`] if `frame` is not exactly one frame.
    pub fn decrypt_frame<'a>(&mut self, frame: &'a mut [u8]) -> Result<&'a mut [u8], DecryptError> {
        let Some(header) = frame.get(..HEADER_LEN) else {
            return Err(DecryptError::WrongLength {
                expected: HEADER_LEN,
                got: frame.len(),
            });
        };
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(header);
        let len = usize::from(self.decrypt_header(&header_bytes)?);
        if frame.len() != frame_len(len) {
            self.poisoned = true;
            return Err(DecryptError::WrongLength {
                expected: frame_len(len),
                got: frame.len(),
            });
        }
        self.decrypt_body_in_place(&mut frame[HEADER_LEN..])
    }
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("nonce", &self.state.nonce)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}
