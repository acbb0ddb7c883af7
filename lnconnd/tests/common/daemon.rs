//! Running `lnconnd run` from tests: a daemon on a temporary data
//! directory, in-test BOLT 8 peers for it to keep connected, its event
//! stream, and a plain HTTP scrape of its metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use brontide::{Listener, ListenerConfig, MessageDecoder, MessageEncoder, NodeKeyPair, SecretKey};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::lnconnd;

/// Every wait in these tests gives up after this long: a safety net for a
/// broken build, never a timing margin (each waits on an observable fact).
pub const SAFETY: Duration = Duration::from_secs(120);

/// A temporary data directory, removed at the end. Its path is short: a
/// unix socket's path is limited to about 100 bytes.
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(name: &str, config: &str) -> Self {
        let dir = PathBuf::from(format!("/tmp/lnconnd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the data dir");
        std::fs::write(dir.join("config.toml"), config).expect("write config.toml");
        DataDir(dir)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }

    pub fn socket(&self) -> PathBuf {
        self.0.join("lnconnd.sock")
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config with short retries, so the tests take seconds.
pub const FAST: &str = "listen = [\"127.0.0.1:0\"]\nmetrics = \"127.0.0.1:0\"\n\
    [peers]\nbackoff_min = \"50ms\"\nbackoff_max = \"400ms\"\nconnect_timeout = \"5s\"\n\
    startup_batch = 100\nstartup_spread = \"0s\"\n";

/// A running `lnconnd run` and what it printed on start.
pub struct Daemon {
    pub child: Child,
    pub started: Value,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    pub fn start(dir: &DataDir) -> Self {
        let log = std::fs::File::create(dir.0.join("daemon.log")).expect("log file");
        let mut child = lnconnd()
            .args(["run", "--data-dir", dir.path(), "--json"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn the daemon");
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let first = lines.recv_timeout(SAFETY).unwrap_or_else(|_| {
            let log = std::fs::read_to_string(dir.0.join("daemon.log")).unwrap_or_default();
            panic!("the daemon printed nothing:\n{log}")
        });
        let started: Value = serde_json::from_str(&first).expect("JSON");
        assert_eq!(started["event"], "started", "{first}");
        Daemon {
            child,
            started,
            lines,
        }
    }

    pub fn pubkey(&self) -> &str {
        self.started["pubkey"].as_str().expect("pubkey")
    }

    pub fn metrics(&self) -> SocketAddr {
        let m = self.started["metrics"].as_str().expect("metrics address");
        m.parse().expect("socket address")
    }

    /// Sends SIGTERM and waits for the exit; returns the status and the
    /// last line printed.
    pub fn terminate(self) -> (ExitStatus, Value) {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success());
        self.wait()
    }

    /// Waits for the exit (after `stop`); returns the status and the last
    /// line printed.
    pub fn wait(mut self) -> (ExitStatus, Value) {
        let mut last = Value::Null;
        while let Ok(line) = self.lines.recv_timeout(SAFETY) {
            last = serde_json::from_str(&line).expect("JSON");
        }
        let status = self.child.wait().expect("wait");
        (status, last)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of a child's output, read on a thread (so a wait can time out).
pub fn read_lines(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Runs a CLI command against the daemon of `dir` with `--json`; returns
/// the parsed line, or panics with stderr.
pub fn cli(dir: &DataDir, args: &[&str]) -> Value {
    let out = lnconnd()
        .args(args)
        .args(["--data-dir", dir.path(), "--json"])
        .output()
        .expect("run lnconnd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lnconnd {args:?}: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON line")
}

/// `lnconnd events` on the daemon of `dir`, subscribed.
pub struct Events {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Events {
    pub fn subscribe(dir: &DataDir) -> Self {
        let mut child = lnconnd()
            .args(["events", "--data-dir", dir.path(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn events");
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let mut events = Events { child, lines };
        let first = events.next();
        assert_eq!(first["event"], "subscribed", "{first}");
        events
    }

    /// The next event (panics after [`SAFETY`]).
    pub fn next(&mut self) -> Value {
        let line = self.lines.recv_timeout(SAFETY).expect("an event in time");
        serde_json::from_str(&line).expect("JSON")
    }

    /// Reads events until `done(event)` has held for every key in `keys`
    /// (an event's `id`). Returns the events read.
    pub fn until_each(&mut self, keys: &[String], done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut left: std::collections::HashSet<&String> = keys.iter().collect();
        let mut seen = Vec::new();
        let deadline = Instant::now() + SAFETY;
        while !left.is_empty() {
            assert!(Instant::now() < deadline, "still waiting for {left:?}");
            let e = self.next();
            if done(&e) {
                if let Some(id) = e["id"].as_str() {
                    left.remove(&id.to_owned());
                }
            }
            seen.push(e);
        }
        seen
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET of `http://addr/metrics`, by hand; returns the body.
pub fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to metrics");
    stream.set_read_timeout(Some(SAFETY)).expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    body.to_owned()
}

/// The value of one sample line of a scrape (`name{labels}` exactly).
pub fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .expect("a number")
}

/// A BOLT 8 peer inside the test: accepts, sends `init`, answers pings.
pub struct Peer {
    pub secret: SecretKey,
    pub addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Peer {
    pub fn start(rt: &Runtime, seed: u8, addr: SocketAddr) -> Peer {
        let secret = SecretKey::from_slice(&[seed; 32]).expect("valid key");
        let listener = rt
            .block_on(Listener::bind(
                addr,
                NodeKeyPair::new(secret),
                ListenerConfig::default(),
            ))
            .expect("bind a peer");
        let addr = listener.local_addr();
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (s, t) = (stop.clone(), tasks.clone());
        tasks.spawn_on(accept(listener, s, t), rt.handle());
        Peer {
            secret,
            addr,
            stop,
            tasks,
        }
    }

    pub fn pubkey(&self) -> String {
        NodeKeyPair::new(self.secret).public_key().to_string()
    }

    pub fn node(&self) -> String {
        format!("{}@{}", self.pubkey(), self.addr)
    }

    /// Closes the listener and every connection, and waits until they are.
    pub fn kill(self, rt: &Runtime) {
        self.stop.cancel();
        self.tasks.close();
        rt.block_on(self.tasks.wait());
    }
}

async fn accept(mut listener: Listener, stop: CancellationToken, tasks: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let Some(accepted) = accepted else { break };
        tasks.spawn(session(accepted.connection, stop.clone()));
    }
    listener.shutdown().await;
}

async fn session(conn: brontide::Connection<tokio::net::TcpStream>, stop: CancellationToken) {
    let (stream, enc, dec) = conn.into_parts();
    let (read, write) = stream.into_split();
    let mut rx = FramedRead::new(read, MessageDecoder::new(dec));
    let mut tx = FramedWrite::new(write, MessageEncoder::new(enc));
    // init: type 16, no global features, no features.
    if tx.send(vec![0u8, 16, 0, 0, 0, 0]).await.is_err() {
        return;
    }
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => return,
            m = rx.next() => m,
        };
        let Some(Ok(msg)) = msg else { return };
        // ping (18): answer with a pong (19) of the asked length.
        if msg.len() >= 4 && msg[..2] == [0, 18] {
            let n = u16::from_be_bytes([msg[2], msg[3]]);
            let mut pong = vec![0, 19];
            pong.extend_from_slice(&n.to_be_bytes());
            pong.resize(4 + usize::from(n), 0);
            if tx.send(pong).await.is_err() {
                return;
            }
        }
    }
}

/// The store file of a data directory (`peers.sqlite`), opened to read
/// (the daemon may be running: the store is in WAL mode, shared).
fn store(dir: &Path) -> Option<rusqlite::Connection> {
    let path = dir.join("peers.sqlite");
    path.exists()
        .then(|| rusqlite::Connection::open(path).expect("open the store"))
}

/// The peers in the store file of a data directory, by key (none before
/// the daemon's first start).
pub fn stored_peers(dir: &Path) -> Vec<String> {
    let Some(db) = store(dir) else {
        return Vec::new();
    };
    let mut q = db
        .prepare("SELECT id FROM peer ORDER BY id")
        .expect("query");
    let rows = q.query_map([], |r| r.get(0)).expect("rows");
    rows.collect::<Result<_, _>>().expect("ids")
}

/// What a user changed in the store (the peers, why persistent, their
/// user-given addresses; the bans), one line each: not the history the
/// daemon records as connections come and go.
pub fn stored_by_users(dir: &Path) -> Vec<String> {
    let Some(db) = store(dir) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut q = db
        .prepare(
            "SELECT 'peer ' || id || ' ' || user_asked || ' ' || has_channels FROM peer \
             UNION ALL SELECT 'addr ' || peer || ' ' || position || ' ' || addr FROM peer_addr WHERE kind = 'user' \
             UNION ALL SELECT 'ban ' || peer || ' ' || until_unix_ns FROM ban \
             ORDER BY 1",
        )
        .expect("query");
    let rows = q.query_map([], |r| r.get::<_, String>(0)).expect("rows");
    for row in rows {
        lines.push(row.expect("row"));
    }
    lines
}

/// Each stored peer's last good address, by key.
pub fn stored_last_good(dir: &Path) -> std::collections::HashMap<String, String> {
    let Some(db) = store(dir) else {
        return Default::default();
    };
    let mut q = db
        .prepare("SELECT id, last_addr FROM peer WHERE last_addr IS NOT NULL")
        .expect("query");
    let rows = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows");
    rows.collect::<Result<_, _>>().expect("rows")
}
