//! The control socket: a unix socket in the data directory (mode 0600)
//! carrying the JSON-RPC of [`super::rpc`], one object per line.
//!
//! Bounded against bad clients: at most `max_clients` at once (the next is
//! sent a `-32002` error and closed), a request line of at most
//! `max_request_bytes` (a longer one gets `-32001` and the connection is
//! closed), and a client that sends no complete line for `idle_timeout`
//! (or does not read its replies for as long) is closed. Subscribers are
//! exempt from the idle timeout while they read.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::config::RpcLimits;
use super::engine::{Fact, Next};
use super::rpc::{self, code, Outcome, RpcError};
use super::Daemon;

/// The socket's name inside the data directory.
pub(crate) const SOCKET_FILE: &str = "lnconnd.sock";

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SocketError {
    /// A daemon answers on the socket already.
    #[error("a daemon is already running with {0} (stop it with `lnconnd stop`)")]
    Running(String),
    /// Something that is not a socket sits at the path.
    #[error("{0} exists and is not a socket; move it away")]
    NotSocket(String),
    /// Binding or setting the mode failed.
    #[error("cannot create the control socket {path}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Binds the control socket at `path`: refused if a live daemon answers
/// there, a stale socket (nobody answers) is removed first. Call it with
/// the data directory's lock held (see [`super::lock`]).
///
/// The socket is bound in a fresh private directory (mode 0700) next to
/// `path`, set to mode 0600 there, and only then renamed into place: no
/// one else can connect to it before its mode is set, whatever the data
/// directory's mode and the process's umask.
pub(crate) fn bind(path: &Path) -> Result<(UnixListener, SocketFile), SocketError> {
    use std::os::unix::fs::DirBuilderExt;
    let shown = path.display().to_string();
    let io_err = |source| SocketError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(SocketError::NotSocket(shown)),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(SocketError::Running(shown)),
            Err(_) => {
                tracing::info!(socket = %shown, "removing a stale control socket");
                std::fs::remove_file(path).map_err(io_err)?;
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let private = path.with_file_name(BIND_DIR);
    // Left by a daemon that died while binding (we hold the lock: no
    // daemon binds there now). Not following a symlink.
    match std::fs::symlink_metadata(&private) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&private).map_err(io_err)?,
        Ok(_) => std::fs::remove_file(&private).map_err(io_err)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_err)?;
    let staged = private.join("s");
    let bound = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    let listener = bound.map_err(io_err)?;
    let file = SocketFile::of(path, listener.try_clone().map_err(io_err)?).map_err(io_err)?;
    listener.set_nonblocking(true).map_err(io_err)?;
    let listener = UnixListener::from_std(listener).map_err(io_err)?;
    Ok((listener, file))
}

/// The private directory a socket is bound in before it is moved into
/// place (short: a socket path is limited to about 100 bytes).
const BIND_DIR: &str = ".bind";

/// The control socket we bound: removed when dropped, if the file at its
/// path is still ours (the same device and inode), never another
/// daemon's.
///
/// It holds the bound socket open until then: a bound socket keeps its
/// file's inode allocated, so no other file can have been given the
/// same inode number meanwhile. (A client that connects after the
/// control loop ended waits, and sees the connection closed when the
/// daemon exits.)
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
    /// Dropped after the check (fields drop after `drop`).
    _pin: std::os::unix::net::UnixListener,
}

impl SocketFile {
    /// The socket now at `path`, bound by `pin`.
    fn of(path: &Path, pin: std::os::unix::net::UnixListener) -> io::Result<SocketFile> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
            _pin: pin,
        })
    }

    /// Whether the file at the path is the one we bound.
    fn still_ours(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a daemon answers on `path`.
pub(crate) fn is_live(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Serves the socket until the daemon stops; then, until the daemon has
/// released its data directory, tells each client that it is shutting
/// down (`-32003`) rather than leave it waiting on a socket no one serves.
pub(crate) async fn serve(listener: UnixListener, daemon: Arc<Daemon>, limits: RpcLimits) {
    serve_until_stop(&listener, &daemon, limits).await;
    // Not one of the daemon's tracked tasks: its shutdown does not wait
    // for this; it ends when the daemon releases the directory.
    tokio::spawn(refuse(listener, daemon.released.clone()));
}

/// Answers every client with `-32003` and closes it, until `released`.
async fn refuse(listener: UnixListener, released: tokio_util::sync::CancellationToken) {
    let e = RpcError::new(code::SHUTTING_DOWN, "the daemon is shutting down");
    let line = format!("{}\n", rpc::response(Value::Null, Err(e)));
    loop {
        tokio::select! {
            () = released.cancelled() => return,
            accepted = listener.accept() => match accepted {
                // Never waits: the line fits an empty socket buffer.
                Ok((stream, _)) => drop(stream.try_write(line.as_bytes())),
                Err(_) => tokio::select! {
                    () = released.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                },
            },
        }
    }
}

async fn serve_until_stop(listener: &UnixListener, daemon: &Arc<Daemon>, limits: RpcLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_clients));
    loop {
        let stream = tokio::select! {
            () = daemon.stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    // Usually out of file descriptors: give the others a
                    // moment rather than spin.
                    tokio::select! {
                        () = daemon.stop.cancelled() => break,
                        () = tokio::time::sleep(std::time::Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            // Never waits: a reply that does not fit the socket buffer is
            // dropped with the connection.
            let line = rpc::response(
                Value::Null,
                Err(RpcError::new(
                    code::TOO_MANY_CLIENTS,
                    "too many clients; try again later",
                )),
            );
            let _ = stream.try_write(format!("{line}\n").as_bytes());
            continue;
        };
        let daemon = Arc::clone(daemon);
        let tasks = daemon.tasks.clone();
        tasks.spawn(async move { client(stream, permit, &daemon, limits).await });
    }
}

/// Serves one client until it leaves, misbehaves or the daemon stops.
async fn client(
    stream: UnixStream,
    permit: OwnedSemaphorePermit,
    d: &Arc<Daemon>,
    limits: RpcLimits,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = FramedRead::new(
        read,
        LinesCodec::new_with_max_length(limits.max_request_bytes),
    );
    // Declared last, so dropped first: the slot is free before the client
    // can see its connection closed.
    let _permit = permit;
    loop {
        let next = tokio::select! {
            () = d.stop.cancelled() => return,
            next = tokio::time::timeout(limits.idle_timeout, lines.next()) => next,
        };
        let line = match next {
            Err(_) => {
                tracing::debug!("control client idle; closing");
                return;
            }
            Ok(None) => return,
            Ok(Some(Err(LinesCodecError::MaxLineLengthExceeded))) => {
                let e = RpcError::new(
                    code::REQUEST_TOO_LARGE,
                    format!("request larger than {} bytes", limits.max_request_bytes),
                );
                let _ = send(&mut write, &rpc::response(Value::Null, Err(e)), &limits).await;
                return;
            }
            Ok(Some(Err(LinesCodecError::Io(e)))) => {
                // Not UTF-8, or the socket failed: answer if we can, close.
                let e = RpcError::new(code::PARSE_ERROR, format!("parse error: {e}"));
                let _ = send(&mut write, &rpc::response(Value::Null, Err(e)), &limits).await;
                return;
            }
            Ok(Some(Ok(line))) => line,
        };
        if line.trim().is_empty() {
            continue;
        }
        let call = match rpc::parse(&line) {
            Ok(call) => call,
            Err((id, e)) => {
                if send(&mut write, &rpc::response(id, Err(e)), &limits)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        tracing::debug!(method = %call.method, "control request");
        let outcome = rpc::dispatch(d, &call).await;
        let id = call.id.clone().unwrap_or(Value::Null);
        let reply = |r| rpc::response(id.clone(), r);
        match outcome {
            Outcome::Reply(result) => {
                if call.id.is_some() && send(&mut write, &reply(result), &limits).await.is_err() {
                    return;
                }
            }
            Outcome::Stop => {
                tracing::info!("stop requested over the control socket");
                if call.id.is_some() {
                    let _ = send(&mut write, &reply(Ok(json!("shutting down"))), &limits).await;
                }
                // Kept open until the daemon has released the data
                // directory: the client sees the end of the stream when
                // another daemon may start (or when this process dies).
                if let Ok(stream) = lines.into_inner().reunite(write) {
                    d.park(stream);
                }
                d.stop.cancel();
                return;
            }
            Outcome::Subscribe => {
                // Subscribed before the reply: nothing after it is missed.
                let facts = d.subscribe();
                if send(
                    &mut write,
                    &reply(Ok(json!({ "subscribed": true }))),
                    &limits,
                )
                .await
                .is_err()
                {
                    return;
                }
                stream_events(facts, &mut lines, &mut write, d, &limits).await;
                return;
            }
        }
    }
}

/// Sends the node's facts as `event` notifications until the client
/// closes, stops reading, or the daemon stops.
async fn stream_events(
    mut facts: super::Subscription,
    lines: &mut FramedRead<tokio::net::unix::OwnedReadHalf, LinesCodec>,
    write: &mut OwnedWriteHalf,
    d: &Daemon,
    limits: &RpcLimits,
) {
    loop {
        let line = tokio::select! {
            () = d.stop.cancelled() => return,
            // Anything the client sends now, or its leaving, ends it.
            _ = lines.next() => return,
            next = facts.next() => match next {
                Next::Fact(fact) => rpc::notification("event", fact_json(&fact)),
                Next::Missed(n) => rpc::notification("lagged", json!({ "missed": n })),
                Next::Closed => return,
            },
        };
        if send(write, &line, limits).await.is_err() {
            return;
        }
    }
}

/// Writes one line, giving up after the idle timeout.
async fn send(write: &mut OwnedWriteHalf, line: &str, limits: &RpcLimits) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    match tokio::time::timeout(limits.idle_timeout, write.write_all(&bytes)).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// A fact as an event notification's params.
pub(crate) fn fact_json(fact: &Fact) -> Value {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    match fact {
        Fact::Connected {
            peer,
            direction,
            addr,
        } => {
            json!({ "event": "connected", "id": peer.to_string(), "direction": direction, "address": addr })
        }
        Fact::Disconnected {
            peer,
            direction,
            reason,
            lasted,
            reconnecting,
        } => json!({
            "event": "disconnected", "id": peer.to_string(), "direction": direction,
            "reason": reason, "lasted_ms": ms(*lasted), "reconnecting": reconnecting,
        }),
        Fact::DialStarted { peer, addr } => {
            json!({ "event": "dial_started", "id": peer.to_string(), "address": addr })
        }
        Fact::DialFailed {
            peer,
            addr,
            error,
            category,
        } => json!({
            "event": "dial_failed", "id": peer.to_string(), "address": addr,
            "error": error, "category": category.name(),
        }),
        Fact::DuplicateResolved { peer, kept } => {
            json!({ "event": "duplicate_resolved", "id": peer.to_string(), "kept": kept })
        }
        Fact::RefusedBanned { peer } => {
            json!({ "event": "refused_banned", "id": peer.to_string() })
        }
        Fact::Waiting {
            peer,
            wait,
            backoff,
        } => json!({
            "event": "waiting", "id": peer.to_string(), "wait_ms": ms(*wait),
            "backoff_ms": backoff.map(ms),
        }),
        Fact::AddressSkipped { peer, addr, reason } => json!({
            "event": "address_skipped", "id": peer.to_string(), "address": addr, "reason": reason,
        }),
        Fact::AwaitingAddrs { peer } => {
            json!({ "event": "awaiting_addrs", "id": peer.to_string() })
        }
        Fact::Idle { peer } => json!({ "event": "idle", "id": peer.to_string() }),
        Fact::WorkerStopped { peer } => {
            json!({ "event": "worker_stopped", "id": peer.to_string() })
        }
        Fact::BanExpired { peer } => json!({ "event": "ban_expired", "id": peer.to_string() }),
        Fact::InboundFailed { from, code, error } => json!({
            "event": "inbound_failed", "from": from.to_string(), "code": code, "error": error,
        }),
    }
}

/// The socket path of a data directory.
pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lnconnd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[tokio::test]
    async fn a_stopping_daemon_says_so_until_it_released_the_directory() {
        use std::io::BufRead;
        let dir = scratch("refuse");
        let path = socket_path(&dir);
        let (listener, _file) = bind(&path).expect("bind");
        let released = tokio_util::sync::CancellationToken::new();
        let refusing = tokio::spawn(refuse(listener, released.clone()));
        let client = std::thread::spawn({
            let path = path.clone();
            move || {
                let stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
                let mut line = String::new();
                std::io::BufReader::new(stream)
                    .read_line(&mut line)
                    .expect("read");
                line
            }
        });
        let line = tokio::task::spawn_blocking(move || client.join().expect("client"))
            .await
            .expect("joined");
        let reply: Value = serde_json::from_str(&line).expect("a JSON reply");
        assert_eq!(reply["error"]["code"], code::SHUTTING_DOWN, "{reply}");
        released.cancel();
        refusing.await.expect("ends once released");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_socket_is_private_and_only_ours_is_removed() {
        let dir = scratch("sockfile");
        let path = socket_path(&dir);
        let (listener, file) = bind(&path).expect("bind");
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.join(BIND_DIR).exists(), "the staging dir is gone");
        drop(listener);
        // Another daemon's socket took the path: ours must leave it be.
        std::fs::remove_file(&path).expect("remove");
        let other = std::os::unix::net::UnixListener::bind(&path).expect("another socket");
        drop(file);
        assert!(path.exists(), "another daemon's socket is not removed");
        drop(other);

        let (_listener, file) = bind(&path).expect("a stale socket is replaced");
        drop(file);
        assert!(!path.exists(), "our own socket is removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
