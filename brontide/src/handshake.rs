//! The sans-IO BOLT 8 handshake as a chain of consumed states.
//!
//! Initiator: [`Initiator`] → `act_one()` → [`AwaitingActTwo`] →
//! `read_act_two()` → act three bytes and a [`Session`].
//! Responder: [`Responder`] → `read_act_one()` → act two bytes and
//! [`AwaitingActThree`] → `read_act_three()` → [`Session`].
//!
//! `snow` runs Noise XK through the resolver in `resolver.rs`; the version
//! byte is written and checked here, outside snow.

use std::sync::{Arc, OnceLock};

use bitcoin::secp256k1::{PublicKey, SecretKey};
use ring::rand::{SecureRandom, SystemRandom};
use snow::params::NoiseParams;
use snow::{Builder, HandshakeState};
use zeroize::Zeroize;

use crate::cipher::{Decryptor, Encryptor};
use crate::error::{Act, HandshakeError, PeerFault};
use crate::keys::NodeSigner;
use crate::resolver::{Resolver, Shared, PROLOGUE, PROTOCOL_NAME, PUBKEY_LEN, SIGNER_KEY_MARKER};

/// Length of act one on the wire.
pub const ACT_ONE_LEN: usize = 50;
/// Length of act two on the wire.
pub const ACT_TWO_LEN: usize = 50;
/// Length of act three on the wire.
pub const ACT_THREE_LEN: usize = 66;

/// The only handshake version BOLT 8 defines.
const VERSION: u8 = 0;

fn params() -> NoiseParams {
    static PARAMS: OnceLock<NoiseParams> = OnceLock::new();
    PARAMS
        .get_or_init(|| {
            // snow parses only names it knows; build from the 25519 variant
            // (the resolver ignores the DH choice) and hash the real name.
            let mut params: NoiseParams = "Noise_XK_25519_ChaChaPoly_SHA256"
                .parse()
                // Invariant: a constant, valid Noise protocol name.
                .expect("valid noise name");
            params.name = PROTOCOL_NAME.to_owned();
            params
        })
        .clone()
}

fn random_ephemeral(act: Act) -> Result<SecretKey, HandshakeError> {
    let rng = SystemRandom::new();
    // A uniformly random 32-byte string is a valid key except with
    // probability about 2^-128; retry a few times for form's sake.
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes).map_err(|_| HandshakeError::Local {
            act,
            reason: "system randomness unavailable",
        })?;
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err(HandshakeError::Local {
        act,
        reason: "no valid ephemeral key drawn",
    })
}

fn local(act: Act) -> impl Fn(snow::Error) -> HandshakeError {
    move |_| HandshakeError::Local {
        act,
        reason: "noise state machine error",
    }
}

/// Checks an act's length and version byte.
fn check_act(act: Act, bytes: &[u8]) -> Result<(), HandshakeError> {
    if bytes.len() != act.wire_len() {
        return Err(HandshakeError::peer(
            act,
            PeerFault::ReadFailed {
                expected: act.wire_len(),
                got: bytes.len(),
            },
        ));
    }
    if bytes[0] != VERSION {
        return Err(HandshakeError::peer(act, PeerFault::BadVersion(bytes[0])));
    }
    Ok(())
}

/// Parses the ephemeral key at the start of act one or two and hands it to
/// the resolver, so snow never sees an invalid key and DH never re-parses it.
fn parse_ephemeral(act: Act, bytes: &[u8], shared: &Shared) -> Result<(), HandshakeError> {
    let wire: &[u8; PUBKEY_LEN] = bytes[1..1 + PUBKEY_LEN]
        .try_into()
        .map_err(|_| HandshakeError::peer(act, PeerFault::BadPubkey))?;
    let key =
        PublicKey::from_slice(wire).map_err(|_| HandshakeError::peer(act, PeerFault::BadPubkey))?;
    shared.remember(wire, &key);
    Ok(())
}

fn map_read_error(act: Act, err: snow::Error) -> HandshakeError {
    match err {
        snow::Error::Decrypt => HandshakeError::peer(act, PeerFault::BadTag),
        snow::Error::Dh => HandshakeError::peer(act, PeerFault::BadPubkey),
        other => local(act)(other),
    }
}

struct Core {
    /// Boxed: snow's state is large, and every act moves the `Core` into
    /// the next state type.
    hs: Box<HandshakeState>,
    shared: Arc<Shared>,
}

impl Core {
    fn build<L: NodeSigner + Clone>(
        local_keys: &L,
        remote: Option<&PublicKey>,
        ephemeral: &SecretKey,
    ) -> Result<Core, HandshakeError> {
        let act = if remote.is_some() { Act::One } else { Act::Two };
        let shared = Shared::new(Box::new(local_keys.clone()), remote.is_none());
        // The static key's DH goes to the signer: snow gets a marker.
        let secret = SIGNER_KEY_MARKER;
        let mut ephemeral = ephemeral.secret_bytes();
        let remote_bytes = remote.map(|key| {
            let bytes = key.serialize();
            shared.remember(&bytes, key);
            bytes
        });
        let builder =
            Builder::with_resolver(params(), Box::new(Resolver::new(Arc::clone(&shared))))
                .prologue(PROLOGUE)
                .map_err(local(act))?
                .local_private_key(&secret)
                .map_err(local(act))?
                .fixed_ephemeral_key_for_testing_only(&ephemeral);
        let built = match &remote_bytes {
            Some(rs) => builder
                .remote_public_key(rs)
                .map_err(local(act))?
                .build_initiator(),
            None => builder.build_responder(),
        };
        ephemeral.zeroize();
        let hs = Box::new(built.map_err(local(act))?);
        Ok(Core { hs, shared })
    }

    /// The signer's failure, if the last DH that failed was the signer's.
    fn signer_failed(&self, act: Act) -> Option<HandshakeError> {
        self.shared
            .take_signer_error()
            .map(|error| HandshakeError::Signer { act, error })
    }

    fn write<const N: usize>(&mut self, act: Act) -> Result<[u8; N], HandshakeError> {
        let mut out = [0u8; N];
        out[0] = VERSION;
        let n = match self.hs.write_message(&[], &mut out[1..]) {
            Ok(n) => n,
            Err(e) => return Err(self.signer_failed(act).unwrap_or_else(|| local(act)(e))),
        };
        if n != N - 1 {
            return Err(HandshakeError::Local {
                act,
                reason: "act of unexpected length",
            });
        }
        Ok(out)
    }

    /// The session after the final split; `initiator` picks which split key
    /// sends.
    fn session(
        &self,
        act: Act,
        remote: PublicKey,
        initiator: bool,
    ) -> Result<Session, HandshakeError> {
        let split = self.shared.split().ok_or(HandshakeError::Local {
            act,
            reason: "handshake did not split",
        })?;
        let (sk, rk) = if initiator {
            (split.k1, split.k2)
        } else {
            (split.k2, split.k1)
        };
        Ok(Session {
            remote,
            encryptor: Encryptor::new(split.ck, sk),
            decryptor: Decryptor::new(split.ck, rk),
        })
    }
}

/// The initiator before act one.
pub struct Initiator {
    core: Core,
    remote: PublicKey,
}

impl Initiator {
    /// An initiator that will connect to the node `remote`, with a fresh
    /// random ephemeral key.
    ///
    /// # Errors
    /// [`HandshakeError::Local`] if the system has no randomness.
    pub fn new<L: NodeSigner + Clone>(
        local: &L,
        remote: &PublicKey,
    ) -> Result<Self, HandshakeError> {
        let ephemeral = random_ephemeral(Act::One)?;
        Self::with_ephemeral(local, remote, &ephemeral)
    }

    /// An initiator with a given ephemeral key (for test vectors; never reuse
    /// an ephemeral key in real handshakes).
    ///
    /// # Errors
    /// [`HandshakeError::Local`] only on an internal error of the Noise state
    /// machine.
    pub fn with_ephemeral<L: NodeSigner + Clone>(
        local: &L,
        remote: &PublicKey,
        ephemeral: &SecretKey,
    ) -> Result<Self, HandshakeError> {
        let core = Core::build(local, Some(remote), ephemeral)?;
        Ok(Initiator {
            core,
            remote: *remote,
        })
    }

    /// Produces act one (50 bytes) to send to the responder.
    ///
    /// # Errors
    /// [`HandshakeError::Local`] only on an internal error.
    pub fn act_one(mut self) -> Result<([u8; ACT_ONE_LEN], AwaitingActTwo), HandshakeError> {
        let act = self.core.write::<ACT_ONE_LEN>(Act::One)?;
        Ok((
            act,
            AwaitingActTwo {
                core: self.core,
                remote: self.remote,
            },
        ))
    }
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// The initiator after sending act one, waiting for act two.
pub struct AwaitingActTwo {
    core: Core,
    remote: PublicKey,
}

impl AwaitingActTwo {
    /// Consumes act two (must be exactly 50 bytes) and produces act three
    /// (66 bytes, to send) and the established session.
    ///
    /// # Errors
    /// [`HandshakeError::Peer`] in act two: `ReadFailed` (wrong length),
    /// `BadVersion`, `BadPubkey`, `BadTag`.
    pub fn read_act_two(
        mut self,
        act_two: &[u8],
    ) -> Result<([u8; ACT_THREE_LEN], Session), HandshakeError> {
        check_act(Act::Two, act_two)?;
        parse_ephemeral(Act::Two, act_two, &self.core.shared)?;
        self.core
            .hs
            .read_message(&act_two[1..], &mut [])
            .map_err(|e| map_read_error(Act::Two, e))?;
        let act_three = self.core.write::<ACT_THREE_LEN>(Act::Three)?;
        let session = self.core.session(Act::Three, self.remote, true)?;
        Ok((act_three, session))
    }
}

impl std::fmt::Debug for AwaitingActTwo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingActTwo")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// The responder before act one.
pub struct Responder {
    core: Core,
}

impl Responder {
    /// A responder with a fresh random ephemeral key.
    ///
    /// # Errors
    /// [`HandshakeError::Local`] if the system has no randomness.
    pub fn new<L: NodeSigner + Clone>(local: &L) -> Result<Self, HandshakeError> {
        let ephemeral = random_ephemeral(Act::Two)?;
        Self::with_ephemeral(local, &ephemeral)
    }

    /// A responder with a given ephemeral key (for test vectors; never reuse
    /// an ephemeral key in real handshakes).
    ///
    /// # Errors
    /// [`HandshakeError::Local`] only on an internal error of the Noise state
    /// machine.
    pub fn with_ephemeral<L: NodeSigner + Clone>(
        local: &L,
        ephemeral: &SecretKey,
    ) -> Result<Self, HandshakeError> {
        Ok(Responder {
            core: Core::build(local, None, ephemeral)?,
        })
    }

    /// Consumes act one (must be exactly 50 bytes) and produces act two (50
    /// bytes, to send).
    ///
    /// # Errors
    /// [`HandshakeError::Peer`] in act one: `ReadFailed` (wrong length),
    /// `BadVersion`, `BadPubkey`, `BadTag`.
    pub fn read_act_one(
        mut self,
        act_one: &[u8],
    ) -> Result<([u8; ACT_TWO_LEN], AwaitingActThree), HandshakeError> {
        check_act(Act::One, act_one)?;
        parse_ephemeral(Act::One, act_one, &self.core.shared)?;
        if let Err(e) = self.core.hs.read_message(&act_one[1..], &mut []) {
            return Err(self
                .core
                .signer_failed(Act::One)
                .unwrap_or_else(|| map_read_error(Act::One, e)));
        }
        let act_two = self.core.write::<ACT_TWO_LEN>(Act::Two)?;
        Ok((act_two, AwaitingActThree { core: self.core }))
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

/// The responder after sending act two, waiting for act three.
pub struct AwaitingActThree {
    core: Core,
}

impl AwaitingActThree {
    /// Consumes act three (must be exactly 66 bytes) and returns the
    /// established session, which names the initiator's static key.
    ///
    /// # Errors
    /// [`HandshakeError::Peer`] in act three: `ReadFailed` (wrong length),
    /// `BadVersion`, `BadCiphertext` (the encrypted static key),
    /// `BadPubkey`, `BadTag` (the final tag).
    pub fn read_act_three(mut self, act_three: &[u8]) -> Result<Session, HandshakeError> {
        let act = Act::Three;
        check_act(act, act_three)?;
        let dh_before = self.core.shared.dh_count();
        if let Err(err) = self.core.hs.read_message(&act_three[1..], &mut []) {
            // snow reports both failed decryptions of act three as `Decrypt`:
            // the static key's (before the `se` DH) and the final tag's
            // (after it).
            let se_ran = self.core.shared.dh_count() > dh_before;
            return Err(match err {
                snow::Error::Decrypt if se_ran => HandshakeError::peer(act, PeerFault::BadTag),
                snow::Error::Decrypt => HandshakeError::peer(act, PeerFault::BadCiphertext),
                other => map_read_error(act, other),
            });
        }
        // Read the remote static key before anything else touches the state;
        // the `se` DH has already parsed it.
        let remote = self
            .core
            .hs
            .get_remote_static()
            .and_then(|bytes| self.core.shared.parsed(bytes))
            .ok_or(HandshakeError::peer(act, PeerFault::BadPubkey))?;
        self.core.session(act, remote, false)
    }
}

impl std::fmt::Debug for AwaitingActThree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingActThree").finish_non_exhaustive()
    }
}

/// An established BOLT 8 session: the remote node's static key and the two
/// cipher states.
pub struct Session {
    remote: PublicKey,
    encryptor: Encryptor,
    decryptor: Decryptor,
}

impl Session {
    /// The remote node's static public key (its node id).
    pub fn remote_pubkey(&self) -> PublicKey {
        self.remote
    }

    /// The cipher states, to encrypt and decrypt messages.
    pub fn into_parts(self) -> (Encryptor, Decryptor) {
        (self.encryptor, self.decryptor)
    }

    /// The sending cipher state.
    pub fn encryptor(&mut self) -> &mut Encryptor {
        &mut self.encryptor
    }

    /// The receiving cipher state.
    pub fn decryptor(&mut self) -> &mut Decryptor {
        &mut self.decryptor
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}
