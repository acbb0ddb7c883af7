//! Dialing and accepting over real loopback sockets and in-memory streams:
//! message exchange, cancellation and timeouts in the connect and each act.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brontide::{
    accept, dial, dial_with, handshake_outbound, Act, DialConfig, Error, Initiator, NodeKeyPair,
    SecretKey, Tcp, Transport, MAX_MESSAGE_LEN,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn key(byte: u8) -> NodeKeyPair {
    NodeKeyPair::new(SecretKey::from_slice(&[byte; 32]).unwrap())
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Reads until end of stream; `true` if the peer closed its socket.
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 128];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) => return true,
            Ok(Ok(_)) => continue,
            Ok(Err(_)) => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_and_accept_exchange_1200_messages_each_way() {
    let (alice, bob) = (key(1), key(2));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();

    let server_key = bob.clone();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let conn = accept(
            stream,
            &server_key,
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(conn.remote_pubkey(), key(1).public_key());
        // Echo every message back.
        let mut framed = conn.into_framed();
        while let Some(msg) = framed.next().await {
            framed.send(msg.unwrap()).await.unwrap();
        }
    });

    let conn = dial(
        addr,
        &alice,
        &bob.public_key(),
        &DialConfig::default(),
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(conn.remote_pubkey(), bob.public_key());
    let (mut rx, mut tx) = conn.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..1200u32 {
            let msg = vec![(i % 251) as u8; (i as usize * 37) % 3000];
            tx.send(msg).await.unwrap();
        }
        tx
    });
    for i in 0..1200u32 {
        let msg = rx.next().await.unwrap().unwrap();
        assert_eq!(
            &msg[..],
            &vec![(i % 251) as u8; (i as usize * 37) % 3000][..]
        );
    }
    drop(writer.await.unwrap());
    drop(rx);
    server.await.unwrap();
}

#[tokio::test]
async fn message_over_65535_bytes_is_an_error_not_a_truncation() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (alice, bob) = (key(1), key(2));
    let cancel = CancellationToken::new();
    let t = Duration::from_secs(5);
    let bob_pub = bob.public_key();
    let (client, server) = tokio::join!(
        handshake_outbound(a, &alice, &bob_pub, t, &cancel),
        accept(b, &bob, t, &cancel)
    );
    let mut client = client.unwrap().into_framed();
    let mut server = server.unwrap().into_framed();
    let err = client
        .send(vec![0u8; MAX_MESSAGE_LEN + 1])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge(e) if e.len == MAX_MESSAGE_LEN + 1));
    // The session is intact: the largest message still goes through.
    client.send(vec![7u8; MAX_MESSAGE_LEN]).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap().len(), MAX_MESSAGE_LEN);
}

/// Records whether the connect completed.
struct RecordingTcp(Arc<AtomicBool>);

impl Transport for RecordingTcp {
    type Addr = SocketAddr;
    type Stream = TcpStream;

    async fn connect(&self, addr: &SocketAddr) -> Result<TcpStream, brontide::ConnectError> {
        let stream = Tcp.connect(addr).await?;
        self.0.store(true, Ordering::SeqCst);
        Ok(stream)
    }
}

/// A listener whose accept queue (backlog 0 holds one) is full: further
/// connects hang in SYN retries.
async fn full_listener() -> (tokio::net::TcpListener, TcpStream, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let filler = TcpStream::connect(addr).await.unwrap();
    (listener, filler, addr)
}

/// DESIGN.md known defect 7 (lnd's dialer ignores its context, so a stand
/// down can wait out the 120 s connect timeout): here cancellation reaches the
/// TCP connect itself.
#[tokio::test(start_paused = true)]
async fn cancel_during_tcp_connect_returns_cancelled_at_once() {
    let (_listener, _filler, addr) = full_listener().await;
    let connected = Arc::new(AtomicBool::new(false));
    let cancel = CancellationToken::new();
    let canceller = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        }
    });
    let start = Instant::now();
    let result = dial_with(
        &RecordingTcp(Arc::clone(&connected)),
        &addr,
        &key(1),
        &key(2).public_key(),
        &DialConfig::default(),
        &cancel,
    )
    .await;
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(
        !connected.load(Ordering::SeqCst),
        "cancelled after the connect, not during it"
    );
    canceller.await.unwrap();
    assert_eq!(alive_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_ends_a_hanging_connect() {
    let (_listener, _filler, addr) = full_listener().await;
    let config = DialConfig::default().with_connect_timeout(Duration::from_secs(120));
    let start = Instant::now();
    let result = dial(
        addr,
        &key(1),
        &key(2).public_key(),
        &config,
        &CancellationToken::new(),
    )
    .await;
    assert!(matches!(result, Err(Error::ConnectTimedOut)), "{result:?}");
    assert_eq!(start.elapsed(), Duration::from_secs(120));
    assert_eq!(alive_tasks(), 0);
}

#[tokio::test]
async fn connect_refused_is_a_connect_error() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let result = dial(
        addr,
        &key(1),
        &key(2).public_key(),
        &DialConfig::default(),
        &CancellationToken::new(),
    )
    .await;
    assert!(matches!(result, Err(Error::Connect(_))), "{result:?}");
}

#[tokio::test]
async fn already_cancelled_dial_never_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let addr = listener.local_addr().unwrap();
    let result = dial(
        addr,
        &key(1),
        &key(2).public_key(),
        &DialConfig::default(),
        &cancel,
    )
    .await;
    assert!(matches!(result, Err(Error::Cancelled)));
    let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(accepted.is_err(), "a cancelled dial opened a connection");
}

/// DESIGN.md known defect 8 (lnd's cancel watcher races the dialer to close
/// the socket): here the socket is owned by the dial's future, so cancelling
/// drops it, and the peer sees it closed, once. No watcher task exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_waiting_for_act_two_over_tcp_closes_the_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    // The peer reads act one, cancels the dial, and never answers.
    let peer = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut act_one = [0u8; 50];
            stream.read_exact(&mut act_one).await.unwrap();
            cancel.cancel();
            closed_by_peer(&mut stream).await
        }
    });
    let start = std::time::Instant::now();
    let result = dial(
        addr,
        &key(1),
        &key(2).public_key(),
        &DialConfig::default(),
        &cancel,
    )
    .await;
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(peer.await.unwrap(), "the dialer's socket was not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn act_two_timeout_over_tcp_names_act_two() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        closed_by_peer(&mut stream).await
    });
    let config = DialConfig::default().with_act_timeout(Duration::from_millis(200));
    let result = dial(
        addr,
        &key(1),
        &key(2).public_key(),
        &config,
        &CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(result, Err(Error::HandshakeTimedOut(Act::Two))),
        "{result:?}"
    );
    assert!(peer.await.unwrap(), "the dialer's socket was not closed");
}

// In-memory streams, paused time: each act that can wait, cancelled and timed
// out, on both sides.

const ACT_TIMEOUT: Duration = Duration::from_secs(5);

/// A stream whose writes block once `capacity` bytes are unread.
fn pipe(capacity: usize) -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(capacity)
}

fn cancel_after(delay: Duration) -> CancellationToken {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        c.cancel();
    });
    cancel
}

/// Initiator blocked writing act one (the peer reads nothing).
async fn initiator_in_act_one(cancel: &CancellationToken) -> Result<(), Error> {
    let (ours, _theirs) = pipe(10);
    handshake_outbound(ours, &key(1), &key(2).public_key(), ACT_TIMEOUT, cancel)
        .await
        .map(drop)
}

/// Initiator waiting for act two (the peer reads act one, then is silent).
async fn initiator_in_act_two(cancel: &CancellationToken) -> Result<(), Error> {
    let (ours, _theirs) = pipe(1024);
    handshake_outbound(ours, &key(1), &key(2).public_key(), ACT_TIMEOUT, cancel)
        .await
        .map(drop)
}

/// Initiator blocked writing act three: the peer answers act two, then
/// stops reading (the pipe holds less than act three).
async fn initiator_in_act_three(cancel: &CancellationToken) -> Result<(), Error> {
    let (ours, mut theirs) = pipe(60);
    let bob = key(2);
    let peer = async move {
        let mut act_one = [0u8; 50];
        theirs.read_exact(&mut act_one).await.unwrap();
        let (act_two, _) = brontide::Responder::new(&bob)
            .unwrap()
            .read_act_one(&act_one)
            .unwrap();
        theirs.write_all(&act_two).await.unwrap();
        // Read nothing more: act three (66 bytes) does not fit the pipe.
        std::future::pending::<()>().await;
    };
    let (alice, bob_pub) = (key(1), key(2).public_key());
    tokio::select! {
        r = handshake_outbound(ours, &alice, &bob_pub, ACT_TIMEOUT, cancel) => r.map(drop),
        () = peer => unreachable!(),
    }
}

/// Responder waiting for act one.
async fn responder_in_act_one(cancel: &CancellationToken) -> Result<(), Error> {
    let (ours, _theirs) = pipe(1024);
    accept(ours, &key(2), ACT_TIMEOUT, cancel).await.map(drop)
}

/// Responder blocked writing act two (the peer sends act one, reads nothing).
async fn responder_in_act_two(cancel: &CancellationToken) -> Result<(), Error> {
    let (ours, mut theirs) = pipe(50);
    let (act_one, _) = Initiator::new(&key(1), &key(2).public_key())
        .unwrap()
        .act_one()
        .unwrap();
    theirs.write_all(&act_one).await.unwrap();
    // Fill our side's outgoing buffer so act two blocks.
    let (mut ours_r, _keep) = (ours, theirs);
    let fill = [0u8; 50];
    ours_r.write_all(&fill).await.unwrap();
    accept(ours_r, &key(2), ACT_TIMEOUT, cancel).await.map(drop)
}

/// Responder waiting for act three (the peer sends act one, reads act two,
/// then is silent).
async fn responder_in_act_three(cancel: &CancellationToken) -> Result<(), Error> {
    let (ours, mut theirs) = pipe(1024);
    let (act_one, _) = Initiator::new(&key(1), &key(2).public_key())
        .unwrap()
        .act_one()
        .unwrap();
    theirs.write_all(&act_one).await.unwrap();
    accept(ours, &key(2), ACT_TIMEOUT, cancel).await.map(drop)
}

macro_rules! act_tests {
    ($($cancel_test:ident, $timeout_test:ident => $scenario:ident, $act:expr;)*) => {$(
        #[tokio::test(start_paused = true)]
        async fn $cancel_test() {
            let cancel = cancel_after(Duration::from_secs(1));
            let start = Instant::now();
            let result = $scenario(&cancel).await;
            assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
            assert_eq!(start.elapsed(), Duration::from_secs(1));
            tokio::task::yield_now().await;
            assert_eq!(alive_tasks(), 0);
        }

        #[tokio::test(start_paused = true)]
        async fn $timeout_test() {
            let start = Instant::now();
            let result = $scenario(&CancellationToken::new()).await;
            assert!(matches!(result, Err(Error::HandshakeTimedOut(a)) if a == $act), "{result:?}");
            assert_eq!(start.elapsed(), ACT_TIMEOUT);
            assert_eq!(alive_tasks(), 0);
        }
    )*};
}

act_tests! {
    cancel_initiator_in_act_one, initiator_act_one_times_out => initiator_in_act_one, Act::One;
    cancel_initiator_in_act_two, initiator_act_two_times_out => initiator_in_act_two, Act::Two;
    cancel_initiator_in_act_three, initiator_act_three_times_out => initiator_in_act_three, Act::Three;
    cancel_responder_in_act_one, responder_act_one_times_out => responder_in_act_one, Act::One;
    cancel_responder_in_act_two, responder_act_two_times_out => responder_in_act_two, Act::Two;
    cancel_responder_in_act_three, responder_act_three_times_out => responder_in_act_three, Act::Three;
}

#[tokio::test]
async fn peer_closing_mid_act_is_a_short_read() {
    let (ours, theirs) = pipe(1024);
    drop(theirs);
    let result = accept(ours, &key(2), ACT_TIMEOUT, &CancellationToken::new()).await;
    match result {
        Err(Error::Handshake(e)) => assert_eq!(e.code().as_deref(), Some("ACT1_READ_FAILED")),
        other => panic!("{other:?}"),
    }
}

/// The futures callers spawn must be `Send`.
#[test]
fn dial_accept_and_listener_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (alice, bob) = (key(1), key(2));
    let bob_pub = bob.public_key();
    let cancel = CancellationToken::new();
    let config = DialConfig::default();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_send(&dial(addr, &alice, &bob_pub, &config, &cancel));
    assert_send(&dial_with(&Tcp, &addr, &alice, &bob_pub, &config, &cancel));
    let (a, _b) = pipe(64);
    assert_send(&accept(a, &bob, ACT_TIMEOUT, &cancel));
    fn assert_send_type<T: Send + Sync>() {}
    assert_send_type::<brontide::Listener>();
    assert_send_type::<brontide::Connection<TcpStream>>();
}
