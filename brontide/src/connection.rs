//! An established connection: the byte stream, the remote key and the cipher
//! states, ready to become a `Framed` message stream.

use bitcoin::secp256k1::PublicKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::codec::{Framed, FramedRead, FramedWrite};

use crate::cipher::{Decryptor, Encryptor};
use crate::codec::{MessageCodec, MessageDecoder, MessageEncoder};
use crate::handshake::Session;

/// A byte stream on which a BOLT 8 handshake has completed.
pub struct Connection<S> {
    stream: S,
    session: Session,
}

impl<S> Connection<S> {
    pub(crate) fn new(stream: S, session: Session) -> Self {
        Connection { stream, session }
    }

    /// The remote node's static public key (its node id).
    pub fn remote_pubkey(&self) -> PublicKey {
        self.session.remote_pubkey()
    }

    /// The underlying byte stream (do not read or write it directly).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The byte stream and the two cipher states.
    pub fn into_parts(self) -> (S, Encryptor, Decryptor) {
        let (encryptor, decryptor) = self.session.into_parts();
        (self.stream, encryptor, decryptor)
    }

    /// A `Stream` of received messages and a `Sink` of messages to send.
    pub fn into_framed(self) -> Framed<S, MessageCodec>
    where
        S: AsyncRead + AsyncWrite,
    {
        let (stream, encryptor, decryptor) = self.into_parts();
        Framed::new(stream, MessageCodec::new(encryptor, decryptor))
    }

    /// A reading half and a writing half, for different tasks. For a
    /// `TcpStream`, splitting it with `into_split` and using
    /// [`into_parts`](Self::into_parts) avoids the lock `tokio::io::split` takes.
    #[allow(clippy::type_complexity)]
    pub fn into_split(
        self,
    ) -> (
        FramedRead<ReadHalf<S>, MessageDecoder>,
        FramedWrite<WriteHalf<S>, MessageEncoder>,
    )
    where
        S: AsyncRead + AsyncWrite,
    {
        let (stream, encryptor, decryptor) = self.into_parts();
        let (read, write) = tokio::io::split(stream);
        (
            FramedRead::new(read, MessageDecoder::new(decryptor)),
            FramedWrite::new(write, MessageEncoder::new(encryptor)),
        )
    }
}

impl<S> std::fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote_pubkey())
            .finish_non_exhaustive()
    }
}
