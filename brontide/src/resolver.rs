//! A `snow` crypto resolver for BOLT 8: secp256k1 Diffie-Hellman, SHA-256 that
//! records the final chaining key, ChaCha20-Poly1305, and no randomness (the
//! ephemeral key is always handed in).
//!
//! The pieces snow owns talk back to the handshake through [`Shared`]: the
//! parsed public keys (so each is parsed once), how many DH operations ran
//! (to tell act three's bad ciphertext from its bad tag), and the keys of the
//! final split (snow never exposes the chaining key).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bitcoin::hashes::HashEngine;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};

use zeroize::Zeroize;

use crate::crypto::{self, AeadKey, HmacKey, Sha256Engine, TAG_LEN};
use crate::keys::{secp, NodeSigner, SignerError};

/// What the handshake hands snow as the local static private key: not a
/// valid secp256k1 key, so it can never be mistaken for one. The static
/// key's DH goes to the [`NodeSigner`]; its secret never reaches snow.
pub(crate) const SIGNER_KEY_MARKER: [u8; 32] = [0; 32];

/// Length of a compressed secp256k1 public key.
pub(crate) const PUBKEY_LEN: usize = 33;

/// The protocol name hashed into the handshake state.
pub(crate) const PROTOCOL_NAME: &str = "Noise_XK_secp256k1_ChaChaPoly_SHA256";
/// The prologue BOLT 8 mixes in.
pub(crate) const PROLOGUE: &[u8] = b"lightning";

/// The handshake's constant prefix, hashed once per process: every
/// handshake starts with `h = ck = SHA-256(protocol name)`, then mixes the
/// prologue, and its first HKDF has `ck` as its salt.
struct Prefix {
    /// SHA-256 of the protocol name.
    h0: [u8; 32],
    /// `SHA-256(h0 || prologue)`.
    h1: [u8; 32],
    /// `h0` as an HMAC key.
    ck0: HmacKey,
}

fn prefix() -> &'static Prefix {
    static PREFIX: OnceLock<Prefix> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let h0 = crypto::sha256(PROTOCOL_NAME.as_bytes());
        let mut with_prologue = h0.to_vec();
        with_prologue.extend_from_slice(PROLOGUE);
        Prefix {
            h0,
            h1: crypto::sha256(&with_prologue),
            ck0: HmacKey::new(&h0),
        }
    })
}

/// `SHA-256(h1 || key)`: the hash after the responder's static key (the
/// XK pre-message), for a responder's own key. A listener answers with one
/// key, so the last one is kept (one lock per responder instead of 2
/// SHA-256 blocks).
pub(crate) fn responder_prefix(key: &[u8; PUBKEY_LEN]) -> ([u8; PUBKEY_LEN], [u8; 32]) {
    static LAST: Mutex<Option<([u8; PUBKEY_LEN], [u8; 32])>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(entry) = last.filter(|(k, _)| k == key) {
        return entry;
    }
    let mut input = [0u8; 32 + PUBKEY_LEN];
    input[..32].copy_from_slice(&prefix().h1);
    input[32..].copy_from_slice(key);
    let entry = (*key, crypto::sha256(&input));
    *last = Some(entry);
    entry
}

/// The chaining key and the two cipher keys of the final split, erased
/// when dropped.
#[derive(Clone)]
pub(crate) struct SplitKeys {
    pub(crate) ck: [u8; 32],
    pub(crate) k1: [u8; 32],
    pub(crate) k2: [u8; 32],
}

impl Drop for SplitKeys {
    fn drop(&mut self) {
        self.ck.zeroize();
        self.k1.zeroize();
        self.k2.zeroize();
    }
}

/// Public keys one handshake parses at most: the remote's static key and
/// ephemeral key (the responder's own key is never parsed).
const PARSED_SLOTS: usize = 4;

/// State shared between one handshake and the resolver objects snow owns.
///
/// snow's objects must be `Send + Sync`, but one handshake runs on one
/// thread at a time, so nothing here is contended: each field is written
/// once or counted, without a lock (a `Mutex` cost two atomic operations on
/// each of ≈ 12 uses per side).
pub(crate) struct Shared {
    local: Box<dyn NodeSigner>,
    /// For a responder: its static key and the hash after it
    /// ([`responder_prefix`]).
    premessage: Option<([u8; PUBKEY_LEN], [u8; 32])>,
    /// Public keys already parsed, with their serialization.
    parsed: [OnceLock<([u8; PUBKEY_LEN], PublicKey)>; PARSED_SLOTS],
    /// DH operations run so far.
    dh_count: AtomicU32,
    /// Set at the split (the HKDF with empty input key material).
    split: OnceLock<SplitKeys>,
    /// The signer's error, if its ECDH failed (only on that failure).
    signer_error: Mutex<Option<SignerError>>,
}

impl Shared {
    /// `responder`: the handshake answers with `local`'s key, whose
    /// pre-message hash can then be reused.
    pub(crate) fn new(local: Box<dyn NodeSigner>, responder: bool) -> Arc<Self> {
        let premessage = responder.then(|| responder_prefix(&local.node_id().serialize()));
        Arc::new(Shared {
            local,
            premessage,
            parsed: Default::default(),
            dh_count: AtomicU32::new(0),
            split: OnceLock::new(),
            signer_error: Mutex::new(None),
        })
    }

    fn find(&self, bytes: &[u8; PUBKEY_LEN]) -> Option<PublicKey> {
        self.parsed
            .iter()
            .map_while(OnceLock::get)
            .find(|(b, _)| b == bytes)
            .map(|(_, key)| *key)
    }

    /// Records a key parsed from `bytes`, so DH does not parse it again
    /// (when the slots are full, DH parses it itself).
    pub(crate) fn remember(&self, bytes: &[u8; PUBKEY_LEN], key: &PublicKey) {
        if self.find(bytes).is_none() {
            if let Some(slot) = self.parsed.iter().find(|slot| slot.get().is_none()) {
                // A slot set meanwhile (never: one thread at a time) just
                // keeps its key.
                let _ = slot.set((*bytes, *key));
            }
        }
    }

    /// The parsed key for `bytes`, parsing (and remembering) it if needed.
    pub(crate) fn parsed(&self, bytes: &[u8]) -> Option<PublicKey> {
        let bytes: &[u8; PUBKEY_LEN] = bytes.get(..PUBKEY_LEN)?.try_into().ok()?;
        if let Some(key) = self.find(bytes) {
            return Some(key);
        }
        let key = PublicKey::from_slice(bytes).ok()?;
        self.remember(bytes, &key);
        Some(key)
    }

    pub(crate) fn dh_count(&self) -> u32 {
        self.dh_count.load(Ordering::Relaxed)
    }

    pub(crate) fn split(&self) -> Option<SplitKeys> {
        self.split.get().cloned()
    }

    fn signer_error(&self) -> MutexGuard<'_, Option<SignerError>> {
        // Plain data: consistent across a panic.
        self.signer_error.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The signer's error, if its ECDH failed (snow only says "DH failed").
    pub(crate) fn take_signer_error(&self) -> Option<SignerError> {
        self.signer_error().take()
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
            engine: Sha256Engine::default(),
            pending: [0; HASH_BUFFER],
            pending_len: 0,
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
        let mut shared_secret = match &self.key {
            DhKey::Unset => return Err(snow::Error::Dh),
            DhKey::Ephemeral(secret) => crypto::ecdh(&point, secret),
            DhKey::Signer => match self.shared.local.ecdh(&point) {
                Ok(secret) => secret,
                Err(e) => {
                    *self.shared.signer_error() = Some(e);
                    return Err(snow::Error::Dh);
                }
            },
        };
        let mut bytes = shared_secret.secret_bytes();
        shared_secret.non_secure_erase();
        let written = out.get_mut(..32).map(|out| out.copy_from_slice(&bytes));
        bytes.zeroize();
        written.ok_or(snow::Error::Dh)?;
        self.shared.dh_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Input a [`RecordingSha256`] holds before hashing it: more than any
/// hash of the handshake takes (at most 32 + 49 bytes).
const HASH_BUFFER: usize = 128;

/// SHA-256 whose HKDF records the split (the call with empty input key
/// material, which in Noise happens only in `Split()`).
///
/// Input is held and hashed at `result`, padded in place (one call to the
/// engine per hash instead of one per piece of input and three for the
/// padding), and the constant prefix ([`Prefix`], and a responder's
/// pre-message) is looked up instead of hashed.
struct RecordingSha256 {
    shared: Arc<Shared>,
    /// Whole blocks hashed so far (none for a handshake's short inputs).
    engine: Sha256Engine,
    pending: [u8; HASH_BUFFER],
    pending_len: usize,
}

impl RecordingSha256 {
    /// The digest of `data` (the whole input) if it is a known constant.
    fn known(&self, data: &[u8]) -> Option<[u8; 32]> {
        let prefix = prefix();
        if data == PROTOCOL_NAME.as_bytes() {
            return Some(prefix.h0);
        }
        let (h, rest) = data.split_at_checked(32)?;
        if h == prefix.h0 && rest == PROLOGUE {
            return Some(prefix.h1);
        }
        match &self.shared.premessage {
            Some((key, digest)) if h == prefix.h1 && rest == key => Some(*digest),
            _ => None,
        }
    }
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
        self.engine = Sha256Engine::default();
        self.pending_len = 0;
    }

    fn input(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = (HASH_BUFFER - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + n].copy_from_slice(&data[..n]);
            self.pending_len += n;
            data = &data[n..];
            if self.pending_len == HASH_BUFFER {
                self.engine.input(&self.pending);
                self.pending_len = 0;
            }
        }
    }

    fn result(&mut self, out: &mut [u8]) {
        let pending = &self.pending[..self.pending_len];
        let known = if self.engine.n_bytes_hashed() == 0 {
            self.known(pending)
        } else {
            None
        };
        let digest = known.unwrap_or_else(|| crypto::finish(&mut self.engine, pending));
        let n = out.len().min(32);
        out[..n].copy_from_slice(&digest[..n]);
        self.reset();
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
        let prefix = prefix();
        let fresh;
        let salt = if chaining_key == prefix.h0 {
            &prefix.ck0
        } else {
            fresh = HmacKey::new(chaining_key);
            &fresh
        };
        let (a, b, c) = crypto::hkdf(salt, input_key_material, outputs);
        for (out, value) in [(out1, a), (out2, b), (out3, c)].into_iter().take(outputs) {
            let n = out.len().min(32);
            out[..n].copy_from_slice(&value[..n]);
        }
        if input_key_material.is_empty() {
            let mut ck = [0u8; 32];
            let n = chaining_key.len().min(32);
            ck[..n].copy_from_slice(&chaining_key[..n]);
            // Noise splits once; a second split would keep the first keys.
            let _ = self.shared.split.set(SplitKeys { ck, k1: a, k2: b });
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
