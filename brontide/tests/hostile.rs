//! Hostile peers on 127.0.0.1: slowloris, silence, garbage, truncation and
//! a flood of bad acts, against `accept`, `dial` and the `Listener`.
//!
//! What each test proves: the hostile peer gets the typed error its
//! behaviour deserves, within the configured per-act timeout (short here,
//! to keep the tests fast; no test asserts a wall-clock figure), nothing
//! panics (a process-wide panic hook counts panics in spawned tasks too),
//! the listener keeps completing good handshakes meanwhile, and the open
//! file descriptors return to where they started.

#[path = "support/hostile_peers.rs"]
mod peers;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use brontide::{
    accept, dial, frame_len, Act, Connection, DecryptError, DialConfig, Error, Listener,
    ListenerConfig, PeerFault, Responder, ACT_ONE_LEN, ACT_THREE_LEN, ACT_TWO_LEN, MAX_MESSAGE_LEN,
};
use futures::{SinkExt, StreamExt};
use peers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The per-act timeout of every test here.
const ACT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a reader waits for the next message before giving up.
const IDLE: Duration = Duration::from_millis(300);
/// Slowloris: one byte every this long (a whole act takes 50 of them).
const DRIP: Duration = Duration::from_millis(100);

const SERVER: u8 = 0x21;

fn server_pk() -> brontide::PublicKey {
    keys(SERVER).public_key()
}

fn dial_config() -> DialConfig {
    DialConfig::default()
        .with_act_timeout(ACT_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(5))
}

/// Runs `client` against a raw 127.0.0.1 socket and the responder's
/// handshake (`accept`) on the server end; returns the handshake's result
/// and the client's output.
async fn accept_from<F, T>(
    client: impl FnOnce(SocketAddr) -> F,
) -> (Result<Connection<TcpStream>, Error>, T)
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = tokio::spawn(client(addr));
    let (stream, _) = listener.accept().await.expect("accept");
    let result = tokio::time::timeout(
        HANG_GUARD,
        accept(
            stream,
            &keys(SERVER),
            ACT_TIMEOUT,
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("accept ends within its act timeouts");
    let out = client.await.expect("the client task");
    (result, out)
}

/// Runs `responder` (given the accepted raw stream) against `dial`;
/// returns the dial's result once the responder has ended too (so every
/// responder here returns once the dialer closes or it is done).
async fn dial_to<F>(
    responder: impl FnOnce(TcpStream) -> F + Send + 'static,
) -> Result<Connection<TcpStream>, Error>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (result, server) = dial_with_responder(responder).await;
    if result.is_err() {
        tokio::time::timeout(HANG_GUARD, server)
            .await
            .expect("the responder ends once the dialer closed")
            .expect("the responder task");
    }
    result
}

/// As [`dial_to`], leaving the responder running: returns its task.
async fn dial_with_responder<F>(
    responder: impl FnOnce(TcpStream) -> F + Send + 'static,
) -> (
    Result<Connection<TcpStream>, Error>,
    tokio::task::JoinHandle<()>,
)
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        responder(stream).await;
    });
    let result = tokio::time::timeout(
        HANG_GUARD,
        dial(
            addr,
            &keys(1),
            &server_pk(),
            &dial_config(),
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("dial ends within its timeouts");
    (result, server)
}

fn code(result: &Result<Connection<TcpStream>, Error>) -> Option<String> {
    match result {
        Err(Error::Handshake(e)) => e.code(),
        _ => None,
    }
}

/// What a test starts from: its open fds (the heap is checked by
/// `serial`, around the test's whole runtime).
#[derive(Clone, Copy)]
struct Start {
    fds: usize,
}

fn start() -> Start {
    Start { fds: open_fds() }
}

/// Checks the fds are back to the start once everything has closed.
async fn assert_back(start: Start) {
    let now = fds_back_to(start.fds).await;
    assert_eq!(
        now, start.fds,
        "open file descriptors: {} before, {now} after",
        start.fds
    );
}

// --- The responder (`accept`) against hostile initiators. ---

#[test]
fn hostile_peer_slowloris_act_one_times_out_in_act_one() {
    serial(async {
        let start = start();
        let (result, seen) = accept_from(|addr| slowloris(addr, server_pk(), DRIP)).await;
        assert!(
            matches!(result, Err(Error::HandshakeTimedOut(Act::One))),
            "{result:?}"
        );
        // The server closed the socket before the drip finished the act.
        assert!(
            matches!(seen, Seen::ClosedAfter(n) if n < ACT_ONE_LEN),
            "{seen:?}"
        );
        assert_back(start).await;
    });
}

#[test]
fn hostile_peer_sending_nothing_times_out_in_act_one() {
    serial(async {
        let start = start();
        let (result, seen) = accept_from(silent).await;
        assert!(
            matches!(result, Err(Error::HandshakeTimedOut(Act::One))),
            "{result:?}"
        );
        assert_eq!(seen, Seen::ClosedAfter(0));
        assert_back(start).await;
    });
}

#[test]
fn hostile_peer_closing_mid_act_one_is_act1_read_failed() {
    serial(async {
        let start = start();
        let (result, ()) = accept_from(|addr| close_mid_act(addr, server_pk(), 20)).await;
        assert_eq!(
            code(&result).as_deref(),
            Some("ACT1_READ_FAILED"),
            "{result:?}"
        );
        assert!(result.as_ref().err().is_some_and(Error::is_peer_fault));
        assert_back(start).await;
    });
}

/// A client that sends a valid act one, reads act two, then sends the
/// first `n` bytes of act three and either closes or stalls.
async fn act_three_client(addr: SocketAddr, n: usize, close: bool) -> Seen {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let (act_one, initiator) = brontide::Initiator::new(&keys(1), &server_pk())
        .and_then(brontide::Initiator::act_one)
        .expect("initiator");
    stream.write_all(&act_one).await.expect("act one");
    let mut act_two = [0u8; ACT_TWO_LEN];
    stream.read_exact(&mut act_two).await.expect("act two");
    let (act_three, _) = initiator.read_act_two(&act_two).expect("valid act two");
    stream
        .write_all(&act_three[..n])
        .await
        .expect("part of act three");
    if close {
        return Seen::ClosedAfter(n);
    }
    if wait_closed(&mut stream, HANG_GUARD).await {
        Seen::ClosedAfter(n)
    } else {
        Seen::NeverClosed
    }
}

#[test]
fn hostile_peer_closing_mid_act_three_is_act3_read_failed() {
    serial(async {
        let start = start();
        let (result, _) = accept_from(|addr| act_three_client(addr, 30, true)).await;
        assert_eq!(
            code(&result).as_deref(),
            Some("ACT3_READ_FAILED"),
            "{result:?}"
        );
        assert_back(start).await;
    });
}

#[test]
fn hostile_peer_stalling_in_act_three_times_out_in_act_three() {
    serial(async {
        let start = start();
        let (result, seen) = accept_from(|addr| act_three_client(addr, 10, false)).await;
        assert!(
            matches!(result, Err(Error::HandshakeTimedOut(Act::Three))),
            "{result:?}"
        );
        assert_eq!(seen, Seen::ClosedAfter(10));
        assert_back(start).await;
    });
}

/// The responder reads act one with room behind it; what a client sends
/// past act one is the start of act three, as it is in the stream: 10
/// bytes then the end are a short act three, 66 of them a whole one
/// (whose encrypted key does not decrypt). In memory, with every byte
/// written before the responder starts, so its first read takes them all.
#[test]
fn hostile_peer_bytes_past_act_one_are_read_as_act_three() {
    serial(async {
        let cases = [
            (
                10,
                PeerFault::ReadFailed {
                    expected: ACT_THREE_LEN,
                    got: 10,
                },
            ),
            (ACT_THREE_LEN, PeerFault::BadCiphertext),
        ];
        for (extra, fault) in cases {
            let (mut client, server) = tokio::io::duplex(1024);
            let mut bytes = valid_act_one(&server_pk()).to_vec();
            bytes.resize(ACT_ONE_LEN + extra, 0);
            client.write_all(&bytes).await.expect("buffered");
            let peer = tokio::spawn(async move {
                let mut act_two = [0u8; ACT_TWO_LEN];
                client.read_exact(&mut act_two).await.expect("act two");
                // Then closes: act three is what came with act one.
            });
            let result = accept(
                server,
                &keys(SERVER),
                ACT_TIMEOUT,
                &CancellationToken::new(),
            )
            .await;
            peer.await.expect("the client task");
            let (act, got) = match &result {
                Err(Error::Handshake(h)) => (Some(h.act()), h.peer_fault()),
                _ => (None, None),
            };
            assert_eq!((act, got), (Some(Act::Three), Some(fault)), "{result:?}");
        }
    });
}

#[test]
fn hostile_peer_bad_acts_get_their_spec_codes() {
    serial(async {
        let start = start();
        let expected = [
            "ACT1_BAD_VERSION",
            "ACT1_BAD_PUBKEY",
            "ACT1_BAD_TAG",
            "ACT1_READ_FAILED",
        ];
        for (kind, want) in expected.iter().enumerate() {
            let (result, seen) =
                accept_from(move |addr| send_bad_act(addr, server_pk(), kind)).await;
            assert_eq!(
                code(&result).as_deref(),
                Some(*want),
                "kind {kind}: {result:?}"
            );
            assert!(
                matches!(seen, Seen::ClosedAfter(_)),
                "kind {kind}: {seen:?}"
            );
        }
        assert_back(start).await;
    });
}

#[test]
fn hostile_peer_garbage_after_handshake_is_a_decrypt_error() {
    serial(async {
        let start = start();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(garbage_after_handshake(addr, server_pk(), 1));
        let (stream, _) = listener.accept().await.expect("accept");
        let conn = accept(
            stream,
            &keys(SERVER),
            ACT_TIMEOUT,
            &CancellationToken::new(),
        )
        .await
        .expect("the handshake completes");
        let mut framed = conn.into_framed();
        let next = tokio::time::timeout(HANG_GUARD, framed.next())
            .await
            .expect("an answer");
        let err = next.expect("an item").expect_err("garbage is no frame");
        assert!(
            matches!(err, Error::Decrypt(DecryptError::BadLengthTag)),
            "{err:?}"
        );
        assert!(err.is_peer_fault());
        drop(framed);
        assert!(matches!(
            client.await.expect("client"),
            Seen::ClosedAfter(_)
        ));
        drop(listener);
        assert_back(start).await;
    });
}

#[test]
fn hostile_peer_announcing_65535_bytes_then_stalling_holds_bounded_memory() {
    serial(async {
        let start = start();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(announce_and_stall(addr, server_pk(), 1));
        let (stream, _) = listener.accept().await.expect("accept");
        let conn = accept(
            stream,
            &keys(SERVER),
            ACT_TIMEOUT,
            &CancellationToken::new(),
        )
        .await
        .expect("the handshake completes");
        let mut framed = conn.into_framed();
        // Nothing is delivered while the body is missing: the reader waits
        // (the application's idle timeout is what ends it).
        assert!(tokio::time::timeout(IDLE, framed.next()).await.is_err());
        // What it holds meanwhile is at most one frame.
        let held = framed.read_buffer().capacity();
        assert!(
            held <= 2 * frame_len(MAX_MESSAGE_LEN),
            "{held} bytes buffered"
        );
        // The peer goes away mid-frame: a typed error, not a hang.
        drop(client.await.expect("client"));
        let next = tokio::time::timeout(HANG_GUARD, framed.next())
            .await
            .expect("an answer");
        let err = next.expect("an item").expect_err("truncated");
        assert!(matches!(err, Error::TruncatedFrame), "{err:?}");
        assert!(err.is_peer_fault());
        drop((framed, listener));
        assert_back(start).await;
    });
}

// --- The initiator (`dial`) against hostile responders. ---

/// Reads act one and returns a real act two for it.
async fn read_act_one_answer(stream: &mut TcpStream) -> [u8; ACT_TWO_LEN] {
    let mut act_one = [0u8; ACT_ONE_LEN];
    stream.read_exact(&mut act_one).await.expect("act one");
    let (act_two, _) = Responder::new(&keys(SERVER))
        .and_then(|r| r.read_act_one(&act_one))
        .expect("a valid act one");
    act_two
}

#[test]
fn hostile_responder_sending_nothing_times_out_in_act_two() {
    serial(async {
        let start = start();
        let result = dial_to(|mut s| async move {
            let _ = wait_closed(&mut s, HANG_GUARD).await;
        })
        .await;
        assert!(
            matches!(result, Err(Error::HandshakeTimedOut(Act::Two))),
            "{result:?}"
        );
        assert_back(start).await;
    });
}

#[test]
fn hostile_responder_slowloris_act_two_times_out_in_act_two() {
    serial(async {
        let start = start();
        let result = dial_to(|mut s| async move {
            let act_two = read_act_one_answer(&mut s).await;
            for byte in act_two {
                if s.write_all(&[byte]).await.is_err() || wait_closed(&mut s, DRIP).await {
                    return;
                }
            }
        })
        .await;
        assert!(
            matches!(result, Err(Error::HandshakeTimedOut(Act::Two))),
            "{result:?}"
        );
        assert_back(start).await;
    });
}

#[test]
fn hostile_responder_closing_mid_act_two_is_act2_read_failed() {
    serial(async {
        let start = start();
        let result = dial_to(|mut s| async move {
            let act_two = read_act_one_answer(&mut s).await;
            let _ = s.write_all(&act_two[..25]).await;
        })
        .await;
        assert_eq!(
            code(&result).as_deref(),
            Some("ACT2_READ_FAILED"),
            "{result:?}"
        );
        assert_back(start).await;
    });
}

#[test]
fn hostile_responder_bad_act_two_gets_its_spec_code() {
    serial(async {
        let start = start();
        type Spoil = fn(&mut [u8; ACT_TWO_LEN]);
        let kinds: [(Spoil, &str); 3] = [
            (|a| a[0] = 1, "ACT2_BAD_VERSION"),
            (|a| a[1] = 0x05, "ACT2_BAD_PUBKEY"),
            (|a| a[ACT_TWO_LEN - 1] ^= 0x80, "ACT2_BAD_TAG"),
        ];
        for (spoil, want) in kinds {
            let result = dial_to(move |mut s| async move {
                let mut act_two = read_act_one_answer(&mut s).await;
                spoil(&mut act_two);
                let _ = s.write_all(&act_two).await;
                let _ = wait_closed(&mut s, HANG_GUARD).await;
            })
            .await;
            assert_eq!(code(&result).as_deref(), Some(want), "{result:?}");
        }
        assert_back(start).await;
    });
}

#[test]
fn hostile_responder_garbage_after_handshake_is_a_decrypt_error() {
    serial(async {
        let start = start();
        let (conn, responder) = dial_with_responder(|s| async move {
            let conn = accept(s, &keys(SERVER), ACT_TIMEOUT, &CancellationToken::new())
                .await
                .expect("handshake");
            let (mut raw, _, _) = conn.into_parts();
            let _ = raw.write_all(&[0xab; 40]).await;
            let _ = wait_closed(&mut raw, HANG_GUARD).await;
        })
        .await;
        let conn = conn.expect("the handshake completes");
        let mut framed = conn.into_framed();
        let next = tokio::time::timeout(HANG_GUARD, framed.next())
            .await
            .expect("an answer");
        let err = next.expect("an item").expect_err("garbage is no frame");
        assert!(
            matches!(err, Error::Decrypt(DecryptError::BadLengthTag)),
            "{err:?}"
        );
        drop(framed);
        responder.await.expect("the responder task");
        assert_back(start).await;
    });
}

#[test]
fn hostile_responder_announcing_65535_bytes_then_closing_is_a_truncated_frame() {
    serial(async {
        let start = start();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let (conn, responder) = dial_with_responder(|s| async move {
            let conn = accept(s, &keys(SERVER), ACT_TIMEOUT, &CancellationToken::new())
                .await
                .expect("handshake");
            let (mut raw, mut encryptor, _) = conn.into_parts();
            let partial = header_of_largest_frame(&mut encryptor, 1000);
            let _ = raw.write_all(&partial).await;
            // Stall until the test says, then close mid-frame.
            let _ = release_rx.await;
        })
        .await;
        let conn = conn.expect("the handshake completes");
        let mut framed = conn.into_framed();
        assert!(tokio::time::timeout(IDLE, framed.next()).await.is_err());
        let held = framed.read_buffer().capacity();
        assert!(
            held <= 2 * frame_len(MAX_MESSAGE_LEN),
            "{held} bytes buffered"
        );
        drop(release_tx);
        let next = tokio::time::timeout(HANG_GUARD, framed.next())
            .await
            .expect("an answer");
        let err = next.expect("an item").expect_err("truncated");
        assert!(matches!(err, Error::TruncatedFrame), "{err:?}");
        drop(framed);
        responder.await.expect("the responder task");
        assert_back(start).await;
    });
}

// --- The listener under all of them at once, and under a flood. ---

/// What a listener-side reader saw on an accepted connection.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A message arrived (the good client's).
    Message,
    /// A frame failed to decrypt.
    DecryptError,
    /// Nothing arrived within `IDLE`.
    Idle,
    /// Another end: closed, truncated.
    Other,
}

/// Accepts until cancelled; reads each connection's first message (or
/// error, or idleness), then drops it.
fn serve(mut listener: Listener, stop: CancellationToken) -> tokio::task::JoinHandle<Vec<Read>> {
    tokio::spawn(async move {
        let mut readers = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = stop.cancelled() => None,
            };
            let Some(accepted) = accepted else { break };
            readers.spawn(async move {
                let mut framed = accepted.connection.into_framed();
                match tokio::time::timeout(IDLE, framed.next()).await {
                    Ok(Some(Ok(_))) => {
                        let _ = framed.send(b"pong".as_slice()).await;
                        Read::Message
                    }
                    Ok(Some(Err(Error::Decrypt(_)))) => Read::DecryptError,
                    Err(_) => Read::Idle,
                    Ok(_) => Read::Other,
                }
            });
        }
        listener.shutdown().await;
        let mut reads = Vec::new();
        while let Some(read) = readers.join_next().await {
            reads.push(read.expect("reader"));
        }
        reads
    })
}

/// A good client: handshake, one message each way.
async fn good_client(addr: SocketAddr, local: u8) {
    let config = DialConfig::default().with_act_timeout(Duration::from_secs(5));
    let conn = tokio::time::timeout(
        HANG_GUARD,
        dial(
            addr,
            &keys(local),
            &server_pk(),
            &config,
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("the good handshake ends")
    .expect("the good handshake completes");
    let mut framed = conn.into_framed();
    framed.send(b"ping".as_slice()).await.expect("send");
    let reply = tokio::time::timeout(HANG_GUARD, framed.next())
        .await
        .expect("a reply");
    assert_eq!(&reply.expect("an item").expect("a message")[..], b"pong");
}

fn listener_config() -> ListenerConfig {
    ListenerConfig::default().with_act_timeout(ACT_TIMEOUT)
}

#[test]
fn hostile_peers_all_at_once_leave_the_listener_serving() {
    serial(async {
        let start = start();
        let listener = Listener::bind("127.0.0.1:0", keys(SERVER), listener_config())
            .await
            .expect("bind");
        let addr = listener.local_addr();
        let stop = CancellationToken::new();
        let served = serve(listener, stop.clone());

        let mut hostile = tokio::task::JoinSet::new();
        for i in 0..3 {
            hostile.spawn(slowloris(addr, server_pk(), DRIP));
            hostile.spawn(silent(addr));
            hostile.spawn(async move {
                close_mid_act(addr, server_pk(), 10 + i).await;
                Seen::ClosedAfter(10 + i)
            });
            hostile.spawn(garbage_after_handshake(addr, server_pk(), 0x30 + i as u8));
        }
        for kind in 0..BAD_ACT_KINDS {
            hostile.spawn(send_bad_act(addr, server_pk(), kind));
        }
        let mut stallers = Vec::new();
        for i in 0..2 {
            stallers.push(announce_and_stall(addr, server_pk(), 0x40 + i).await);
        }
        // While all of that is going on, a good client gets through.
        good_client(addr, 1).await;

        while let Some(seen) = hostile.join_next().await {
            let seen = seen.expect("hostile task");
            assert!(matches!(seen, Seen::ClosedAfter(n) if n <= 100), "{seen:?}");
        }
        for mut s in stallers {
            assert!(
                wait_closed(&mut s, HANG_GUARD).await,
                "a staller was never cut off"
            );
        }
        // One good client after it all, too.
        good_client(addr, 2).await;

        stop.cancel();
        let reads = served.await.expect("the serving task");
        let count = |r: Read| reads.iter().filter(|x| **x == r).count();
        assert_eq!(count(Read::Message), 2, "{reads:?}");
        assert_eq!(count(Read::DecryptError), 3, "{reads:?}");
        assert_eq!(count(Read::Idle), 2, "{reads:?}");
        assert_back(start).await;
    });
}

#[test]
fn hostile_peer_flood_of_1000_bad_acts_leaves_the_listener_serving() {
    serial(async {
        let start = start();
        let listener = Listener::bind("127.0.0.1:0", keys(SERVER), listener_config())
            .await
            .expect("bind");
        let addr = listener.local_addr();
        let stop = CancellationToken::new();
        let served = serve(listener, stop.clone());

        // Good clients one after another for as long as the flood lasts
        // (fewer bad connections open at once than the handshake bound, so
        // none is ever evicted to make room).
        let flooding = CancellationToken::new();
        let good = {
            let flooding = flooding.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                loop {
                    good_client(addr, 1 + (n % 200) as u8).await;
                    n += 1;
                    if flooding.is_cancelled() {
                        return n;
                    }
                }
            })
        };
        let began = Instant::now();
        let closed = flood(addr, server_pk(), 1000, 32, Duration::from_millis(1)).await;
        let took = began.elapsed();
        flooding.cancel();
        let good = good.await.expect("good clients");
        eprintln!(
            "flood: 1000 bad-act connections in {took:?} ({:.0}/s), {good} good handshakes meanwhile",
            1000.0 / took.as_secs_f64()
        );
        assert_eq!(
            closed, 1000,
            "every bad connection was closed by the listener"
        );
        assert!(good >= 1);

        stop.cancel();
        let reads = served.await.expect("the serving task");
        assert!(reads.iter().all(|r| *r == Read::Message), "{reads:?}");
        assert_eq!(reads.len(), good);
        assert_back(start).await;
    });
}

/// An honest client that has sent its act one (and so been answered with
/// act two: it holds a handshake slot) stalls while 60 new silent
/// connections arrive, more than the pending set holds (10 here). The
/// listener evicts the oldest silent connections to make room for the
/// newer ones, and the honest handshake, out of the pending set since its
/// first byte, completes (it was evicted when the listener dropped the
/// oldest handshake whatever its progress: RELIABILITY.md, "Found").
///
/// Every step waits on an event the other side makes observable, so the
/// order is the same however the threads are scheduled: act two arrives
/// only once the listener is in the honest handshake; act three is sent
/// only once the listener's counters show the whole flood taken in and 50
/// evictions; the serving task stops only once the honest client has its
/// reply.
#[test]
fn hostile_peer_stream_of_new_connections_does_not_evict_a_slow_honest_handshake() {
    serial(async {
        let pending = 10;
        let config = ListenerConfig::default()
            .with_max_pending(pending)
            .expect("valid")
            .with_silence_grace(Duration::ZERO);
        let listener = Listener::bind("127.0.0.1:0", keys(SERVER), config)
            .await
            .expect("bind");
        let addr = listener.local_addr();
        let monitor = listener.monitor();
        let stop = CancellationToken::new();
        let served = serve(listener, stop.clone());

        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let (act_one, initiator) = brontide::Initiator::new(&keys(1), &server_pk())
            .and_then(brontide::Initiator::act_one)
            .expect("initiator");
        stream.write_all(&act_one).await.expect("act one");
        let mut act_two = [0u8; ACT_TWO_LEN];
        stream
            .read_exact(&mut act_two)
            .await
            .expect("the honest handshake gets act two");

        let flood = 60;
        let mut silent = Vec::new();
        for _ in 0..flood {
            silent.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let evictions = (flood - pending) as u64;
        let stats = tokio::time::timeout(
            HANG_GUARD,
            monitor.wait_until(|s| s.accepted == 1 + flood as u64 && s.evicted == evictions),
        )
        .await
        .expect("the listener takes the flood in")
        .expect("the listener runs");
        assert_eq!(stats.handshaking, 1, "{stats:?}");

        let (act_three, session) = initiator.read_act_two(&act_two).expect("valid act two");
        stream.write_all(&act_three).await.expect("act three");
        let (encryptor, decryptor) = session.into_parts();
        let mut framed = tokio_util::codec::Framed::new(
            stream,
            brontide::MessageCodec::new(encryptor, decryptor),
        );
        framed.send(b"ping".as_slice()).await.expect("a message");
        let reply = tokio::time::timeout(HANG_GUARD, framed.next())
            .await
            .expect("a reply");
        assert_eq!(&reply.expect("an item").expect("a message")[..], b"pong");
        drop(silent);
        stop.cancel();
        let reads = served.await.expect("the serving task");
        assert_eq!(reads, [Read::Message]);
    });
}

/// A flood of connections that each send one byte of act one and stay
/// open, more than the pending set and the handshake slots hold together
/// (lnd's 256 + 50, scaled down to 8 + 2), then reopened: each is evictable
/// as soon as a new connection needs room (grace 0 here), none takes a
/// slot, and every honest client completes. Before, a byte made a
/// connection "readable": never evicted, it took a slot and held it for
/// the act timeout (twice the hang guard here), and the flood filled
/// everything.
///
/// Deterministic: the listener's counters show the flood taken in before
/// the honest clients start; as many honest clients at once as there are
/// flood connections pending, all younger, so an honest accept only ever
/// evicts a flood connection.
#[test]
fn hostile_peer_flood_of_one_byte_connections_does_not_keep_out_honest_clients() {
    serial(async {
        let start = start();
        let (pending, slots) = (8usize, 2usize);
        let config = ListenerConfig::default()
            .with_max_pending(pending)
            .expect("valid")
            .with_max_handshakes(slots)
            .expect("valid")
            .with_silence_grace(Duration::ZERO)
            .with_act_timeout(2 * HANG_GUARD);
        let listener = Listener::bind("127.0.0.1:0", keys(SERVER), config)
            .await
            .expect("bind");
        let addr = listener.local_addr();
        let monitor = listener.monitor();
        let stop = CancellationToken::new();
        let served = serve(listener, stop.clone());

        let mut flood = Vec::new();
        let mut accepted = 0u64;
        for round in 0..2 {
            // The first round fills the pending set and every slot, and
            // more; the second reopens as many as the pending set holds.
            let n = if round == 0 {
                pending + slots + 4
            } else {
                pending
            };
            for _ in 0..n {
                flood.push(one_byte_of_act_one(addr, server_pk()).await);
            }
            accepted += n as u64;
            let stats = tokio::time::timeout(
                HANG_GUARD,
                monitor.wait_until(|s| s.accepted == accepted && s.pending == pending),
            )
            .await
            .expect("the listener takes the whole flood in")
            .expect("the listener runs");
            assert_eq!(
                stats.handshaking, 0,
                "a one-byte connection took a slot: {stats:?}"
            );

            let mut honest = tokio::task::JoinSet::new();
            for i in 0..pending {
                honest.spawn(good_client(addr, 1 + (round * pending + i) as u8));
            }
            while let Some(done) = honest.join_next().await {
                done.expect("an honest client");
            }
            accepted += pending as u64;
        }

        let stats = monitor.stats();
        assert_eq!(stats.established, 2 * pending as u64, "{stats:?}");
        assert_eq!(stats.failed(), stats.evicted, "{stats:?}");
        assert_eq!(
            stats.accepted,
            stats.established + stats.failed() + stats.pending as u64 + stats.handshaking as u64,
            "{stats:?}"
        );
        drop(flood);
        stop.cancel();
        let reads = served.await.expect("the serving task");
        assert_eq!(reads.len(), 2 * pending, "{reads:?}");
        assert!(reads.iter().all(|r| *r == Read::Message), "{reads:?}");
        assert_back(start).await;
    });
}
