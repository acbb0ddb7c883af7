//! Hostile peers on 127.0.0.1 and the bookkeeping the reliability tests
//! share: open file descriptors, a panic counter, a serial runner.
//!
//! Included by path from brontide's and the server's test files (it is not
//! a test target of its own).

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use brontide::{
    dial, DialConfig, Encryptor, Initiator, NodeKeyPair, PublicKey, SecretKey, ACT_ONE_LEN,
    HEADER_LEN, MAX_MESSAGE_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A hang guard for steps that take milliseconds: a test fails if a step
/// never ends, never because it was slow.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

pub fn keys(byte: u8) -> NodeKeyPair {
    NodeKeyPair::new(SecretKey::from_slice(&[byte; 32]).expect("a valid scalar"))
}

/// Counts the bytes this process has allocated and not yet freed, so the
/// tests can check that memory, like sockets, returns to where it started.
/// A plain wrapper around the system allocator: every call is forwarded
/// unchanged, and two counters are updated beside it.
#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Counting;

    pub static LIVE: AtomicUsize = AtomicUsize::new(0);
    pub static PEAK: AtomicUsize = AtomicUsize::new(0);

    fn grew(by: usize) {
        let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    // SAFETY: every method forwards to `System` with the caller's
    // arguments; the counters do not touch the memory.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller upholds `alloc`'s contract.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller upholds `alloc_zeroed`'s contract.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller upholds `dealloc`'s contract.
            unsafe { System.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller upholds `realloc`'s contract.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                if new_size >= layout.size() {
                    grew(new_size - layout.size());
                } else {
                    LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
                }
            }
            p
        }
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Bytes allocated and not yet freed, process-wide.
pub fn live_bytes() -> usize {
    counting::LIVE.load(Ordering::Relaxed)
}

/// The most bytes live at once since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    counting::PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak measurement from the bytes live now.
pub fn reset_peak() {
    counting::PEAK.store(live_bytes(), Ordering::Relaxed);
}

/// What a test may leave allocated: a few allocations a library makes
/// once and keeps (and libtest's capture of the test's output), small next
/// to a leak of even a few bytes per connection, task or dial in these
/// tests.
pub const MEMORY_SLACK: usize = 64 * 1024;

/// Allocations made once per process (the secp256k1 context, the Noise
/// parameters, tokio's and the socket layer's first use), so that the
/// first test's memory check does not count them.
fn warm_up() {
    let server = keys(0x21);
    let (act_one, initiator) = Initiator::new(&keys(0x11), &server.public_key())
        .and_then(Initiator::act_one)
        .expect("an initiator");
    let (act_two, responder) = brontide::Responder::new(&server)
        .and_then(|r| r.read_act_one(&act_one))
        .expect("a responder");
    let (act_three, _) = initiator.read_act_two(&act_two).expect("act two");
    let _ = responder.read_act_three(&act_three).expect("act three");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let _client = TcpStream::connect(addr).await.expect("connect");
            let _ = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_millis(1)).await;
        });
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// Waits until the open file descriptors are back to `baseline` (sockets
/// close asynchronously as tasks end): no event announces it, so the count
/// is read again after each yield to the runtime, a spin (no timed poll)
/// that lets the tasks closing them run, for at most `HANG_GUARD`; returns
/// the last count seen, for the caller to assert on.
pub async fn fds_back_to(baseline: usize) -> usize {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let now = open_fds();
        if now == baseline || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::task::yield_now().await;
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();
static WARM: Once = Once::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// Panics anywhere in the process since the hook was installed, spawned
/// tasks included (tokio swallows those otherwise).
pub fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

/// Runs `test` on its own two-thread runtime, one test at a time in this
/// binary (so each test's file descriptor count is its own), with the
/// panic counter installed. Fails the test if anything panicked.
pub fn serial<F: Future<Output = ()>>(test: F) {
    serial_with(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(test)
    });
}

/// Runs `test` one at a time in this binary, with the panic counter
/// installed (for tests that bring their own runtime). Fails the test if
/// anything panicked, or if the heap is not back within [`MEMORY_SLACK`]
/// of where it started once the test (and its runtime) is gone.
pub fn serial_with<T>(test: impl FnOnce() -> T) -> T {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    WARM.call_once(warm_up);
    let before = panics();
    let heap = live_bytes();
    reset_peak();
    let out = test();
    assert_eq!(panics(), before, "something panicked during the test");
    let end = live_bytes();
    eprintln!(
        "heap: {} KiB at the start, {} KiB at the peak, {} KiB at the end",
        heap / 1024,
        peak_bytes() / 1024,
        end / 1024
    );
    assert!(
        end <= heap + MEMORY_SLACK,
        "heap: {heap} bytes at the start, {end} at the end"
    );
    out
}

/// How a hostile connection ended, seen from the hostile side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The other end closed the connection (EOF or reset) after this many
    /// bytes had been sent.
    ClosedAfter(usize),
    /// The hostile peer sent everything and the other end still had not
    /// closed when the hang guard ran out.
    NeverClosed,
}

/// Reads until the other end closes; true if it did within the guard.
pub async fn wait_closed(stream: &mut TcpStream, guard: Duration) -> bool {
    let mut buf = [0u8; 256];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(guard, read_all).await.is_ok()
}

/// A valid act one for `server` from a throwaway key.
pub fn valid_act_one(server: &PublicKey) -> [u8; ACT_ONE_LEN] {
    let (act, _) = Initiator::new(&keys(0x7e), server)
        .and_then(Initiator::act_one)
        .expect("an initiator");
    act
}

/// Sends a valid act one a byte at a time, `pace` apart, watching for the
/// other end to close between bytes.
pub async fn slowloris(addr: SocketAddr, server: PublicKey, pace: Duration) -> Seen {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Seen::ClosedAfter(0);
    };
    let act = valid_act_one(&server);
    for (i, byte) in act.iter().enumerate() {
        if stream.write_all(&[*byte]).await.is_err() {
            return Seen::ClosedAfter(i);
        }
        if wait_closed(&mut stream, pace).await {
            return Seen::ClosedAfter(i + 1);
        }
    }
    if wait_closed(&mut stream, HANG_GUARD).await {
        Seen::ClosedAfter(act.len())
    } else {
        Seen::NeverClosed
    }
}

/// Connects and sends nothing.
pub async fn silent(addr: SocketAddr) -> Seen {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Seen::ClosedAfter(0);
    };
    if wait_closed(&mut stream, HANG_GUARD).await {
        Seen::ClosedAfter(0)
    } else {
        Seen::NeverClosed
    }
}

/// Connects and sends the first byte of a valid act one, then nothing
/// more; returns the open stream.
pub async fn one_byte_of_act_one(addr: SocketAddr, server: PublicKey) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let act = valid_act_one(&server);
    stream.write_all(&act[..1]).await.expect("one byte");
    stream
}

/// Sends the first `n` bytes of a valid act one, then closes.
pub async fn close_mid_act(addr: SocketAddr, server: PublicKey, n: usize) {
    if let Ok(mut stream) = TcpStream::connect(addr).await {
        let act = valid_act_one(&server);
        let _ = stream.write_all(&act[..n.min(act.len())]).await;
    }
}

/// The kinds of bad act one the flood rotates through.
pub const BAD_ACT_KINDS: usize = 4;

/// A bad act one of kind `kind % BAD_ACT_KINDS`: bad version, bad public
/// key, bad tag (a valid key: the responder runs the ECDH), or short.
pub fn bad_act_one(server: &PublicKey, kind: usize) -> Vec<u8> {
    let mut act = valid_act_one(server).to_vec();
    match kind % BAD_ACT_KINDS {
        0 => act[0] = 1,
        1 => act[1] = 0x04,
        2 => act[ACT_ONE_LEN - 1] ^= 1,
        _ => act.truncate(20),
    }
    act
}

/// Sends a bad act one (a short one is followed by a half-close) and waits
/// for the other end to close.
pub async fn send_bad_act(addr: SocketAddr, server: PublicKey, kind: usize) -> Seen {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Seen::ClosedAfter(0);
    };
    let act = bad_act_one(&server, kind);
    if stream.write_all(&act).await.is_err() {
        return Seen::ClosedAfter(0);
    }
    if act.len() < ACT_ONE_LEN {
        let _ = stream.shutdown().await;
    }
    if wait_closed(&mut stream, HANG_GUARD).await {
        Seen::ClosedAfter(act.len())
    } else {
        Seen::NeverClosed
    }
}

/// Completes the handshake with `server`, then sends bytes that are no
/// frame; waits for the other end to close.
pub async fn garbage_after_handshake(addr: SocketAddr, server: PublicKey, local: u8) -> Seen {
    let config = DialConfig::default().with_act_timeout(Duration::from_secs(5));
    let conn = dial(
        addr,
        &keys(local),
        &server,
        &config,
        &CancellationToken::new(),
    )
    .await
    .expect("the handshake completes");
    let (mut stream, _, _) = conn.into_parts();
    let garbage: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
    if stream.write_all(&garbage).await.is_err() {
        return Seen::ClosedAfter(0);
    }
    if wait_closed(&mut stream, HANG_GUARD).await {
        Seen::ClosedAfter(garbage.len())
    } else {
        Seen::NeverClosed
    }
}

/// The first bytes of a frame announcing a 65535-byte message: the
/// authenticated header and `body` bytes of the body.
pub fn header_of_largest_frame(encryptor: &mut Encryptor, body: usize) -> Vec<u8> {
    let frame = encryptor
        .encrypt(&vec![0u8; MAX_MESSAGE_LEN])
        .expect("65535 bytes fit");
    frame[..HEADER_LEN + body].to_vec()
}

/// Completes the handshake with `server`, sends a header announcing 65535
/// bytes and 100 of them, then stalls; returns the open stream.
pub async fn announce_and_stall(addr: SocketAddr, server: PublicKey, local: u8) -> TcpStream {
    let config = DialConfig::default().with_act_timeout(Duration::from_secs(5));
    let conn = dial(
        addr,
        &keys(local),
        &server,
        &config,
        &CancellationToken::new(),
    )
    .await
    .expect("the handshake completes");
    let (mut stream, mut encryptor, _) = conn.into_parts();
    let partial = header_of_largest_frame(&mut encryptor, 100);
    stream.write_all(&partial).await.expect("write the header");
    stream
}

/// `total` connections with bad acts, started at most one per `pace`
/// (1 ms: 1,000 a second) with at most `concurrent` open at once. Returns
/// how many the other end closed.
pub async fn flood(
    addr: SocketAddr,
    server: PublicKey,
    total: usize,
    concurrent: usize,
    pace: Duration,
) -> usize {
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent));
    let mut tick = tokio::time::interval(pace);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        tick.tick().await;
        let permit = std::sync::Arc::clone(&limit)
            .acquire_owned()
            .await
            .expect("never closed");
        tasks.spawn(async move {
            let seen = send_bad_act(addr, server, i).await;
            drop(permit);
            seen
        });
    }
    let mut closed = 0;
    while let Some(seen) = tasks.join_next().await {
        if let Ok(Seen::ClosedAfter(_)) = seen {
            closed += 1;
        }
    }
    closed
}
