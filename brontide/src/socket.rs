//! Socket options for every TCP socket brontide opens or accepts:
//! `TCP_NODELAY` and TCP keepalive.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{ConfigError, ConnectError};

/// TCP keepalive: once a connection has been idle for `idle`, the kernel
/// probes the far end every `interval`, and after `retries` probes without
/// an answer it resets the connection, so a peer whose host vanished
/// without a FIN (power lost, a NAT mapping dropped) is noticed even when
/// nothing is being sent. BOLT 1 pings notice it too, sooner, for
/// connections whose application pings; keepalive also covers the ones
/// that do not, and the handshake.
///
/// The default ([`Keepalive::default`]): idle [`Keepalive::DEFAULT_IDLE`]
/// (60 s), then a probe every [`Keepalive::DEFAULT_INTERVAL`] (10 s), reset
/// after [`Keepalive::DEFAULT_RETRIES`] (6) unanswered probes: a dead link
/// is cut within two minutes of its last byte. On systems where the
/// interval and the count cannot be set, the system's own apply.
///
/// ```
/// use std::time::Duration;
/// use brontide::Keepalive;
///
/// let fast = Keepalive::new(Duration::from_secs(15), Duration::from_secs(5), 3)?;
/// assert_eq!(fast.dead_after(), Duration::from_secs(30));
/// assert!(Keepalive::new(Duration::ZERO, Duration::from_secs(5), 3).is_err());
/// # Ok::<(), brontide::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    idle: Duration,
    interval: Duration,
    retries: u32,
}

impl Keepalive {
    /// Idle time before the first probe.
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
    /// Time between probes.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    /// Unanswered probes before the connection is reset.
    pub const DEFAULT_RETRIES: u32 = 6;

    /// The longest idle time and interval: Linux refuses more (its
    /// `MAX_TCP_KEEPIDLE` and `MAX_TCP_KEEPINTVL`, 32767 s).
    pub const MAX_SECS: u64 = 32767;
    /// The most probes: Linux refuses more (its `MAX_TCP_KEEPCNT`).
    pub const MAX_RETRIES: u32 = 127;

    /// Keepalive with these settings.
    ///
    /// # Errors
    /// [`ConfigError::Keepalive`] if `idle` or `interval` is under a second
    /// (the kernel counts whole seconds) or over [`Self::MAX_SECS`], or
    /// `retries` is 0 or over [`Self::MAX_RETRIES`]: values the kernel would
    /// refuse on every socket.
    pub fn new(idle: Duration, interval: Duration, retries: u32) -> Result<Self, ConfigError> {
        let secs = 1..=Self::MAX_SECS;
        if !secs.contains(&idle.as_secs())
            || !secs.contains(&interval.as_secs())
            || !(1..=Self::MAX_RETRIES).contains(&retries)
        {
            return Err(ConfigError::Keepalive);
        }
        Ok(Self {
            idle,
            interval,
            retries,
        })
    }

    /// Idle time before the first probe.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Time between probes.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Unanswered probes before the connection is reset.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// How long after its last byte a dead link is cut: `idle + interval *
    /// retries` (at most about 48 days: the bounds of [`Self::new`] keep it
    /// from overflowing).
    pub fn dead_after(&self) -> Duration {
        self.idle + self.interval * self.retries
    }
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            idle: Self::DEFAULT_IDLE,
            interval: Self::DEFAULT_INTERVAL,
            retries: Self::DEFAULT_RETRIES,
        }
    }
}

/// Sets `TCP_NODELAY` (messages are written whole), keepalive and, on
/// Linux, delayed acknowledgements from the start (see [`set_options`]).
pub(crate) fn configure(stream: &TcpStream, keepalive: Option<Keepalive>) -> io::Result<()> {
    set_options(SockRef::from(stream), keepalive)
}

/// Sets the options of [`configure`] on a listening socket, for the sockets
/// it accepts. Returns whether they have them without a call of their own:
/// Linux copies a listening socket's options (`TCP_NODELAY`, keepalive and
/// its parameters, the acknowledgement mode) into every socket it accepts,
/// which saves five system calls per accepted connection; elsewhere (or if
/// the options could not be set) each accepted socket is configured itself.
pub(crate) fn configure_listener(listener: &TcpListener, keepalive: Option<Keepalive>) -> bool {
    cfg!(target_os = "linux") && set_options(SockRef::from(listener), keepalive).is_ok()
}

/// The options themselves. On Linux also `TCP_QUICKACK` off: a connection
/// starts in the kernel's "quick ack" mode, where every segment received is
/// acknowledged at once by a segment of its own; off, the acknowledgement
/// rides on the reply (act two acknowledges act one, act three act two)
/// instead of costing a segment each, the mode interactive connections fall
/// into anyway. If no reply comes, the kernel's delayed-ack timer sends it
/// and goes back to quick acks.
fn set_options(socket: SockRef<'_>, keepalive: Option<Keepalive>) -> io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_quickack(false)?;
    match keepalive {
        None => socket.set_keepalive(false),
        Some(k) => {
            let params = TcpKeepalive::new().with_time(k.idle);
            #[cfg(any(
                target_os = "linux",
                target_os = "android",
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "netbsd",
            ))]
            let params = params.with_interval(k.interval).with_retries(k.retries);
            socket.set_tcp_keepalive(&params)
        }
    }
}

/// A TCP connect with the socket options set.
pub(crate) async fn tcp_connect(
    addr: SocketAddr,
    keepalive: Option<Keepalive>,
) -> Result<TcpStream, ConnectError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ConnectError::Tcp { addr, source })?;
    configure(&stream, keepalive).map_err(ConnectError::SocketOption)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Linux-only options both tests expect: quick-ack off and the
    /// keepalive of 17 s, every 3 s, 4 probes.
    #[cfg(target_os = "linux")]
    fn assert_linux_options(socket: &SockRef<'_>) {
        assert!(!socket.tcp_quickack().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(17)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 4);
    }

    /// The largest values are accepted and the kernel takes them; one
    /// more of any is refused at construction, as the kernel would refuse
    /// it on every socket.
    #[tokio::test]
    async fn keepalive_beyond_the_kernels_limits_is_refused_at_construction() {
        let max = Duration::from_secs(Keepalive::MAX_SECS);
        let over = max + Duration::from_secs(1);
        let retries = Keepalive::MAX_RETRIES;
        assert_eq!(
            Keepalive::new(over, max, retries),
            Err(ConfigError::Keepalive)
        );
        assert_eq!(
            Keepalive::new(max, over, retries),
            Err(ConfigError::Keepalive)
        );
        assert_eq!(
            Keepalive::new(max, max, retries + 1),
            Err(ConfigError::Keepalive)
        );
        assert_eq!(
            Keepalive::new(Duration::MAX, Duration::MAX, u32::MAX),
            Err(ConfigError::Keepalive)
        );
        let k = Keepalive::new(max, max, retries).unwrap();
        assert_eq!(k.dead_after(), max * (1 + retries));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tcp_connect(listener.local_addr().unwrap(), Some(k))
            .await
            .expect("the kernel takes the largest values");
        #[cfg(target_os = "linux")]
        {
            let socket = SockRef::from(&stream);
            assert_eq!(socket.tcp_keepalive_time().unwrap(), max);
            assert_eq!(socket.tcp_keepalive_interval().unwrap(), max);
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), retries);
            // What construction now refuses, the kernel refuses too.
            let too_long = TcpKeepalive::new().with_time(over);
            assert!(socket.set_tcp_keepalive(&too_long).is_err());
            let too_many = TcpKeepalive::new().with_retries(retries + 1);
            assert!(socket.set_tcp_keepalive(&too_many).is_err());
        }
    }

    #[tokio::test]
    async fn keepalive_is_set_on_the_socket_as_configured() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let k = Keepalive::new(Duration::from_secs(17), Duration::from_secs(3), 4).unwrap();
        let stream = tcp_connect(addr, Some(k)).await.unwrap();
        let socket = SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert!(stream.nodelay().unwrap());
        #[cfg(target_os = "linux")]
        assert_linux_options(&socket);
        let off = tcp_connect(addr, None).await.unwrap();
        assert!(!SockRef::from(&off).keepalive().unwrap());
    }

    /// On Linux the listening socket's options reach the sockets it
    /// accepts, so the listener sets none per connection. Checked before
    /// any data moves: the acknowledgement mode is not permanent (a
    /// delayed-ack timer that fires puts the kernel back to quick acks).
    #[tokio::test]
    async fn accepted_sockets_take_the_listening_sockets_options() {
        let k = Keepalive::new(Duration::from_secs(17), Duration::from_secs(3), 4).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inherited = configure_listener(&listener, Some(k));
        assert_eq!(inherited, cfg!(target_os = "linux"));
        if !inherited {
            return;
        }
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let socket = SockRef::from(&accepted);
        assert!(accepted.nodelay().unwrap());
        assert!(socket.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        assert_linux_options(&socket);
    }
}
