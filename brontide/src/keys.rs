//! The node's static key pair and the secp256k1 context.

use std::sync::OnceLock;

use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};

/// The process-wide secp256k1 context (creating one is not free).
pub(crate) fn secp() -> &'static Secp256k1<All> {
    static SECP: OnceLock<Secp256k1<All>> = OnceLock::new();
    SECP.get_or_init(Secp256k1::new)
}

/// A node's static key pair: the secret key and its public key, derived once.
///
/// Build it once at startup and pass it to every handshake: the handshake then
/// never re-derives the public key (a key generation costs about 8% of a
/// handshake).
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl NodeKeyPair {
    /// Derives the public key of `secret`.
    pub fn new(secret: SecretKey) -> Self {
        let public = PublicKey::from_secret_key(secp(), &secret);
        NodeKeyPair { secret, public }
    }

    /// The secret key.
    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key (the node id).
    pub fn public_key(&self) -> PublicKey {
        self.public
    }
}

impl std::fmt::Debug for NodeKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}
