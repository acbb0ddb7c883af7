//! The primitives under both the handshake and the transport: ChaCha20-Poly1305
//! with BOLT 8's nonce layout, HKDF-SHA256 with up to three outputs, HMAC and
//! SHA-256.
//!
//! `ring` was chosen over RustCrypto's `chacha20poly1305` by measurement (see
//! BENCHMARKS.md at the workspace root). SHA-256's block function is
//! `bitcoin_hashes`' (re-exported by `bitcoin`; it uses the SHA extensions
//! where the CPU has them, like ring's, and its small engine state costs the
//! handshake less than ring's `digest` and `hmac` contexts). The padding and
//! HMAC are done here: a hash of a handshake's short input is padded in
//! place and handed to the engine in one call, and an HMAC key keeps its
//! two pad states, so that a constant key (the handshake's first chaining
//! key) is prepared once (BENCHMARKS.md, "Handshake against the floor").

use bitcoin::hashes::{sha256, HashEngine};
use bitcoin::secp256k1::ecdh::{shared_secret_point, SharedSecret};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use ring::aead::{self, Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
use zeroize::Zeroize;

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
    let (a, b, _) = hkdf(&HmacKey::new(salt), ikm, 2);
    (a, b)
}

/// HKDF-SHA256 with up to three 32-byte outputs (Noise's HKDF), the salt
/// given as its HMAC key (so a constant salt's key can be made once): 10
/// SHA-256 blocks for two outputs, 2 of them the salt's key.
pub(crate) fn hkdf(salt: &HmacKey, ikm: &[u8], outputs: usize) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let mut prk = salt.mac(ikm);
    let key = HmacKey::new(&prk);
    prk.zeroize();
    let mut input = [0u8; 33];
    let out1 = key.mac(&[1]);
    let out2 = if outputs >= 2 {
        input[..32].copy_from_slice(&out1);
        input[32] = 2;
        key.mac(&input)
    } else {
        [0; 32]
    };
    let out3 = if outputs >= 3 {
        input[..32].copy_from_slice(&out2);
        input[32] = 3;
        key.mac(&input)
    } else {
        [0; 32]
    };
    input.zeroize();
    (out1, out2, out3)
}

/// An HMAC-SHA256 key: the SHA-256 states after its inner and outer pad
/// blocks, so each MAC with it costs 2 blocks (for a message of up to 55
/// bytes) rather than 4.
#[derive(Clone)]
pub(crate) struct HmacKey {
    inner: Sha256Engine,
    outer: Sha256Engine,
}

impl HmacKey {
    /// The key `key` (hashed first if longer than a block, as HMAC says).
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut hashed = [0u8; 32];
        let key = if key.len() > BLOCK {
            hashed = sha256(key);
            &hashed[..]
        } else {
            key
        };
        let mut pad = [0x36u8; BLOCK];
        pad.iter_mut().zip(key).for_each(|(p, k)| *p ^= k);
        let mut inner = Sha256Engine::default();
        inner.input(&pad);
        // 0x36 ^ 0x5c turns each inner pad byte into the outer one.
        pad.iter_mut().for_each(|p| *p ^= 0x36 ^ 0x5c);
        let mut outer = Sha256Engine::default();
        outer.input(&pad);
        pad.zeroize();
        hashed.zeroize();
        HmacKey { inner, outer }
    }

    /// HMAC-SHA256 of `message` under this key.
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        let digest = finish(&mut inner, message);
        finish(&mut self.outer.clone(), &digest)
    }
}

/// SHA-256's block length.
const BLOCK: usize = 64;

/// The SHA-256 digest of what `engine` was given, then `tail`: the padding
/// is written here, so the engine gets whole blocks in as few calls as
/// possible (its own finish feeds the padding in three more pieces, each a
/// copy). `engine` must be at a block boundary.
pub(crate) fn finish(engine: &mut Sha256Engine, tail: &[u8]) -> [u8; 32] {
    debug_assert_eq!(engine.n_bytes_hashed() % BLOCK, 0);
    let bits = ((engine.n_bytes_hashed() + tail.len()) as u64) * 8;
    // Whole blocks of the tail go in directly; the rest is padded in a
    // 2-block buffer.
    let whole = tail.len() - tail.len() % BLOCK;
    if whole > 0 {
        engine.input(&tail[..whole]);
    }
    let rest = &tail[whole..];
    let mut buf = [0u8; 2 * BLOCK];
    let padded = if rest.len() + 9 > BLOCK {
        2 * BLOCK
    } else {
        BLOCK
    };
    buf[..rest.len()].copy_from_slice(rest);
    buf[rest.len()] = 0x80;
    buf[padded - 8..padded].copy_from_slice(&bits.to_be_bytes());
    // Not erased, like the engine's own buffer: a hash's input here is
    // transcript data or a key's digest already held by the caller; the
    // keys themselves (pads, `prk`) are erased where they are made.
    engine.input(&buf[..padded]);
    engine.midstate().to_byte_array()
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    finish(&mut Sha256Engine::default(), data)
}

/// BOLT 8's ECDH: SHA-256 of the compressed point `scalar · point`, the
/// value [`SharedSecret::new`] computes. secp256k1 is asked for the point
/// only and the hash is done here, with the SHA extensions where the CPU has
/// them (the library's own hash is portable C: ≈ 0.4% of a handshake).
///
/// The point and the padded block are erased here; the engine keeps a copy
/// of the block in its buffer (`bitcoin_hashes` has no zeroize), which is
/// overwritten with a block of zeros before the engine is dropped, one more
/// SHA-NI block (the point is as secret as the result).
pub(crate) fn ecdh(point: &PublicKey, scalar: &SecretKey) -> SharedSecret {
    // The compressed point (33 bytes) padded to one block.
    const LEN: usize = 33;
    let mut xy = shared_secret_point(point, scalar);
    let mut block = [0u8; BLOCK];
    block[0] = 0x02 | (xy[63] & 1);
    block[1..LEN].copy_from_slice(&xy[..32]);
    block[LEN] = 0x80;
    block[BLOCK - 8..].copy_from_slice(&((LEN as u64) * 8).to_be_bytes());
    let mut engine = Sha256Engine::default();
    engine.input(&block);
    let secret = SharedSecret::from_bytes(engine.midstate().to_byte_array());
    engine.input(&[0; BLOCK]);
    // Kept from being optimized away as a store nobody reads.
    std::hint::black_box(&engine);
    xy.zeroize();
    block.zeroize();
    secret
}

/// A SHA-256 engine (Noise's `HASH`).
pub(crate) type Sha256Engine = sha256::HashEngine;

#[cfg(test)]
mod tests {
    use bitcoin::hashes::{Hash, Hmac, HmacEngine};

    use super::*;

    /// The ECDH through the point and our hash is secp256k1's own, for
    /// keys of every kind of bit pattern (both parities of the result).
    #[test]
    fn ecdh_matches_shared_secret_new() {
        use bitcoin::secp256k1::Secp256k1;
        let secp = Secp256k1::new();
        let mut parities = [0usize; 2];
        for i in 1u8..=64 {
            let scalar = SecretKey::from_slice(&[i; 32]).unwrap();
            let other = SecretKey::from_slice(&[i.wrapping_mul(37) | 1; 32]).unwrap();
            let point = PublicKey::from_secret_key(&secp, &other);
            let expected = SharedSecret::new(&point, &scalar);
            assert_eq!(ecdh(&point, &scalar), expected);
            let product = point.mul_tweak(&secp, &scalar.into()).unwrap();
            parities[usize::from(product.serialize()[0] & 1)] += 1;
        }
        assert!(
            parities[0] > 0 && parities[1] > 0,
            "both parities: {parities:?}"
        );
    }

    /// The padded-in-place SHA-256 and HMAC agree with `bitcoin_hashes`'
    /// own at every length around the block boundaries, and for a key
    /// longer than a block.
    #[test]
    fn sha256_and_hmac_match_the_reference_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            let input = &data[..len];
            assert_eq!(sha256(input), sha256::Hash::hash(input).to_byte_array());
            for key in [&data[..32], &data[..64], &data[..100]] {
                let mut engine = HmacEngine::<sha256::Hash>::new(key);
                engine.input(input);
                let expected = Hmac::<sha256::Hash>::from_engine(engine).to_byte_array();
                assert_eq!(HmacKey::new(key).mac(input), expected, "len {len}");
            }
        }
        assert_eq!(
            sha256(b"abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad
            ]
        );
    }
}
