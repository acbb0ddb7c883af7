//! The async drivers of the handshake: move the acts over a byte stream, each
//! under its own timeout. Cancellation is applied by the callers.

use std::future::{poll_fn, Future};
use std::task::Poll;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::error::Elapsed;
use tokio_util::sync::CancellationToken;

use crate::error::{Act, Error};
use crate::handshake::{Initiator, Responder, Session, ACT_ONE_LEN, ACT_THREE_LEN, ACT_TWO_LEN};
use crate::keys::NodeSigner;

/// Runs `fut` unless `cancel` fires first.
pub(crate) async fn cancellable<T>(
    cancel: &CancellationToken,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(Error::Cancelled),
        result = fut => result,
    }
}

/// `tokio::time::timeout`, without a timer for a future that completes at
/// its first poll, as most steps of a handshake do (a write into an empty
/// socket buffer, a read whose bytes arrived while this side computed).
/// A tokio timer costs a lock on the runtime's timer driver when dropped,
/// even if it never fired, and another when first polled; the deadline
/// starts at the first poll.
pub(crate) async fn timeout_unless_ready<F: Future>(
    timeout: Duration,
    fut: F,
) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    if let Poll::Ready(output) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Ok(output);
    }
    tokio::time::timeout(timeout, fut).await
}

/// Runs `fut` within the act's timeout.
async fn within<T>(
    act: Act,
    timeout: Duration,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    timeout_unless_ready(timeout, fut)
        .await
        .map_err(|_| Error::HandshakeTimedOut(act))?
}

async fn write_act<S: AsyncWrite + Unpin>(
    stream: &mut S,
    act: Act,
    bytes: &[u8],
) -> Result<(), Error> {
    stream
        .write_all(bytes)
        .await
        .map_err(|source| Error::HandshakeIo { act, source })?;
    stream
        .flush()
        .await
        .map_err(|source| Error::HandshakeIo { act, source })
}

/// Reads up to `N` bytes, stopping early only at end of stream; returns how
/// many arrived (a short count becomes the spec's `READ_FAILED`).
async fn read_act<S: AsyncRead + Unpin, const N: usize>(
    stream: &mut S,
    act: Act,
) -> Result<([u8; N], usize), Error> {
    let mut buf = [0u8; N];
    let filled = fill(stream, act, &mut buf, 0, N).await?;
    Ok((buf, filled))
}

/// Reads into `buf` after its first `filled` bytes until at least `want`
/// are there or the stream ends; returns how many are there.
async fn fill<S: AsyncRead + Unpin>(
    stream: &mut S,
    act: Act,
    buf: &mut [u8],
    mut filled: usize,
    want: usize,
) -> Result<usize, Error> {
    while filled < want {
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|source| Error::HandshakeIo { act, source })?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Runs the initiator's side of the handshake over `stream`.
pub(crate) async fn initiate<S: AsyncRead + AsyncWrite + Unpin, L: NodeSigner + Clone>(
    stream: &mut S,
    local: &L,
    remote: &PublicKey,
    act_timeout: Duration,
) -> Result<Session, Error> {
    let (act_one, awaiting) = Initiator::new(local, remote)?.act_one()?;
    within(Act::One, act_timeout, write_act(stream, Act::One, &act_one)).await?;
    let (act_two, n) = within(
        Act::Two,
        act_timeout,
        read_act::<_, ACT_TWO_LEN>(stream, Act::Two),
    )
    .await?;
    let (act_three, session) = awaiting.read_act_two(&act_two[..n])?;
    within(
        Act::Three,
        act_timeout,
        write_act(stream, Act::Three, &act_three),
    )
    .await?;
    Ok(session)
}

/// Runs the responder's side of the handshake over `stream`.
///
/// Act one is read with room for act three behind it. An honest initiator
/// sends nothing more before act two, so the read comes back short of the
/// buffer, which tells tokio the socket is drained: the read of act three
/// then waits for its bytes instead of first trying the socket once more
/// (one system call fewer per inbound handshake). Bytes past act one are
/// the start of act three, as they would be in the stream; act three is
/// read into a buffer of its own length only, so nothing the initiator
/// sends after it is taken from the stream.
pub(crate) async fn respond<S: AsyncRead + AsyncWrite + Unpin, L: NodeSigner + Clone>(
    stream: &mut S,
    local: &L,
    act_timeout: Duration,
) -> Result<Session, Error> {
    let responder = Responder::new(local)?;
    let mut first = [0u8; ACT_ONE_LEN + ACT_THREE_LEN];
    let n = within(
        Act::One,
        act_timeout,
        fill(stream, Act::One, &mut first, 0, ACT_ONE_LEN),
    )
    .await?;
    let (act_one, early) = first[..n].split_at(n.min(ACT_ONE_LEN));
    let (act_two, awaiting) = responder.read_act_one(act_one)?;
    within(Act::Two, act_timeout, write_act(stream, Act::Two, &act_two)).await?;
    let mut act_three = [0u8; ACT_THREE_LEN];
    act_three[..early.len()].copy_from_slice(early);
    let n = within(
        Act::Three,
        act_timeout,
        fill(
            stream,
            Act::Three,
            &mut act_three,
            early.len(),
            ACT_THREE_LEN,
        ),
    )
    .await?;
    Ok(awaiting.read_act_three(&act_three[..n])?)
}
