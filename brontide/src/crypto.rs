//! The primitives under both the handshake and the transport: ChaCha20-Poly1305
//! with BOLT 8's nonce layout, HKDF-SHA256 with two outputs, SHA-256.
//!
//! `ring` was chosen over RustCrypto's `chacha20poly1305` by measurement (see
//! BENCHMARKS.md at the workspace root). SHA-256 and HMAC are the
//! `bitcoin_hashes` ones (re-exported by `bitcoin`): they use the SHA
//! extensions where the CPU has them, like ring's, and their small,
//! copy-cheap engine states cost the handshake less than ring's `digest` and
//! `hmac` contexts (BENCHMARKS.md, "Handshake profile").

use bitcoin::hashes::{sha256, Hash, HashEngine, Hmac, HmacEngine};
use ring::aead::{self, Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};

/// Length of a ChaCha20-Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;

/// A ChaCha20-Poly1305 key, ready to use.
pub(crate) struct AeadKey(LessSafeKey);

impl AeadKey {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        // Invariant: `UnboundKey::new` fails only on a key of the wrong length,
        // and ChaCha20-Poly1305 keys are 32 bytes, as the type guarantees.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte chacha key");
        AeadKey(LessSafeKey::new(unbound))
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub(crate) fn seal(&self, nonce: u64, ad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce96(nonce), Aad::from(ad), in_out)
            // Invariant: ring refuses only inputs over 256 GiB; ours are at most 64 KiB.
            .expect("chacha20-poly1305 input within ring's limit");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypts `in_out` in place if `tag` authenticates it.
    pub(crate) fn open(
        &self,
        nonce: u64,
        ad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        self.0
            .open_in_place_separate_tag(nonce96(nonce), Aad::from(ad), Tag::from(*tag), in_out, 0..)
            .map(|_| ())
            .map_err(|_| ())
    }
}

/// BOLT 8 / Noise nonce: 4 zero bytes then the counter, little-endian.
fn nonce96(n: u64) -> Nonce {
    let mut bytes = [0u8; aead::NONCE_LEN];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// HKDF-SHA256 with `salt` as the salt, empty info, two 32-byte outputs.
pub(crate) fn hkdf2(salt: &[u8], ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let (a, b, _) = hkdf(salt, ikm, 2);
    (a, b)
}

/// HKDF-SHA256 with up to three 32-byte outputs (Noise's HKDF).
pub(crate) fn hkdf(salt: &[u8], ikm: &[u8], outputs: usize) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let mut extract = HmacEngine::<sha256::Hash>::new(salt);
    extract.input(ikm);
    let prk = Hmac::<sha256::Hash>::from_engine(extract);
    let prk = HmacEngine::<sha256::Hash>::new(prk.as_byte_array());
    let expand = |previous: &[u8], counter: u8| {
        let mut engine = prk.clone();
        engine.input(previous);
        engine.input(&[counter]);
        Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
    };
    let out1 = expand(&[], 1);
    let out2 = if outputs >= 2 {
        expand(&out1, 2)
    } else {
        [0; 32]
    };
    let out3 = if outputs >= 3 {
        expand(&out2, 3)
    } else {
        [0; 32]
    };
    (out1, out2, out3)
}

/// A SHA-256 engine (Noise's `HASH`).
pub(crate) type Sha256Engine = sha256::HashEngine;

/// The digest of everything `engine` was given.
pub(crate) fn sha256_finish(engine: Sha256Engine) -> [u8; 32] {
    sha256::Hash::from_engine(engine).to_byte_array()
}
