//! [`NetTransport`]: dials a Lightning [`NetAddress`] by whatever it needs,
//! DNS, direct TCP or a SOCKS5 proxy.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use lnaddr::{AddressKind, NetAddress};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::dial::{Transport, DEFAULT_CONNECT_TIMEOUT};
use crate::error::ConnectError;
use crate::socket::{configure, tcp_connect, Keepalive};
use crate::socks::{Socks5, SocksTarget};

/// Which addresses a [`NetTransport`] sends through its proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProxyScope {
    /// Only onion addresses (the default); the others are dialed directly.
    #[default]
    OnionOnly,
    /// Every address: IP addresses are sent to the proxy as addresses, DNS
    /// names as names (the proxy resolves them, so no DNS query leaves this
    /// host).
    All,
}

/// The [`Transport`] for Lightning addresses ([`NetAddress`]).
///
/// Directly: IP addresses over TCP; a host name is resolved when dialed and
/// each address it resolves to is tried in turn, each but the last within
/// its share of what remains of the connect timeout (what remains divided
/// by the addresses left, at least [`NetTransport::MIN_ATTEMPT`]), so a
/// black-holed first address does not use it all; the last has what
/// remains. Through a SOCKS5 proxy
/// ([`with_proxy`](Self::with_proxy)): onion addresses, and every address
/// with [`ProxyScope::All`]. Without a proxy an onion address fails at once
/// with [`ConnectError::Unreachable`]; [`reaches`](Self::reaches) says so
/// beforehand, so whoever orders a peer's addresses can leave them out.
///
/// All of a connect (the lookup, every address tried, the proxy's exchange)
/// is bounded by one timeout, the dial's
/// [`connect_timeout`](crate::DialConfig::connect_timeout), which
/// [`dial_with`](crate::dial_with) tells the transport through
/// [`Transport::connect_within`]; a caller that bounds
/// [`Transport::connect`] with a timeout of its own should call
/// `connect_within` with it (`connect` assumes
/// [`DEFAULT_CONNECT_TIMEOUT`]). Every socket gets
/// `TCP_NODELAY` and the configured [`Keepalive`] (the default unless set).
///
/// ```no_run
/// use brontide::{dial_with, DialConfig, NetTransport, NodeKeyPair, ProxyScope, SecretKey, Socks5};
/// use lnaddr::{AddressKind, NodeAddr};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let local = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
/// let tor = Socks5::new("127.0.0.1:9050".parse()?).with_stream_isolation();
/// let transport = NetTransport::new().with_proxy(tor, ProxyScope::OnionOnly);
/// assert!(transport.reaches(AddressKind::Onion));
///
/// let node: NodeAddr = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7@node.example:9735".parse()?;
/// let cancel = CancellationToken::new();
/// let conn = dial_with(&transport, &node.addr, &local, &node.pubkey, &DialConfig::default(), &cancel).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NetTransport {
    proxy: Option<(Socks5, ProxyScope)>,
    keepalive: Option<Keepalive>,
}

impl Default for NetTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl NetTransport {
    /// The least time an address of a host name is given before the next
    /// is tried (unless less than that remains): enough for a connect over
    /// a slow path and one retransmitted SYN.
    pub const MIN_ATTEMPT: Duration = Duration::from_secs(2);

    /// Direct connections only, with [`Keepalive::default`].
    pub fn new() -> Self {
        Self {
            proxy: None,
            keepalive: Some(Keepalive::default()),
        }
    }

    /// Sends the addresses in `scope` through `proxy` (for Tor,
    /// `127.0.0.1:9050`).
    #[must_use]
    pub fn with_proxy(mut self, proxy: Socks5, scope: ProxyScope) -> Self {
        self.proxy = Some((proxy, scope));
        self
    }

    /// Sets TCP keepalive on every socket (`None`: off).
    #[must_use]
    pub fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// The proxy and what goes through it, if any.
    pub fn proxy(&self) -> Option<(&Socks5, ProxyScope)> {
        self.proxy.as_ref().map(|(p, s)| (p, *s))
    }

    /// The keepalive set on every socket.
    pub fn keepalive(&self) -> Option<Keepalive> {
        self.keepalive
    }

    /// Whether addresses of this kind can be dialed (onion addresses need a
    /// proxy).
    pub fn reaches(&self, kind: AddressKind) -> bool {
        kind != AddressKind::Onion || self.proxy.is_some()
    }

    async fn direct(
        &self,
        addr: &NetAddress,
        deadline: Option<Instant>,
    ) -> Result<TcpStream, ConnectError> {
        let keepalive = self.keepalive();
        match addr {
            NetAddress::Ip(addr) => tcp_connect(*addr, keepalive).await,
            NetAddress::Host { name, port } => {
                let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|source| ConnectError::Resolve {
                        host: name.clone(),
                        source,
                    })?
                    .collect();
                if resolved.is_empty() {
                    return Err(ConnectError::NoAddress { host: name.clone() });
                }
                connect_each(&resolved, deadline, |addr| tcp_connect(addr, keepalive)).await
            }
            other => Err(ConnectError::Unreachable(other.kind())),
        }
    }
}

/// Tries `addrs` (at least one) in turn until one connects; each but the
/// last within [`attempt_budget`] of what remains until `deadline` (`None`:
/// a deadline past the clock's range, no attempt is cut short). The last
/// is bounded by the caller's timeout only, so that the overall timeout,
/// not this one, reports it. Returns the last error if none connects.
async fn connect_each<S, F, Fut>(
    addrs: &[SocketAddr],
    deadline: Option<Instant>,
    mut connect: F,
) -> Result<S, ConnectError>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = Result<S, ConnectError>>,
{
    let mut last = None;
    for (i, &addr) in addrs.iter().enumerate() {
        let left = addrs.len() - i;
        let attempt = match deadline {
            Some(deadline) if left > 1 => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                tokio::time::timeout(attempt_budget(remaining, left), connect(addr))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ConnectError::Tcp {
                            addr,
                            source: io::ErrorKind::TimedOut.into(),
                        })
                    })
            }
            _ => connect(addr).await,
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::Other(io::ErrorKind::InvalidInput.into())))
}

/// The time for the next of `left` addresses out of `remaining`: an equal
/// share, at least [`NetTransport::MIN_ATTEMPT`], at most `remaining`.
fn attempt_budget(remaining: Duration, left: usize) -> Duration {
    let left = u32::try_from(left.max(1)).unwrap_or(u32::MAX);
    (remaining / left)
        .max(NetTransport::MIN_ATTEMPT)
        .min(remaining)
}

impl Transport for NetTransport {
    type Addr = NetAddress;
    type Stream = TcpStream;

    /// [`connect_within`](Transport::connect_within) the
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    async fn connect(&self, addr: &NetAddress) -> Result<TcpStream, ConnectError> {
        self.connect_within(addr, DEFAULT_CONNECT_TIMEOUT).await
    }

    async fn connect_within(
        &self,
        addr: &NetAddress,
        timeout: Duration,
    ) -> Result<TcpStream, ConnectError> {
        let deadline = Instant::now().checked_add(timeout);
        match &self.proxy {
            Some((proxy, scope))
                if *scope == ProxyScope::All || addr.kind() == AddressKind::Onion =>
            {
                let target = SocksTarget::new(addr.host(), addr.port())?;
                let stream = proxy.connect_target(&target).await?;
                configure(&stream, self.keepalive()).map_err(ConnectError::SocketOption)?;
                Ok(stream)
            }
            _ => self.direct(addr, deadline).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn each_address_gets_its_share_of_what_remains_and_at_least_the_minimum() {
        assert_eq!(attempt_budget(S(120), 2), S(60));
        assert_eq!(attempt_budget(S(120), 3), S(40));
        assert_eq!(attempt_budget(S(5), 4), NetTransport::MIN_ATTEMPT);
        assert_eq!(attempt_budget(S(1), 4), S(1), "never more than remains");
        assert_eq!(attempt_budget(Duration::ZERO, 2), Duration::ZERO);
        assert_eq!(attempt_budget(S(7), 1), S(7));
        assert_eq!(attempt_budget(S(7), 0), S(7));
        assert_eq!(
            attempt_budget(Duration::MAX, usize::MAX),
            Duration::MAX / u32::MAX
        );
    }

    /// Addresses 127.0.0.1:1, :2, :3; the fake connect black-holes those
    /// in `black_holes` (it never answers) and connects to the others,
    /// recording when each attempt started (on the paused clock).
    async fn run(
        black_holes: &[u16],
        deadline: Option<Instant>,
        started: &std::sync::Mutex<Vec<(u16, Duration)>>,
        t0: Instant,
    ) -> Result<u16, ConnectError> {
        let addrs: Vec<SocketAddr> = (1..=3)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        connect_each(&addrs, deadline, |addr| async move {
            started.lock().unwrap().push((addr.port(), t0.elapsed()));
            if black_holes.contains(&addr.port()) {
                std::future::pending::<()>().await;
            }
            Ok(addr.port())
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_black_holed_first_address_leaves_time_for_the_next() {
        let t0 = Instant::now();
        let started = std::sync::Mutex::new(Vec::new());
        let got = run(&[1], Some(t0 + S(120)), &started, t0).await;
        assert_eq!(got.ok(), Some(2));
        assert_eq!(*started.lock().unwrap(), [(1, S(0)), (2, S(40))]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_shares_follow_what_remains_and_the_last_is_left_to_the_caller() {
        let t0 = Instant::now();
        let started = std::sync::Mutex::new(Vec::new());
        let overall =
            tokio::time::timeout(S(120), run(&[1, 2, 3], Some(t0 + S(120)), &started, t0)).await;
        assert!(overall.is_err(), "the caller's timeout ends it");
        // 120 s for 3: 40 s; then 80 s for 2: 40 s; the last the rest.
        assert_eq!(
            *started.lock().unwrap(),
            [(1, S(0)), (2, S(40)), (3, S(80))]
        );
        assert_eq!(t0.elapsed(), S(120));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_deadline_no_attempt_is_cut_short() {
        let t0 = Instant::now();
        let started = std::sync::Mutex::new(Vec::new());
        let got = run(&[], None, &started, t0).await;
        assert_eq!(got.ok(), Some(1));
        let stuck = tokio::time::timeout(S(3600), run(&[1], None, &started, t0)).await;
        assert!(stuck.is_err(), "the first address keeps the whole time");
    }
}
