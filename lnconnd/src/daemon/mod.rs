//! `lnconnd run`: the daemon, and the commands that talk to it.
//!
//! The daemon keeps the persistent peers of its data directory connected,
//! listens for peers, and answers a JSON-RPC control API on a unix socket
//! in the data directory ([`rpc`] lists the methods and error codes).
//! The data directory holds:
//!
//! - `node.key`: the node's secret key (created on first run, mode 0600);
//! - `config.toml`: settings, every `run` option by the same name
//!   ([`config`]);
//! - `peers.sqlite`: the persistent peers and bans, a SQLite file
//!   ([`store`]; `sqlite3` reads it, also while the daemon runs);
//! - `lnconnd.sock`: the control socket while the daemon runs;
//! - `lnconnd.lock`: locked (`flock`) while a daemon runs here, from
//!   before it reads the key until after it closed the store: a second
//!   daemon is refused while the first is still shutting down.
//!
//! Only [`engine`] touches the `server` crate; only [`store`] knows where
//! peers are kept.

pub(crate) mod client;
mod config;
mod control;
mod engine;
mod http;
mod lock;
mod metrics;
mod rpc;
mod store;

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{DataDirArgs, LogFormat, RunArgs};
use crate::node::Interrupt;
use crate::output::Output;
use crate::Failure;
use config::Settings;
use engine::{Engine, Fact, Next};

/// What the control API and the metrics share.
pub(crate) struct Daemon {
    engine: Engine,
    /// Woken when a ban is added or lifted (the expiry timer re-plans).
    bans_changed: Notify,
    info: Info,
    /// Cancelled to stop the daemon (by a signal or the `stop` method).
    stop: CancellationToken,
    /// Cancelled once the daemon has closed its store and is about to
    /// release its data directory: the control socket stops telling
    /// clients that it is shutting down.
    released: CancellationToken,
    /// Cancelled once the node has shut down: what watches its facts
    /// ends then (the facts never close while the daemon holds the node).
    node_down: CancellationToken,
    /// The daemon's own tasks (control clients, scrapes, one-off dials).
    tasks: TaskTracker,
    /// The node's facts, each sent after it was logged and counted: what a
    /// subscriber sees is already in the metrics.
    facts: broadcast::Sender<Fact>,
    /// Facts of the daemon's own (its one-off dials), for the same relay.
    /// Unbounded, but each one-off dial sends at most two, and those dials
    /// are bounded (by the control clients, and by `one_off_slots`).
    notes: mpsc::UnboundedSender<(Fact, oneshot::Sender<()>)>,
    /// One-off dials started without waiting for them.
    one_off_slots: Arc<Semaphore>,
    /// The connections of the clients that asked to stop, closed once
    /// the daemon has released its data directory (so `lnconnd stop`
    /// returns when another daemon may start there).
    parked: std::sync::Mutex<Vec<tokio::net::UnixStream>>,
}

/// One-off dials in flight that no client waits for, at most.
const MAX_UNWAITED_DIALS: usize = 16;

impl Daemon {
    /// Reports a fact of the daemon's own through the relay, and returns
    /// once it is logged and counted (so a reply sent after it is never
    /// ahead of the metrics).
    async fn note(&self, fact: Fact) {
        let (done, counted) = oneshot::channel();
        // Fails only once the relay has ended, after the node shut down.
        if self.notes.send((fact, done)).is_ok() {
            let _ = counted.await;
        }
    }

    /// Keeps a client's connection open until the daemon has exited.
    fn park(&self, stream: tokio::net::UnixStream) {
        // A poisoned lock still holds a valid list.
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        parked.push(stream);
    }

    /// Subscribes to the node's facts from now on.
    fn subscribe(&self) -> Subscription {
        Subscription(self.facts.subscribe())
    }
}

/// A subscription to the daemon's facts.
struct Subscription(broadcast::Receiver<Fact>);

impl Subscription {
    /// The next fact.
    async fn next(&mut self) -> Next {
        match self.0.recv().await {
            Ok(fact) => Next::Fact(fact),
            Err(RecvError::Lagged(n)) => Next::Missed(n),
            Err(RecvError::Closed) => Next::Closed,
        }
    }
}

/// How many facts a slow subscriber may fall behind before missing some.
const FACT_BUFFER: usize = 4096;

/// What `getinfo` reports besides the node.
struct Info {
    data_dir: PathBuf,
    socket: PathBuf,
    listen: Vec<SocketAddr>,
    metrics: Option<SocketAddr>,
    started: std::time::Instant,
}

/// The per-user data directory: `$XDG_DATA_HOME/lnconnd`, else
/// `~/.local/share/lnconnd`.
fn default_data_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from);
    let base = match xdg {
        Some(p) if p.is_absolute() => p,
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(base.join("lnconnd"))
}

/// The data directory asked for, or the default one.
pub(crate) fn data_dir(args: &DataDirArgs) -> Result<PathBuf, Failure> {
    match &args.data_dir {
        Some(dir) => Ok(dir.clone()),
        None => default_data_dir().ok_or_else(|| {
            Failure::Usage("no home directory to keep data in: give --data-dir".into())
        }),
    }
}

/// An error and its causes, each once.
pub(crate) fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Runs the daemon until SIGINT, SIGTERM or the `stop` method.
pub(crate) async fn run(
    args: RunArgs,
    out: Arc<Output>,
    interrupt: &mut Interrupt,
) -> Result<ExitCode, Failure> {
    let dir = data_dir(&args.data)?;
    create_private_dir(&dir)?;
    let settings = Settings::load(&dir, &args).map_err(|e| Failure::Usage(chain(&e)))?;
    init_logs(settings.log_format);
    warn_if_shared(&dir);
    // Before the key, the socket and the store: while a daemon runs here,
    // or is still shutting down, no other touches them. Released last
    // (declared first, dropped last), or by the kernel if we die.
    let dir_lock = lock::DirLock::take(&dir).map_err(|e| match e {
        lock::LockError::Held(_) => Failure::Usage(chain(&e)),
        lock::LockError::Io { .. } => Failure::Runtime(chain(&e)),
    })?;
    let key = match &settings.key_file {
        Some(path) => crate::keys::from_private_file(path)?,
        None => {
            let path = dir.join(crate::keys::KEY_FILE);
            let (key, created) =
                crate::keys::load_or_create(&path).map_err(|e| Failure::Usage(chain(&e)))?;
            if created {
                tracing::info!(path = %path.display(), "created a node key");
            }
            key
        }
    };
    let socket = control::socket_path(&dir);
    // Removed when the daemon ends, however it ends, if still ours.
    let (listener, socket_file) = control::bind(&socket).map_err(|e| Failure::Usage(chain(&e)))?;
    // A bad file is the operator's to look at: a runtime failure (exit
    // status 1), the file untouched.
    let store = store::open(&dir)
        .await
        .map_err(|e| Failure::Runtime(chain(&e)))?;
    // Subscribed before the stored peers start: their first facts (the
    // addresses they skip, their first dials) are logged and counted.
    let (engine, facts) = match Engine::open(&key, &settings, store.clone()).await {
        Ok(opened) => opened,
        Err(e) => {
            let _ = store.close().await;
            // The store's own error, under the file's name.
            let source: Box<dyn Error + Send + Sync> = match e {
                server::ServerError::Store(cause) => Box::new(cause),
                e => Box::new(e),
            };
            let e = store::StoreError::Open {
                path: dir.join(store::STORE_FILE).display().to_string(),
                source,
            };
            return Err(Failure::Runtime(chain(&e)));
        }
    };
    let stored = engine.persistent_peers();
    let (notes, noted) = mpsc::unbounded_channel();
    let mut listen = Vec::new();
    let mut inbound = Vec::new();
    for addr in &settings.listen {
        let (bound, failures) = engine
            .listen(&key, *addr)
            .await
            .map_err(|e| Failure::Runtime(format!("cannot listen on {addr}: {e}")))?;
        listen.push(bound);
        inbound.push(failures);
    }
    let metrics_listener = match settings.metrics {
        Some(addr) => Some(
            metrics::bind(addr)
                .await
                .map_err(|e| Failure::Runtime(format!("cannot serve metrics on {addr}: {e}")))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let daemon = Arc::new(Daemon {
        engine: engine.clone(),
        bans_changed: Notify::new(),
        info: Info {
            data_dir: dir.clone(),
            socket: socket.clone(),
            listen: listen.clone(),
            metrics: metrics_addr,
            started: std::time::Instant::now(),
        },
        stop: CancellationToken::new(),
        node_down: CancellationToken::new(),
        released: CancellationToken::new(),
        tasks: TaskTracker::new(),
        facts: broadcast::channel(FACT_BUFFER).0,
        notes,
        one_off_slots: Arc::new(Semaphore::new(MAX_UNWAITED_DIALS)),
        parked: std::sync::Mutex::new(Vec::new()),
    });

    let metrics = metrics_listener.map(|l| (l, Arc::new(metrics::Metrics::new())));
    for failures in inbound {
        daemon
            .tasks
            .spawn(inbound_failures(failures, daemon.notes.clone()));
    }
    daemon.tasks.spawn(relay(
        facts,
        noted,
        metrics.as_ref().map(|(_, m)| Arc::clone(m)),
        daemon.facts.clone(),
        daemon.node_down.clone(),
    ));
    daemon.tasks.spawn(expire_bans(Arc::clone(&daemon)));
    if let Some((l, m)) = metrics {
        daemon
            .tasks
            .spawn(metrics::serve(l, m, Arc::clone(&daemon)));
    }
    daemon
        .tasks
        .spawn(control::serve(listener, Arc::clone(&daemon), settings.rpc));

    let pubkey = engine.id();
    tracing::info!(%pubkey, data_dir = %dir.display(), peers = stored, "lnconnd running");
    out.event(
        "started",
        json!({
            "pubkey": pubkey.to_string(),
            "data_dir": dir.display().to_string(),
            "rpc_socket": socket.display().to_string(),
            "listen": listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "metrics": metrics_addr.map(|a| a.to_string()),
            "stored_peers": stored,
        }),
        || {
            let at: Vec<String> = listen.iter().map(|a| format!("{pubkey}@{a}")).collect();
            format!(
                "lnconnd running: {}\ncontrol socket {} ({stored} stored peers)",
                at.join(", "),
                socket.display()
            )
        },
    );

    tokio::select! {
        () = interrupt.wait() => tracing::info!("signal received; shutting down"),
        () = daemon.stop.cancelled() => {}
    }
    daemon.stop.cancel();
    let clean = tokio::time::timeout(settings.shutdown_timeout, async {
        engine.shutdown().await;
        daemon.node_down.cancel();
        daemon.tasks.close();
        daemon.tasks.wait().await;
    })
    .await
    .is_ok();
    if !clean {
        tracing::warn!(timeout = ?settings.shutdown_timeout, "shutdown did not finish in time");
    }
    // Every change written so far is durable once this returns.
    let closed = store.close().await;
    if let Err(e) = &closed {
        tracing::error!(error = %chain(e), "closing the peer store failed");
    }
    let clean = clean && closed.is_ok();
    // In this order: the socket (if still ours), the lock, then the
    // connections of the clients waiting for the exit.
    daemon.released.cancel();
    drop(socket_file);
    drop(dir_lock);
    let parked = std::mem::take(&mut *daemon.parked.lock().unwrap_or_else(|p| p.into_inner()));
    drop(parked);
    out.event("stopped", json!({ "clean": clean }), || "stopped".into());
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Creates the data directory (mode 0700) if it is missing.
fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Failure::Usage(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })
}

/// Warns when others may enter the data directory (the key and the
/// socket are private files, but the store is not).
fn warn_if_shared(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "the data directory is open to others: chmod 700 it");
        }
    }
}

/// Logs go to stderr in `format`, filtered by `RUST_LOG` (default: info).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Logs and counts each fact of the node, then hands it to subscribers,
/// until the node has shut down.
async fn relay(
    mut facts: engine::Facts,
    mut noted: mpsc::UnboundedReceiver<(Fact, oneshot::Sender<()>)>,
    metrics: Option<Arc<metrics::Metrics>>,
    out: broadcast::Sender<Fact>,
    node_down: CancellationToken,
) {
    let mut down = HashMap::new();
    loop {
        let next = tokio::select! {
            biased;
            next = facts.next() => next,
            Some((fact, done)) = noted.recv() => {
                handle(&fact, metrics.as_deref(), &mut down, &out);
                let _ = done.send(());
                continue;
            }
            () = node_down.cancelled() => return,
        };
        match next {
            Next::Fact(fact) => handle(&fact, metrics.as_deref(), &mut down, &out),
            Next::Missed(n) => tracing::warn!(missed = n, "fell behind the node's events"),
            Next::Closed => return,
        }
    }
}

/// Lifts each ban when it expires, in the store and in the node, until
/// the daemon stops. A failed lift (the store cannot be written) is
/// retried after a pause that doubles up to a minute: the ended ban stays
/// due meanwhile, and a store that fails at once would otherwise be
/// retried in a busy loop.
async fn expire_bans(d: Arc<Daemon>) {
    /// The longest sleep at once (a clock step is seen within it).
    const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(3600);
    let mut retry = Retry::default();
    loop {
        let now = std::time::SystemTime::now();
        let sleep = match d.engine.next_ban_end() {
            Some(t) => t.duration_since(now).unwrap_or_default().min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = d.bans_changed.notified() => continue,
            () = d.stop.cancelled() => return,
        }
        match d.engine.unban_ended().await {
            Ok(peers) => {
                retry.reset();
                for peer in peers {
                    d.note(Fact::BanExpired { peer }).await;
                }
            }
            Err(e) => {
                let pause = retry.failed();
                tracing::warn!(error = %e, retry_in_s = pause.as_secs(), "cannot lift ended bans");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    // A ban or unban went through: the store may be back.
                    () = d.bans_changed.notified() => {}
                    () = d.stop.cancelled() => return,
                }
            }
        }
    }
}

/// The pause before retrying a failed lift of ended bans: 1 s, doubled
/// after each failure in a row up to 60 s, back to 1 s after a success.
#[derive(Debug, Default)]
struct Retry {
    /// Failures in a row.
    failures: u32,
}

impl Retry {
    const FIRST: std::time::Duration = std::time::Duration::from_secs(1);
    const MAX: std::time::Duration = std::time::Duration::from_secs(60);

    /// Counts a failure; returns how long to wait before the next try.
    fn failed(&mut self) -> std::time::Duration {
        let pause = Self::FIRST
            .checked_mul(1 << self.failures.min(16))
            .map_or(Self::MAX, |p| p.min(Self::MAX));
        self.failures = self.failures.saturating_add(1);
        pause
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Counts a listener's failed handshakes through the relay.
async fn inbound_failures(
    mut failures: engine::Inbound,
    notes: mpsc::UnboundedSender<(Fact, oneshot::Sender<()>)>,
) {
    while let Some(fact) = failures.next().await {
        if notes.send((fact, oneshot::channel().0)).is_err() {
            return;
        }
    }
}

/// Logs, counts and broadcasts one fact.
fn handle(
    fact: &Fact,
    metrics: Option<&metrics::Metrics>,
    down: &mut HashMap<PublicKey, tokio::time::Instant>,
    out: &broadcast::Sender<Fact>,
) {
    log_fact(fact);
    if let Some(m) = metrics {
        m.observe(fact, tokio::time::Instant::now(), down);
    }
    // No subscriber is not an error.
    let _ = out.send(fact.clone());
}

fn log_fact(fact: &Fact) {
    use tracing::{debug, info, warn};
    match fact {
        Fact::Connected {
            peer,
            direction,
            addr,
        } => {
            info!(%peer, direction, addr = addr.as_deref().unwrap_or(""), "connected")
        }
        Fact::Disconnected {
            peer,
            reason,
            lasted,
            reconnecting,
            ..
        } => {
            info!(%peer, reason, lasted_ms = lasted.as_millis() as u64, reconnecting, "disconnected")
        }
        Fact::DialStarted { peer, addr } => debug!(%peer, addr, "dialing"),
        Fact::DialFailed {
            peer,
            addr,
            error,
            category,
        } => {
            info!(%peer, addr, error, category = category.name(), "dial failed")
        }
        Fact::DuplicateResolved { peer, kept } => {
            info!(%peer, kept, "duplicate connection resolved")
        }
        Fact::RefusedBanned { peer } => info!(%peer, "banned peer refused"),
        Fact::Waiting { peer, wait, .. } => {
            debug!(%peer, wait_ms = wait.as_millis() as u64, "waiting")
        }
        Fact::AddressSkipped { peer, addr, reason } => {
            warn!(%peer, addr, reason, "address skipped")
        }
        Fact::AwaitingAddrs { peer } => warn!(%peer, "no address to dial"),
        Fact::Idle { peer } => debug!(%peer, "idle"),
        Fact::WorkerStopped { peer } => debug!(%peer, "worker stopped"),
        Fact::BanExpired { peer } => info!(%peer, "ban expired"),
        Fact::InboundFailed { from, code, error } => {
            info!(%from, code, error, "inbound handshake failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failed_ban_lifts_back_off_from_a_second_to_a_minute() {
        let mut retry = Retry::default();
        let pauses: Vec<u64> = (0..10).map(|_| retry.failed().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        for _ in 0..100 {
            assert_eq!(retry.failed(), Duration::from_secs(60), "bounded");
        }
        retry.reset();
        assert_eq!(
            retry.failed(),
            Duration::from_secs(1),
            "a success resets it"
        );
    }
}
