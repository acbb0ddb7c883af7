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
    let mut filled = 0;
    while filled < N {
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|source| Error::HandshakeIo { act, source })?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok((buf, filled))
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
pub(crate) async fn respond<S: AsyncRead + AsyncWrite + Unpin, L: NodeSigner + Clone>(
    stream: &mut S,
    local: &L,
    act_timeout: Duration,
) -> Result<Session, Error> {
    let responder = Responder::new(local)?;
    let (act_one, n) = within(
        Act::One,
        act_timeout,
        read_act::<_, ACT_ONE_LEN>(stream, Act::One),
    )
    .await?;
    let (act_two, awaiting) = responder.read_act_one(&act_one[..n])?;
    within(Act::Two, act_timeout, write_act(stream, Act::Two, &act_two)).await?;
    let (act_three, n) = within(
        Act::Three,
        act_timeout,
        read_act::<_, ACT_THREE_LEN>(stream, Act::Three),
    )
    .await?;
    Ok(awaiting.read_act_three(&act_three[..n])?)
}
