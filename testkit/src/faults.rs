//! A fault-injecting TCP proxy on 127.0.0.1 (feature `faults`).
//!
//! [`FaultProxy`] forwards bytes both ways between each client that
//! connects to it and an upstream address, and can be switched at run
//! time ([`FaultProxy::set_mode`]) to drop every byte both ways without
//! closing anything ([`Mode::BlackHole`]: a host that lost power, a NAT
//! that forgot the mapping), delay each chunk ([`Mode::Latency`]), or stop
//! reading ([`Mode::Stall`]: bytes wait in the kernel's buffers, none is
//! lost), and back ([`Mode::Forward`], [`FaultProxy::heal`]). One-shot
//! faults hit every connection open at the time: [`FaultProxy::reset`]
//! (an RST both ways, by `SO_LINGER` 0) and [`FaultProxy::half_close`] (a
//! FIN toward one side while the other direction still flows).
//! [`FaultProxy::set_upstream`] sends new connections elsewhere (a peer
//! that moved).
//!
//! Bounded: at most [`FaultProxy::MAX_CONNECTIONS`] relayed at once (more
//! are closed at accept), one 16 KiB buffer per direction. The proxy owns
//! every task it starts: dropping it stops the listener and closes every
//! connection.
//!
//! ```
//! use testkit::faults::{FaultProxy, Mode};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let upstream = TcpListener::bind("127.0.0.1:0").await?;
//! let proxy = FaultProxy::start(upstream.local_addr()?).await?;
//! let mut client = TcpStream::connect(proxy.addr()).await?;
//! let (mut server, _) = upstream.accept().await?;
//!
//! proxy.set_mode(Mode::BlackHole);
//! client.write_all(b"lost").await?;
//! proxy.wait_for(|s| s.dropped == 4).await; // read and dropped, nothing closed
//! proxy.heal();
//! client.write_all(b"kept").await?;
//! let mut got = [0u8; 4];
//! server.read_exact(&mut got).await?;
//! assert_eq!(&got, b"kept");
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with the bytes of every connection, open and new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward bytes both ways as they come.
    Forward,
    /// Read and drop every byte both ways; close nothing, pass on no FIN
    /// or RST (until healed). New connections are accepted and
    /// black-holed too.
    BlackHole,
    /// Forward each chunk read after this delay (order kept).
    Latency(Duration),
    /// Read nothing: bytes wait in the kernel's buffers and the senders
    /// block once those are full. Nothing is lost; [`Mode::Forward`]
    /// delivers it all.
    Stall,
}

/// One end of a relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The end that connected to the proxy.
    Client,
    /// The end the proxy connected to.
    Upstream,
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted (refused ones included).
    pub accepted: u64,
    /// Connections being relayed now.
    pub open: usize,
    /// Bytes forwarded, both ways.
    pub forwarded: u64,
    /// Bytes read and dropped (black hole, or after a half-close), both ways.
    pub dropped: u64,
    /// Connections closed with an RST by [`FaultProxy::reset`].
    pub resets: u64,
    /// Ends of connections (a FIN or an RST) held by a black hole.
    pub held: u64,
}

#[derive(Debug, Clone, Copy)]
struct Control {
    mode: Mode,
    upstream: SocketAddr,
    /// Bumped by each reset: a connection older than the bump resets.
    resets: u64,
    /// Bumped by each half-close toward the client, and toward upstream.
    fin_to_client: u64,
    fin_to_upstream: u64,
}

impl Control {
    fn fins(&self, toward: Side) -> u64 {
        match toward {
            Side::Client => self.fin_to_client,
            Side::Upstream => self.fin_to_upstream,
        }
    }
}

/// A fault-injecting TCP proxy on 127.0.0.1; stops, and closes every
/// connection, when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    control: watch::Sender<Control>,
    stats: watch::Sender<Stats>,
    task: JoinHandle<()>,
}

const CHUNK: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl FaultProxy {
    /// The most connections relayed at once; more are closed at accept.
    pub const MAX_CONNECTIONS: usize = 1024;

    /// Starts a proxy on a free port of 127.0.0.1 that forwards to
    /// `upstream`.
    ///
    /// # Errors
    /// If it cannot bind.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (control, _) = watch::channel(Control {
            mode: Mode::Forward,
            upstream,
            resets: 0,
            fin_to_client: 0,
            fin_to_upstream: 0,
        });
        let (stats, _) = watch::channel(Stats::default());
        let task = tokio::spawn(accept_loop(listener, control.clone(), stats.clone()));
        Ok(FaultProxy {
            addr,
            control,
            stats,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mode now.
    pub fn mode(&self) -> Mode {
        self.control.borrow().mode
    }

    /// Switches every connection, open and new, to `mode`.
    pub fn set_mode(&self, mode: Mode) {
        self.control.send_modify(|c| c.mode = mode);
    }

    /// Back to [`Mode::Forward`].
    pub fn heal(&self) {
        self.set_mode(Mode::Forward);
    }

    /// Resets every connection open now, both ways (an RST to each end).
    pub fn reset(&self) {
        self.control.send_modify(|c| c.resets += 1);
    }

    /// Sends a FIN toward `toward` on every connection open now; bytes
    /// from there are still forwarded the other way, bytes toward it are
    /// dropped from then on.
    pub fn half_close(&self, toward: Side) {
        self.control.send_modify(|c| match toward {
            Side::Client => c.fin_to_client += 1,
            Side::Upstream => c.fin_to_upstream += 1,
        });
    }

    /// Where new connections go.
    pub fn upstream(&self) -> SocketAddr {
        self.control.borrow().upstream
    }

    /// New connections go to `upstream` from now on.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.control.send_modify(|c| c.upstream = upstream);
    }

    /// What it has done so far.
    pub fn stats(&self) -> Stats {
        *self.stats.borrow()
    }

    /// Waits until `done` holds for the proxy's [`Stats`] and returns them.
    pub async fn wait_for(&self, mut done: impl FnMut(&Stats) -> bool) -> Stats {
        let mut rx = self.stats.subscribe();
        // The sender lives in `self`: the wait cannot fail.
        let seen = match rx.wait_for(|s| done(s)).await {
            Ok(s) => *s,
            Err(_) => self.stats(),
        };
        seen
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // relay and so closes every socket.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    control: watch::Sender<Control>,
    stats: watch::Sender<Stats>,
) {
    let mut relays = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = relays.join_next() => continue,
        };
        let Ok((client, _)) = accepted else { continue };
        stats.send_modify(|s| s.accepted += 1);
        if relays.len() >= FaultProxy::MAX_CONNECTIONS {
            continue;
        }
        let control = control.subscribe();
        let stats = stats.clone();
        relays.spawn(async move {
            stats.send_modify(|s| s.open += 1);
            let _open = OpenGuard(stats.clone());
            relay(client, control, &stats).await;
        });
    }
}

/// Counts a relay as closed however it ends (aborted included).
struct OpenGuard(watch::Sender<Stats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.send_modify(|s| s.open -= 1);
    }
}

async fn relay(
    mut client: TcpStream,
    control: watch::Receiver<Control>,
    stats: &watch::Sender<Stats>,
) {
    let start = *control.borrow();
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(start.upstream)).await;
    let Ok(Ok(mut upstream)) = connected else {
        // Nobody there: the client sees the connection refused (an RST).
        let _ = client.set_zero_linger();
        return;
    };
    let rst = {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let up = pump(
            &mut cr,
            &mut uw,
            control.clone(),
            Side::Upstream,
            start,
            stats,
        );
        let down = pump(
            &mut ur,
            &mut cw,
            control.clone(),
            Side::Client,
            start,
            stats,
        );
        tokio::select! {
            ended = async { tokio::try_join!(up, down) } => ended.is_err(),
            () = reset_after(control, start.resets) => {
                stats.send_modify(|s| s.resets += 1);
                true
            }
        }
    };
    if rst {
        // An error on one side (or a reset asked for) becomes an RST on
        // both, as a dead middlebox's would.
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
}

async fn reset_after(mut control: watch::Receiver<Control>, seen: u64) {
    loop {
        if control.borrow_and_update().resets != seen {
            return;
        }
        if control.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Moves bytes from `from` toward `toward` as the mode says, until `from`
/// ends (its FIN is passed on) or an error.
async fn pump(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    mut control: watch::Receiver<Control>,
    toward: Side,
    start: Control,
    stats: &watch::Sender<Stats>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut shut = false;
    loop {
        let now = *control.borrow_and_update();
        if !shut && now.fins(toward) != start.fins(toward) {
            to.shutdown().await?;
            shut = true;
        }
        if now.mode == Mode::Stall {
            if control.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        let n = tokio::select! {
            // A switch of mode is seen before bytes that came after it.
            biased;
            changed = control.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                continue;
            }
            read = from.read(&mut buf) => read,
        };
        let n = match n {
            Ok(n) if n > 0 => n,
            ended => {
                // A black hole swallows FINs and RSTs too: the other end
                // learns of this one only once the proxy heals.
                if control.borrow_and_update().mode == Mode::BlackHole {
                    stats.send_modify(|s| s.held += 1);
                }
                while control.borrow_and_update().mode == Mode::BlackHole {
                    if control.changed().await.is_err() {
                        return Ok(());
                    }
                }
                ended?;
                if !shut {
                    to.shutdown().await?;
                }
                return Ok(());
            }
        };
        let mut mode = control.borrow_and_update().mode;
        while mode == Mode::Stall {
            // Stalled with a chunk in hand: it waits too.
            if control.changed().await.is_err() {
                return Ok(());
            }
            mode = control.borrow_and_update().mode;
        }
        if let Mode::Latency(delay) = mode {
            tokio::time::sleep(delay).await;
            mode = control.borrow().mode;
        }
        if shut || mode == Mode::BlackHole {
            stats.send_modify(|s| s.dropped += n as u64);
            continue;
        }
        to.write_all(&buf[..n]).await?;
        stats.send_modify(|s| s.forwarded += n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy to a listener, one connection through it: (proxy, client
    /// end, upstream end).
    async fn linked() -> (FaultProxy, TcpStream, TcpStream) {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = FaultProxy::start(upstream.local_addr().expect("addr"))
            .await
            .expect("start");
        let client = TcpStream::connect(proxy.addr()).await.expect("connect");
        let (server, _) = upstream.accept().await.expect("accept");
        (proxy, client, server)
    }

    async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await.expect("read");
        buf
    }

    #[tokio::test]
    async fn forwards_both_ways() {
        let (proxy, mut c, mut s) = linked().await;
        c.write_all(b"hello").await.expect("write");
        assert_eq!(read_n(&mut s, 5).await, b"hello");
        s.write_all(b"world").await.expect("write");
        assert_eq!(read_n(&mut c, 5).await, b"world");
        assert_eq!(proxy.stats().forwarded, 10);
    }

    #[tokio::test]
    async fn black_hole_drops_both_ways_without_closing_and_heals() {
        let (proxy, mut c, mut s) = linked().await;
        proxy.set_mode(Mode::BlackHole);
        c.write_all(b"lost1").await.expect("write");
        s.write_all(b"lost2").await.expect("write");
        proxy.wait_for(|s| s.dropped == 10).await;
        assert_eq!(proxy.stats().open, 1);
        proxy.heal();
        c.write_all(b"up").await.expect("write");
        s.write_all(b"down").await.expect("write");
        assert_eq!(read_n(&mut s, 2).await, b"up");
        assert_eq!(read_n(&mut c, 4).await, b"down");
    }

    #[tokio::test]
    async fn black_hole_holds_a_close_until_healed() {
        let (proxy, c, mut s) = linked().await;
        proxy.set_mode(Mode::BlackHole);
        s.write_all(b"x").await.expect("write");
        proxy.wait_for(|s| s.dropped == 1).await;
        drop(c);
        // The FIN reached the proxy and is held: nothing (no EOF) waits
        // at the upstream end; after the heal, the close arrives.
        proxy.wait_for(|s| s.held == 1).await;
        let mut buf = [0u8; 1];
        let e = s.try_read(&mut buf).expect_err("nothing to read, no EOF");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        proxy.heal();
        assert!(matches!(s.read(&mut buf).await, Ok(0) | Err(_)));
    }

    #[tokio::test]
    async fn stall_loses_nothing() {
        let (proxy, mut c, mut s) = linked().await;
        proxy.set_mode(Mode::Stall);
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let writer = {
            let data = data.clone();
            tokio::spawn(async move {
                c.write_all(&data).await.expect("write");
                c
            })
        };
        proxy.heal();
        assert_eq!(read_n(&mut s, data.len()).await, data);
        writer.await.expect("the writer ends");
    }

    #[tokio::test]
    async fn latency_keeps_order() {
        let (proxy, mut c, mut s) = linked().await;
        proxy.set_mode(Mode::Latency(Duration::from_millis(5)));
        for i in 0..20u8 {
            c.write_all(&[i]).await.expect("write");
        }
        assert_eq!(read_n(&mut s, 20).await, (0..20).collect::<Vec<u8>>());
    }

    #[tokio::test]
    async fn reset_sends_an_rst_to_both_ends() {
        let (proxy, mut c, mut s) = linked().await;
        proxy.reset();
        let mut buf = [0u8; 1];
        let e = c.read(&mut buf).await.expect_err("reset");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        let e = s.read(&mut buf).await.expect_err("reset");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        proxy.wait_for(|s| s.open == 0 && s.resets == 1).await;
    }

    #[tokio::test]
    async fn half_close_toward_upstream_leaves_the_other_way_open() {
        let (proxy, mut c, mut s) = linked().await;
        proxy.half_close(Side::Upstream);
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).await.expect("EOF"), 0);
        s.write_all(b"still").await.expect("write");
        assert_eq!(read_n(&mut c, 5).await, b"still");
        assert_eq!(proxy.stats().open, 1);
    }

    #[tokio::test]
    async fn upstream_gone_refuses_and_moving_it_reaches_the_new_one() {
        let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = FaultProxy::start(gone.local_addr().expect("addr"))
            .await
            .expect("start");
        drop(gone);
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut buf = [0u8; 1];
        assert!(matches!(c.read(&mut buf).await, Ok(0) | Err(_)));
        let moved = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        proxy.set_upstream(moved.local_addr().expect("addr"));
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        let (mut s, _) = moved.accept().await.expect("accept");
        c.write_all(b"x").await.expect("write");
        assert_eq!(read_n(&mut s, 1).await, b"x");
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_everything() {
        let (proxy, mut c, mut s) = linked().await;
        let addr = proxy.addr();
        drop(proxy);
        let mut buf = [0u8; 1];
        assert!(matches!(c.read(&mut buf).await, Ok(0) | Err(_)));
        assert!(matches!(s.read(&mut buf).await, Ok(0) | Err(_)));
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
