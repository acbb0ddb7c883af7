//! BOLT 8, the Lightning peer transport (`Noise_XK_secp256k1_ChaChaPoly_SHA256`).
//!
//! What it does:
//! - **Handshake, sans-IO**: [`Initiator`] and [`Responder`] are consumed
//!   state by state (act one → act two → act three → [`Session`]); no I/O,
//!   no clock. The Noise XK state machine is `snow`'s, with a secp256k1
//!   resolver. Errors name the act and the spec's failure
//!   ([`HandshakeError::code`] gives e.g. `ACT2_BAD_VERSION`).
//! - **Messages**: [`Encryptor`] and [`Decryptor`] frame messages of up to
//!   [`MAX_MESSAGE_LEN`] bytes, rotating keys every 1000 uses; the
//!   [`MessageCodec`] (and its halves [`MessageEncoder`], [`MessageDecoder`])
//!   plug them into `tokio_util::codec`.
//! - **Dial and accept** (tokio): [`dial`] connects and runs the handshake,
//!   ends at once when its `CancellationToken` fires, and has one connect
//!   timeout and a per-act timeout. The byte stream is pluggable through
//!   [`Transport`]: plain [`Tcp`] to a socket address; [`Socks5`] through a
//!   SOCKS5 proxy such as Tor, with stream isolation; [`NetTransport`] for a
//!   Lightning address ([`NetAddress`], from the `lnaddr` crate), which
//!   resolves DNS names, connects directly or through the proxy (for onion
//!   addresses only, or for everything) and says which address kinds it
//!   reaches. Errors are typed all the way ([`ConnectError`], [`SocksError`]
//!   inside [`Error::Connect`]) and sorted by [`Error::category`] into
//!   peer, network, timeout and local faults. Sockets get `TCP_NODELAY` and
//!   TCP [`Keepalive`].
//! - **Listener**: [`Listener`] accepts TCP and runs handshakes
//!   concurrently with a bound; silent connections never hold a handshake
//!   slot, and connections beyond the bounds wait in the kernel's backlog
//!   instead of being reset. Every failed inbound handshake is an event and
//!   a counter ([`Listener::monitor`]). [`accept`] runs the responder on a
//!   stream you already have.
//! - **Signer**: the node's static ECDH goes through [`NodeSigner`] (an HSM
//!   or a remote signer can implement it); [`NodeKeyPair`], a key in memory
//!   erased on drop, is the default.
//!
//! What it does not do: the Lightning messages above BOLT 8 (`init`, pings,
//! gossip...), reconnection or peer management (the `conn-worker` and
//! `server` crates; `brontide-dialer` plugs this crate into `conn-worker`).
//!
//! # Example: a handshake without I/O
//!
//! ```
//! use brontide::{Initiator, NodeKeyPair, Responder, SecretKey};
//!
//! let alice = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32]).unwrap());
//! let bob = NodeKeyPair::new(SecretKey::from_slice(&[0x21; 32]).unwrap());
//!
//! let (act_one, alice) = Initiator::new(&alice, &bob.public_key())?.act_one()?;
//! let (act_two, bob_waiting) = Responder::new(&bob)?.read_act_one(&act_one)?;
//! let (act_three, alice_session) = alice.read_act_two(&act_two)?;
//! let bob_session = bob_waiting.read_act_three(&act_three)?;
//! assert_eq!(bob_session.remote_pubkey(), NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32]).unwrap()).public_key());
//!
//! let (mut alice_tx, _) = alice_session.into_parts();
//! let (_, mut bob_rx) = bob_session.into_parts();
//! let mut frame = alice_tx.encrypt(b"hello")?;
//! assert_eq!(bob_rx.decrypt_frame(&mut frame)?, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: dial a remote node
//!
//! ```no_run
//! use brontide::{dial, DialConfig, NodeKeyPair, PublicKey, SecretKey};
//! use futures::{SinkExt, StreamExt};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run(remote: PublicKey) -> Result<(), Box<dyn std::error::Error>> {
//! let local = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
//! let cancel = CancellationToken::new();
//! let conn = dial(
//!     "127.0.0.1:9735".parse()?,
//!     &local,
//!     &remote,
//!     &DialConfig::default(),
//!     &cancel,
//! )
//! .await?;
//! let mut framed = conn.into_framed();
//! framed.send(&[0u8, 16, 0, 0, 0, 0][..]).await?; // an empty `init`
//! if let Some(msg) = framed.next().await {
//!     println!("received {} bytes", msg?.len());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Example: listen, and dial the listener (on loopback)
//!
//! ```
//! use brontide::{dial, DialConfig, Listener, ListenerConfig, NodeKeyPair, SecretKey};
//! use futures::{SinkExt, StreamExt};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server_key = NodeKeyPair::new(SecretKey::from_slice(&[0x21; 32])?);
//! let client_key = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
//!
//! // Refuse nobody; a real node would refuse banned keys here.
//! let config = ListenerConfig::default().with_filter(|_key, _addr| true);
//! let mut listener = Listener::bind("127.0.0.1:0", server_key.clone(), config).await?;
//!
//! let cancel = CancellationToken::new();
//! let conn = dial(
//!     listener.local_addr(),
//!     &client_key,
//!     &server_key.public_key(),
//!     &DialConfig::default(),
//!     &cancel,
//! )
//! .await?;
//! let accepted = listener.accept().await.ok_or("listener stopped")?;
//! assert_eq!(accepted.remote_pubkey(), client_key.public_key());
//!
//! let mut client = conn.into_framed();
//! let mut server = accepted.connection.into_framed();
//! client.send(b"hello".as_slice()).await?;
//! assert_eq!(&server.next().await.ok_or("closed")??[..], b"hello");
//! listener.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Cancelling `cancel` (for example when another connection to the same peer
//! won) ends the dial at once with [`Error::Cancelled`], in the connect or in
//! any act; the socket is dropped with the dial's future.

mod cipher;
mod codec;
mod connection;
mod crypto;
mod dial;
mod error;
mod handshake;
mod io;
mod keys;
mod listener;
mod resolver;
mod socket;
mod socks;
mod transport;
mod watched;

pub use bitcoin::secp256k1::ecdh::SharedSecret;
pub use bitcoin::secp256k1::{PublicKey, SecretKey};
pub use cipher::{frame_len, Decryptor, Encryptor, BODY_TAG_LEN, HEADER_LEN, MAX_MESSAGE_LEN};
pub use codec::{MessageCodec, MessageDecoder, MessageEncoder};
pub use connection::Connection;
pub use dial::{
    accept, dial, dial_with, handshake_outbound, DialConfig, Tcp, Transport, DEFAULT_ACT_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
};
pub use error::{
    Act, Category, ConfigError, ConnectError, DecryptError, Error, HandshakeError, MessageTooLarge,
    PeerFault,
};
pub use handshake::{
    AwaitingActThree, AwaitingActTwo, Initiator, Responder, Session, ACT_ONE_LEN, ACT_THREE_LEN,
    ACT_TWO_LEN,
};
pub use keys::{NodeKeyPair, NodeSigner, SignerError};
pub use listener::{
    Accepted, FailureReason, InboundFailure, Listener, ListenerConfig, ListenerEvent,
    ListenerEvents, ListenerMonitor, ListenerStats, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_PENDING,
    DEFAULT_SILENCE_GRACE, LISTEN_BACKLOG,
};
pub use lnaddr::{AddressKind, NetAddress, NodeAddr};
pub use socket::Keepalive;
pub use socks::{Socks5, SocksAuth, SocksError, SocksReply, SocksTarget};
pub use tokio_util::sync::CancellationToken;
pub use transport::{NetTransport, ProxyScope};
