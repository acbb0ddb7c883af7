//! The node's static key: the [`NodeSigner`] that does its ECDH, and
//! [`NodeKeyPair`], the raw-key signer.

use std::sync::{Arc, OnceLock};

use bitcoin::secp256k1::ecdh::SharedSecret;
use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};

/// The process-wide secp256k1 context (creating one is not free).
pub(crate) fn secp() -> &'static Secp256k1<All> {
    static SECP: OnceLock<Secp256k1<All>> = OnceLock::new();
    SECP.get_or_init(Secp256k1::new)
}

/// What the handshake needs of the node's static key: its public key, and
/// ECDH with it (LDK's `NodeSigner::ecdh`). Implement it for a key that
/// lives in an HSM or a remote signer; the handshake never sees the secret.
///
/// The result is BOLT 8's ECDH: SHA-256 of the compressed shared point,
/// which is what [`SharedSecret::new`] computes.
///
/// ```
/// use brontide::{Initiator, NodeKeyPair, NodeSigner, PublicKey, Responder, SecretKey};
/// use brontide::{SharedSecret, SignerError};
///
/// /// A signer that keeps its key to itself (here simply in memory).
/// struct Vault(SecretKey);
/// impl NodeSigner for Vault {
///     fn node_id(&self) -> PublicKey {
///         PublicKey::from_secret_key(&bitcoin::secp256k1::Secp256k1::new(), &self.0)
///     }
///     fn ecdh(&self, remote: &PublicKey) -> Result<SharedSecret, SignerError> {
///         Ok(SharedSecret::new(remote, &self.0))
///     }
/// }
///
/// let alice = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
/// let bob = std::sync::Arc::new(Vault(SecretKey::from_slice(&[0x21; 32])?));
/// let (act_one, alice) = Initiator::new(&alice, &bob.node_id())?.act_one()?;
/// let (act_two, bob) = Responder::new(&bob)?.read_act_one(&act_one)?;
/// let (act_three, _) = alice.read_act_two(&act_two)?;
/// assert_eq!(bob.read_act_three(&act_three)?.remote_pubkey(), alice_id());
/// # fn alice_id() -> PublicKey { NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32]).unwrap()).public_key() }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait NodeSigner: Send + Sync + 'static {
    /// The node's static public key (its node id).
    fn node_id(&self) -> PublicKey;

    /// ECDH of the node's static secret key with `remote`.
    ///
    /// # Errors
    /// When the signer cannot answer; the handshake then fails as a local
    /// fault ([`HandshakeError::Signer`](crate::HandshakeError::Signer)).
    fn ecdh(&self, remote: &PublicKey) -> Result<SharedSecret, SignerError>;
}

impl<T: NodeSigner + ?Sized> NodeSigner for Arc<T> {
    fn node_id(&self) -> PublicKey {
        (**self).node_id()
    }

    fn ecdh(&self, remote: &PublicKey) -> Result<SharedSecret, SignerError> {
        (**self).ecdh(remote)
    }
}

/// A [`NodeSigner`] could not do its ECDH.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signer failed: {reason}")]
pub struct SignerError {
    reason: String,
}

impl SignerError {
    /// A signer error that says why.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Why the signer failed.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A node's static key pair held in memory: the default [`NodeSigner`].
/// The public key is derived once.
///
/// Build it once at startup and pass it to every handshake: the handshake then
/// never re-derives the public key (a key generation costs about 8% of a
/// handshake). The secret key is erased from memory when the last copy is
/// dropped (clones share one copy).
#[derive(Clone)]
pub struct NodeKeyPair {
    inner: Arc<RawKey>,
}

struct RawKey {
    secret: SecretKey,
    public: PublicKey,
}

impl Drop for RawKey {
    fn drop(&mut self) {
        self.secret.non_secure_erase();
    }
}

impl NodeKeyPair {
    /// Derives the public key of `secret`.
    pub fn new(secret: SecretKey) -> Self {
        let public = PublicKey::from_secret_key(secp(), &secret);
        NodeKeyPair {
            inner: Arc::new(RawKey { secret, public }),
        }
    }

    /// The secret key.
    pub fn secret_key(&self) -> &SecretKey {
        &self.inner.secret
    }

    /// The public key (the node id).
    pub fn public_key(&self) -> PublicKey {
        self.inner.public
    }
}

impl NodeSigner for NodeKeyPair {
    fn node_id(&self) -> PublicKey {
        self.inner.public
    }

    fn ecdh(&self, remote: &PublicKey) -> Result<SharedSecret, SignerError> {
        Ok(crate::crypto::ecdh(remote, &self.inner.secret))
    }
}

impl PartialEq for NodeKeyPair {
    fn eq(&self, other: &Self) -> bool {
        self.inner.secret == other.inner.secret
    }
}

impl Eq for NodeKeyPair {}

impl std::fmt::Debug for NodeKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeyPair")
            .field("public", &self.inner.public)
            .finish_non_exhaustive()
    }
}
