//! SOCKS5 proxies for tests (feature `socks`). [`FakeSocks5`], a fake proxy
//! on 127.0.0.1: it records what each
//! client asked for (methods offered, credentials, address type, host,
//! port) and connects wherever the test routes it, so onion names can reach
//! a local listener and a test can check what a client sent. [`Microsocks`],
//! a real one.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One CONNECT request as the fake proxy received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksRequest {
    /// The authentication methods the client offered (0: none, 2: password).
    pub methods: Vec<u8>,
    /// The username and password, if the client authenticated (RFC 1929).
    pub credentials: Option<(String, String)>,
    /// The address type: 1 IPv4, 3 domain name, 4 IPv6.
    pub atyp: u8,
    /// The host: the name as sent, or the IP address as text.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// What the fake proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Connect to this address and relay bytes both ways.
    To(SocketAddr),
    /// Answer with this SOCKS5 reply code (1 to 8) and close.
    Refuse(u8),
    /// Never answer (for timeout tests); the connection is held open.
    Stall,
}

type Router = dyn Fn(&SocksRequest) -> Route + Send + Sync;

/// A fake SOCKS5 proxy; stops (and drops its connections) when dropped.
pub struct FakeSocks5 {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<SocksRequest>>>,
    task: JoinHandle<()>,
}

impl FakeSocks5 {
    /// Starts a proxy on a free port of 127.0.0.1 that routes each request
    /// with `route`.
    ///
    /// # Errors
    /// If it cannot bind.
    pub async fn start(
        route: impl Fn(&SocksRequest) -> Route + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let route: Arc<Router> = Arc::new(route);
        let seen = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let route = Arc::clone(&route);
                let seen = Arc::clone(&seen);
                conns.spawn(async move {
                    let _ = serve(client, &*route, &seen).await;
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            task,
        })
    }

    /// A proxy that sends every request to `target`, whatever it names.
    ///
    /// # Errors
    /// If it cannot bind.
    pub async fn forwarding_to(target: SocketAddr) -> io::Result<Self> {
        Self::start(move |_| Route::To(target)).await
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<SocksRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeSocks5 {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection.
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    route: &Router,
    seen: &Mutex<Vec<SocksRequest>>,
) -> io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    let credentials = if methods.contains(&2) {
        client.write_all(&[5, 2]).await?;
        let _version = client.read_u8().await?;
        let user = read_short(&mut client).await?;
        let pass = read_short(&mut client).await?;
        client.write_all(&[1, 0]).await?;
        Some((user, pass))
    } else {
        client.write_all(&[5, 0]).await?;
        None
    };
    let mut req = [0u8; 4];
    client.read_exact(&mut req).await?;
    let atyp = req[3];
    let host = match atyp {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
        _ => read_short(&mut client).await?,
    };
    let port = client.read_u16().await?;
    let request = SocksRequest {
        methods,
        credentials,
        atyp,
        host,
        port,
    };
    let decision = route(&request);
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
    const BOUND: [u8; 6] = [0, 0, 0, 0, 0, 0];
    match decision {
        Route::To(target) => match TcpStream::connect(target).await {
            Ok(mut upstream) => {
                client.write_all(&[5, 0, 0, 1]).await?;
                client.write_all(&BOUND).await?;
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
            }
            Err(_) => {
                client.write_all(&[5, 5, 0, 1]).await?;
                client.write_all(&BOUND).await?;
            }
        },
        Route::Refuse(code) => {
            client.write_all(&[5, code, 0, 1]).await?;
            client.write_all(&BOUND).await?;
        }
        Route::Stall => std::future::pending::<()>().await,
    }
    Ok(())
}

/// A length byte then that many bytes, as text.
async fn read_short(s: &mut TcpStream) -> io::Result<String> {
    let len = s.read_u8().await?;
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A real SOCKS5 proxy: the `microsocks` program (Debian package
/// `microsocks`), started on a free port of 127.0.0.1 and killed on drop.
pub struct Microsocks {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Microsocks {
    /// Starts `microsocks`, requiring `credentials` (username, password) if
    /// given, and waits until it accepts connections.
    ///
    /// If the program is missing and we are root, installs it first with
    /// `apt-get` (once per test process; `.ci/run` installs it too).
    /// Returns `None`, after printing why, if it still cannot run and this
    /// is not CI; in CI (`CI` set in the environment) a missing program is a
    /// failure.
    ///
    /// # Panics
    /// If it cannot be started in CI, or does not listen within 10 s.
    pub fn start(credentials: Option<(&str, &str)>) -> Option<Self> {
        use std::process::{Command, Stdio};
        ensure_installed();
        // A free port: bind, read it, release it.
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port on 127.0.0.1");
        let mut cmd = Command::new("microsocks");
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((user, pass)) = credentials {
            cmd.args(["-u", user, "-P", pass]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!(
                    "skipped: cannot run microsocks ({e}); install it with \
                     `apt-get install microsocks` (.ci/run does)"
                );
                return None;
            }
            Err(e) => panic!("microsocks is required in CI: {e}"),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let proxy = Self { child, addr };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "microsocks did not listen on {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Some(proxy)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs microsocks with apt-get if it is missing and we are root; once
/// per process.
fn ensure_installed() {
    use std::process::{Command, Stdio};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let quiet = |cmd: &mut Command| {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let present = quiet(Command::new("sh").args(["-c", "command -v microsocks"]));
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if present || !root {
            return;
        }
        let install = || {
            quiet(Command::new("apt-get").args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "microsocks",
            ]))
        };
        if !install() {
            let _ = quiet(Command::new("apt-get").args(["update", "-qq"]));
            let _ = install();
        }
    });
}
