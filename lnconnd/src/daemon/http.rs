//! The tiny HTTP/1.1 responder the metrics are served by: one `GET` per
//! connection, answered and closed.
//!
//! Bounded against idle clients: at most [`Limits::max`] connections are
//! served at once, a connection gets [`Limits::head`] to send its request
//! head and [`Limits::total`] for the whole exchange, and when every slot
//! is taken a new connection evicts the oldest one that has not yet sent
//! its whole head (so connections that send nothing cannot keep a scraper
//! out; one that is answering is never evicted, and if all are, the new
//! one is closed).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long connections may take, and how many are served at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections served at once.
    pub(crate) max: usize,
    /// Time to send the request head.
    pub(crate) head: Duration,
    /// Time for the whole exchange (head, and reading the answer).
    pub(crate) total: Duration,
}

/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// The connections being served, oldest first.
#[derive(Default)]
struct Pool {
    next_id: u64,
    conns: VecDeque<Slot>,
}

struct Slot {
    id: u64,
    /// Still reading its head: may be evicted.
    reading: bool,
    evict: CancellationToken,
}

impl Pool {
    /// A slot for a new connection, evicting the oldest one still reading
    /// its head if all are taken; `None` if every slot is answering.
    fn admit(&mut self, max: usize) -> Option<(u64, CancellationToken)> {
        if self.conns.len() >= max {
            let oldest = self.conns.iter().position(|s| s.reading)?;
            if let Some(evicted) = self.conns.remove(oldest) {
                evicted.evict.cancel();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let evict = CancellationToken::new();
        self.conns.push_back(Slot {
            id,
            reading: true,
            evict: evict.clone(),
        });
        Some((id, evict))
    }

    /// The connection has sent its head: no longer evicted.
    fn answering(&mut self, id: u64) {
        if let Some(s) = self.conns.iter_mut().find(|s| s.id == id) {
            s.reading = false;
        }
    }

    fn leave(&mut self, id: u64) {
        self.conns.retain(|s| s.id != id);
    }
}

/// Locks the pool (a poisoned lock still holds a valid pool: each change
/// is one call that does not panic midway).
fn lock(pool: &Mutex<Pool>) -> std::sync::MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(|p| p.into_inner())
}

/// Frees a connection's slot when its task ends, however it ends.
struct Leave(Arc<Mutex<Pool>>, u64);

impl Drop for Leave {
    fn drop(&mut self) {
        lock(&self.0).leave(self.1);
    }
}

/// Serves `GET /metrics` with what `render` returns, until `stop`.
pub(crate) async fn serve<R>(
    listener: TcpListener,
    render: Arc<R>,
    limits: Limits,
    stop: CancellationToken,
    tasks: TaskTracker,
) where
    R: Fn() -> String + Send + Sync + 'static,
{
    let pool = Arc::new(Mutex::new(Pool::default()));
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => match a {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    // Usually out of file descriptors: not a busy loop.
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let Some((id, evict)) = lock(&pool).admit(limits.max) else {
            tracing::debug!("metrics: every slot is answering; closing a new connection");
            continue;
        };
        let leave = Leave(Arc::clone(&pool), id);
        let (render, pool, stop) = (Arc::clone(&render), Arc::clone(&pool), stop.clone());
        tasks.spawn(async move {
            let _leave = leave;
            let exchange = tokio::time::timeout(
                limits.total,
                exchange(stream, &*render, limits.head, &pool, id),
            );
            tokio::select! {
                _ = exchange => {}
                () = evict.cancelled() => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// Reads one request head (within `head`), answers it, closes.
async fn exchange<R: Fn() -> String>(
    mut stream: TcpStream,
    render: &R,
    head: Duration,
    pool: &Mutex<Pool>,
    id: u64,
) -> std::io::Result<()> {
    let Ok(request) = tokio::time::timeout(head, read_head(&mut stream)).await else {
        return Ok(());
    };
    let Some(request) = request? else {
        return Ok(());
    };
    lock(pool).answering(id);
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, kind, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The request head, up to its blank line; `None` if the client closed
/// first or sent more than [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every wait here gives up after this long: a safety net, never a
    /// timing margin (the limits below are far longer than the test).
    const SAFETY: Duration = Duration::from_secs(60);

    async fn get(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut out = String::new();
        tokio::time::timeout(SAFETY, s.read_to_string(&mut out))
            .await
            .expect("answered, not kept waiting")
            .expect("read");
        out
    }

    #[tokio::test]
    async fn idle_connections_cannot_keep_a_scrape_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Timeouts far beyond the test: only eviction can make room.
        let limits = Limits {
            max: 2,
            head: Duration::from_secs(3600),
            total: Duration::from_secs(3600),
        };
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        let render = Arc::new(|| "up 1\n".to_owned());
        tokio::spawn(serve(listener, render, limits, stop.clone(), tasks.clone()));

        // Every slot taken by a connection that sends nothing.
        let mut oldest = TcpStream::connect(addr).await.expect("idle 1");
        let newer = TcpStream::connect(addr).await.expect("idle 2");
        let first = get(addr).await;
        assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
        assert!(first.ends_with("up 1\n"), "{first}");
        // The oldest idle one made room, and was closed.
        let mut rest = Vec::new();
        let n = tokio::time::timeout(SAFETY, oldest.read_to_end(&mut rest))
            .await
            .expect("the evicted connection is closed")
            .expect("read");
        assert_eq!(n, 0);
        // The newer one was left alone.
        let mut byte = [0u8; 1];
        let open = newer.try_read(&mut byte);
        assert!(
            open.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
            "{open:?}"
        );
        // And again: scrapes keep being served.
        let second = get(addr).await;
        assert!(second.starts_with("HTTP/1.1 200 OK"), "{second}");
        stop.cancel();
    }

    #[test]
    fn a_full_pool_evicts_the_oldest_reader_never_an_answering_one() {
        let mut pool = Pool::default();
        let (a, evict_a) = pool.admit(2).expect("a");
        let (b, evict_b) = pool.admit(2).expect("b");
        pool.answering(a);
        let (_c, _) = pool.admit(2).expect("c evicts b, the oldest reader");
        assert!(evict_b.is_cancelled() && !evict_a.is_cancelled());
        pool.answering(_c);
        assert!(pool.admit(2).is_none(), "every slot is answering");
        pool.leave(a);
        assert!(pool.admit(2).is_some(), "a slot freed");
        let _ = b;
    }
}
