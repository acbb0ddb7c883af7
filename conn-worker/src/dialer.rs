//! What a worker needs to open a connection.

use std::error::Error as StdError;
use std::fmt::{self, Debug};
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Opens a connection to one address.
///
/// The worker calls [`dial`](Dialer::dial) once per attempt, with a token
/// that is cancelled when the attempt is no longer wanted (the worker was
/// told to stand down or to re-plan, another address won, the worker stops).
/// A dialer should end promptly when the token fires; the worker also drops
/// the future at that point, so anything the future owns (a half-open
/// socket, a connection that just completed) is closed by being dropped and
/// never leaks. The dialer owns its own timeouts (connect, handshake).
pub trait Dialer: Send + Sync + 'static {
    /// An address to dial (for example a socket address, or a peer key and
    /// a socket address).
    type Addr: Clone + Eq + Hash + Debug + Send + Sync + 'static;
    /// An established connection, handed to the owner in
    /// [`EventKind::Connected`](crate::EventKind::Connected).
    type Conn: Send + 'static;
    /// Why an attempt failed.
    type Error: StdError + Send + Sync + 'static;

    /// Dials `addr`, giving up when `cancel` fires.
    fn dial(
        &self,
        addr: &Self::Addr,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Self::Conn, Self::Error>> + Send;

    /// Which kind of failure `error` is, for owners that must tell "the
    /// network is bad" from "the peer is bad" (reported with every
    /// [`EventKind::DialFailed`](crate::EventKind::DialFailed)). The default
    /// says [`FailureClass::Network`]; a panic here counts as
    /// [`FailureClass::Local`].
    fn classify(&self, error: &Self::Error) -> FailureClass {
        let _ = error;
        FailureClass::Network
    }
}

/// What kind of failure a dial (or a connection) met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureClass {
    /// The peer misbehaved (broke the protocol, sent garbage).
    Peer,
    /// The network failed: refused, unreachable, reset, DNS, proxy.
    Network,
    /// Something took too long.
    Timeout,
    /// Our side: a bug, a panic, a resource limit, a bad configuration.
    Local,
}

impl FailureClass {
    /// A short lowercase name (`peer`, `network`, `timeout`, `local`), for
    /// logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Peer => "peer",
            FailureClass::Network => "network",
            FailureClass::Timeout => "timeout",
            FailureClass::Local => "local",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<D: Dialer> Dialer for Arc<D> {
    type Addr = D::Addr;
    type Conn = D::Conn;
    type Error = D::Error;

    fn dial(
        &self,
        addr: &Self::Addr,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Self::Conn, Self::Error>> + Send {
        (**self).dial(addr, cancel)
    }

    fn classify(&self, error: &Self::Error) -> FailureClass {
        (**self).classify(error)
    }
}

/// A [`Dialer`] made from a closure; see [`dial_fn`].
pub struct FnDialer<A, F> {
    f: F,
    _addr: PhantomData<fn(A)>,
}

impl<A, F> Debug for FnDialer<A, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnDialer").finish_non_exhaustive()
    }
}

impl<A, F: Clone> Clone for FnDialer<A, F> {
    fn clone(&self) -> Self {
        FnDialer {
            f: self.f.clone(),
            _addr: PhantomData,
        }
    }
}

/// Makes a [`Dialer`] from a closure that takes an owned address and the
/// attempt's cancellation token and returns the dial future.
///
/// ```
/// use conn_worker::{dial_fn, Dialer};
/// use std::io;
///
/// let dialer = dial_fn(|addr: u16, _cancel| async move {
///     if addr == 9735 { Ok(addr) } else { Err(io::Error::other("refused")) }
/// });
/// # fn is_dialer<D: Dialer>(_: &D) {}
/// # is_dialer(&dialer);
/// ```
pub fn dial_fn<A, F, Fut, C, E>(f: F) -> FnDialer<A, F>
where
    A: Clone + Eq + Hash + Debug + Send + Sync + 'static,
    F: Fn(A, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C, E>> + Send,
    C: Send + 'static,
    E: StdError + Send + Sync + 'static,
{
    FnDialer {
        f,
        _addr: PhantomData,
    }
}

impl<A, F, Fut, C, E> Dialer for FnDialer<A, F>
where
    A: Clone + Eq + Hash + Debug + Send + Sync + 'static,
    F: Fn(A, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C, E>> + Send,
    C: Send + 'static,
    E: StdError + Send + Sync + 'static,
{
    type Addr = A;
    type Conn = C;
    type Error = E;

    fn dial(
        &self,
        addr: &Self::Addr,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Self::Conn, Self::Error>> + Send {
        (self.f)(addr.clone(), cancel)
    }
}
