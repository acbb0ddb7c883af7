//! BOLT 8, the Lightning transport (`Noise_XK_secp256k1_ChaChaPoly_SHA256`).
//!
//! TODO: crate docs.

mod cipher;
mod codec;
mod crypto;
mod error;
mod handshake;
mod keys;
mod resolver;

pub use bitcoin::secp256k1::{PublicKey, SecretKey};
pub use cipher::{frame_len, Decryptor, Encryptor, BODY_TAG_LEN, HEADER_LEN, MAX_MESSAGE_LEN};
pub use codec::{MessageCodec, MessageDecoder, MessageEncoder};
pub use error::{Act, DecryptError, Error, HandshakeError, MessageTooLarge, PeerFault};
pub use handshake::{
    AwaitingActThree, AwaitingActTwo, Initiator, Responder, Session, ACT_ONE_LEN, ACT_THREE_LEN,
    ACT_TWO_LEN,
};
pub use keys::NodeKeyPair;
