//! A `snow` crypto resolver for BOLT 8: secp256k1 Diffie-Hellman, SHA-256 that
//! records the final chaining key, ChaCha20-Poly1305, and no randomness (the
//! ephemeral key is always handed in).
//!
//! The pieces snow owns talk back to the handshake through [`Shared`]: the
//! parsed public keys (so each is parsed once), how many DH operations ran
//! (to tell act three's bad ciphertext from its bad tag), and the keys of the
//! final split (snow never exposes the chaining key).

use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::hashes::HashEngine;
use bitcoin::secp256k1::ecdh::SharedSecret;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};

use zeroize::Zeroize;

use crate::crypto::{self, AeadKey, Sha256Engine, TAG_LEN};
use crate::keys::{secp, NodeSigner, SignerError};

/// What the handshake hands snow as the local static private key: not a
/// valid secp256k1 key, so it can never be mistaken for one. The static
/// key's DH goes to the [`NodeSigner`]; its secret never reaches snow.
pub(crate) const SIGNER_KEY_MARKER: [u8; 32] = [0; 32];

/// Length of a compressed secp256k1 public key.
pub(crate) const PUBKEY_LEN: usize = 33;

/// The chaining key and the two cipher keys of the final split.
#[derive(Clone, Copy)]
pub(crate) struct SplitKeys {
    pub(crate) ck: [u8; 32],
    pub(crate) k1: [u8; 32],
    pub(crate) k2: [u8; 32],
}

#[derive(Default)]
struct State {
    /// Public keys already parsed, with their serialization.
    parsed: Vec<([u8; PUBKEY_LEN], PublicKey)>,
    /// DH operations run so far.
    dh_count: u32,
    /// Set at the split (the HKDF with empty input key material).
    split: Option<SplitKeys>,
    /// The signer's error, if its ECDH failed.
    signer_error: Option<SignerError>,
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(split) = &mut self.split {
            split.ck.zeroize();
            split.k1.zeroize();
            split.k2.zeroize();
        }
    }
}

/// State shared between one handshake and the resolver objects snow owns.
pub(crate) struct Shared {
    local: Box<dyn NodeSigner>,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(local: Box<dyn NodeSigner>) -> Arc<Self> {
        Arc::new(Shared {
            local,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another holder panicked mid-update; the
        // state is plain data, so keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an already parsed key so DH does not parse it again.
    pub(crate) fn remember(&self, key: &PublicKey) {
        let bytes = key.serialize();
        let mut state = self.lock();
        if !state.parsed.iter().any(|(b, _)| *b == bytes) {
            state.parsed.push((bytes, *key));
        }
    }

    /// The parsed key for `bytes`, parsing (and remembering) it if needed.
    pub(crate) fn parsed(&self, bytes: &[u8]) -> Option<PublicKey> {
        let bytes: &[u8; PUBKEY_LEN] = bytes.get(..PUBKEY_LEN)?.try_into().ok()?;
        let mut state = self.lock();
        if let Some((_, key)) = state.parsed.iter().find(|(b, _)| b == bytes) {
            return Some(*key);
        }
        let key = PublicKey::from_slice(bytes).ok()?;
        state.parsed.push((*bytes, key));
        Some(key)
    }

    pub(crate) fn dh_count(&self) -> u32 {
        self.lock().dh_count
    }

    pub(crate) fn split(&self) -> Option<SplitKeys> {
        self.lock().split
    }

    /// The signer's error, if its ECDH failed (snow only says "DH failed").
    pub(crate) fn take_signer_error(&self) -> Option<SignerError> {
        self.lock().signer_error.take()
    }
}

/// The resolver handed to snow's builder.
pub(crate) struct Resolver {
    shared: Arc<Shared>,
}

impl Resolver {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Resolver { shared }
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(NoRandom))
    }

    fn resolve_dh(&self, _choice: &DHChoice) -> Option<Box<dyn Dh>> {
        Some(Box::new(SecpDh {
            shared: Arc::clone(&self.shared),
            key: DhKey::Unset,
            secret_bytes: [0; 32],
            public: [0; PUBKEY_LEN],
        }))
    }

    fn resolve_hash(&self, _choice: &HashChoice) -> Option<Box<dyn Hash>> {
        Some(Box::new(RecordingSha256 {
            shared: Arc::clone(&self.shared),
            ctx: Sha256Engine::default(),
        }))
    }

    fn resolve_cipher(&self, _choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        Some(Box::new(ChaChaPoly { key: None }))
    }
}

/// Randomness is never drawn: ephemeral keys are always set explicitly.
struct NoRandom;

impl Random for NoRandom {
    fn try_fill_bytes(&mut self, _dest: &mut [u8]) -> Result<(), snow::Error> {
        Err(snow::Error::Rng)
    }
}

/// Which key a [`SecpDh`] holds.
enum DhKey {
    /// No valid key was set: every DH fails.
    Unset,
    /// The node's static key: DH goes to the signer.
    Signer,
    /// An ephemeral key.
    Ephemeral(SecretKey),
}

/// secp256k1 ECDH as BOLT 8 defines it.
struct SecpDh {
    shared: Arc<Shared>,
    key: DhKey,
    /// What `privkey` returns: the ephemeral key's bytes (zero for the
    /// signer's key, which is never here).
    secret_bytes: [u8; 32],
    public: [u8; PUBKEY_LEN],
}

impl Drop for SecpDh {
    fn drop(&mut self) {
        self.secret_bytes.zeroize();
        if let DhKey::Ephemeral(secret) = &mut self.key {
            secret.non_secure_erase();
        }
    }
}

impl Dh for SecpDh {
    fn name(&self) -> &'static str {
        "secp256k1"
    }

    fn pub_len(&self) -> usize {
        PUBKEY_LEN
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn dh_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        if privkey == SIGNER_KEY_MARKER {
            self.key = DhKey::Signer;
            self.secret_bytes = [0; 32];
            self.public = self.shared.local.node_id().serialize();
            return;
        }
        // Ephemeral keys are validated before they reach snow; an invalid
        // one leaves the key unset, so any DH with it fails.
        let Ok(secret) = SecretKey::from_slice(privkey) else {
            self.key = DhKey::Unset;
            return;
        };
        self.public = PublicKey::from_secret_key(secp(), &secret).serialize();
        self.secret_bytes = secret.secret_bytes();
        self.key = DhKey::Ephemeral(secret);
    }

    fn generate(&mut self, _rng: &mut dyn Random) -> Result<(), snow::Error> {
        Err(snow::Error::Rng)
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.secret_bytes
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        // snow hands over its whole key buffer; the key is the first 33 bytes.
        let point = self.shared.parsed(pubkey).ok_or(snow::Error::Dh)?;
        let shared_secret = match &self.key {
            DhKey::Unset => return Err(snow::Error::Dh),
            DhKey::Ephemeral(secret) => SharedSecret::new(&point, secret),
            DhKey::Signer => match self.shared.local.ecdh(&point) {
                Ok(secret) => secret,
                Err(e) => {
                    self.shared.lock().signer_error = Some(e);
                    return Err(snow::Error::Dh);
                }
            },
        };
        out.get_mut(..32)
            .ok_or(snow::Error::Dh)?
            .copy_from_slice(&shared_secret.secret_bytes());
        self.shared.lock().dh_count += 1;
        Ok(())
    }
}

/// SHA-256 whose HKDF records the split (the call with empty input key
/// material, which in Noise happens only in `Split()`).
struct RecordingSha256 {
    shared: Arc<Shared>,
    ctx: Sha256Engine,
}

impl Hash for RecordingSha256 {
    fn name(&self) -> &'static str {
        "SHA256"
    }

    fn block_len(&self) -> usize {
        64
    }

    fn hash_len(&self) -> usize {
        32
    }

    fn reset(&mut self) {
        self.ctx = Sha256Engine::default();
    }

    fn input(&mut self, data: &[u8]) {
        self.ctx.input(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        let digest = crypto::sha256_finish(std::mem::take(&mut self.ctx));
        let n = out.len().min(32);
        out[..n].copy_from_slice(&digest[..n]);
    }

    fn hkdf(
        &mut self,
        chaining_key: &[u8],
        input_key_material: &[u8],
        outputs: usize,
        out1: &mut [u8],
        out2: &mut [u8],
        out3: &mut [u8],
    ) {
        let (a, b, c) = crypto::hkdf(chaining_key, input_key_material, outputs);
        for (out, value) in [(out1, a), (out2, b), (out3, c)].into_iter().take(outputs) {
            let n = out.len().min(32);
            out[..n].copy_from_slice(&value[..n]);
        }
        if input_key_material.is_empty() {
            let mut ck = [0u8; 32];
            let n = chaining_key.len().min(32);
            ck[..n].copy_from_slice(&chaining_key[..n]);
            self.shared.lock().split = Some(SplitKeys { ck, k1: a, k2: b });
        }
    }
}

/// ChaCha20-Poly1305 for the handshake's payloads.
///
/// Holds the raw key and expands it into ring's (much larger) key only when
/// it is used: each handshake key seals or opens one payload, and the two
/// keys snow derives at its final split are never used (the session's
/// cipher states come from the recorded split instead).
struct ChaChaPoly {
    key: Option<[u8; 32]>,
}

impl Drop for ChaChaPoly {
    fn drop(&mut self) {
        if let Some(key) = &mut self.key {
            key.zeroize();
        }
    }
}

impl Cipher for ChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; 32]) {
        if let Some(old) = &mut self.key {
            old.zeroize();
        }
        self.key = Some(*key);
    }

    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let Some(key) = &self.key else {
            // snow encrypts only after setting a key; write nothing otherwise.
            return 0;
        };
        let key = AeadKey::new(key);
        let len = plaintext.len();
        out[..len].copy_from_slice(plaintext);
        let tag = key.seal(nonce, authtext, &mut out[..len]);
        out[len..len + TAG_LEN].copy_from_slice(&tag);
        len + TAG_LEN
    }

    fn decrypt(
        &self,
        nonce: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let key = AeadKey::new(self.key.as_ref().ok_or(snow::Error::Decrypt)?);
        let len = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(snow::Error::Decrypt)?;
        let out = out.get_mut(..len).ok_or(snow::Error::Decrypt)?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&ciphertext[len..]);
        out.copy_from_slice(&ciphertext[..len]);
        if key.open(nonce, authtext, out, &tag).is_err() {
            out.fill(0);
            return Err(snow::Error::Decrypt);
        }
        Ok(len)
    }
}
