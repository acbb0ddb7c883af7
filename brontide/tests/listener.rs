//! The listener over loopback: silent clients, refused keys, timeouts,
//! shutdown.

use std::time::Duration;

use brontide::{dial, DialConfig, Listener, ListenerConfig, NodeKeyPair, SecretKey};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

fn key(byte: u8) -> NodeKeyPair {
    NodeKeyPair::new(SecretKey::from_slice(&[byte; 32]).unwrap())
}

/// Generous cap for real-socket steps that should take milliseconds.
const CAP: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_silent_clients_do_not_stop_a_good_handshake() {
    let server = key(2);
    let mut listener = Listener::bind("127.0.0.1:0", server.clone(), ListenerConfig::default())
        .await
        .unwrap();
    let addr = listener.local_addr();

    // 100 clients connect and never send a byte (twice the handshake bound).
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }

    let start = std::time::Instant::now();
    let config = DialConfig::default().with_act_timeout(Duration::from_secs(2));
    let conn = tokio::time::timeout(
        CAP,
        dial(
            addr,
            &key(1),
            &server.public_key(),
            &config,
            &CancellationToken::new(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let accepted = tokio::time::timeout(CAP, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.remote_pubkey(), key(1).public_key());
    // Well within one act timeout: the good client never waited for the silent ones.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );

    // The connection works both ways.
    let mut client = conn.into_framed();
    let mut served = accepted.connection.into_framed();
    client.send(b"ping".as_slice()).await.unwrap();
    assert_eq!(&served.next().await.unwrap().unwrap()[..], b"ping");
    served.send(b"pong".as_slice()).await.unwrap();
    assert_eq!(&client.next().await.unwrap().unwrap()[..], b"pong");
    drop(silent);
    listener.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_key_is_dropped_after_act_three() {
    let server = key(2);
    let banned = key(3).public_key();
    let config = ListenerConfig::default().with_filter(move |remote, _| *remote != banned);
    let mut listener = Listener::bind("127.0.0.1:0", server.clone(), config)
        .await
        .unwrap();
    let addr = listener.local_addr();
    let cancel = CancellationToken::new();

    // The banned node completes its side of the handshake (it sent act three)...
    let conn = dial(
        addr,
        &key(3),
        &server.public_key(),
        &DialConfig::default(),
        &cancel,
    )
    .await
    .unwrap();
    // ...then the listener closes the connection.
    let (mut stream, _, _) = conn.into_parts();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(CAP, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "refused connection was not closed");

    // An allowed node is accepted, and is the first (and only) one yielded.
    let _ok = dial(
        addr,
        &key(4),
        &server.public_key(),
        &DialConfig::default(),
        &cancel,
    )
    .await
    .unwrap();
    let accepted = tokio::time::timeout(CAP, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.remote_pubkey(), key(4).public_key());
    listener.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_dropped_after_the_act_timeout() {
    let config = ListenerConfig::default().with_act_timeout(Duration::from_millis(200));
    let listener = Listener::bind("127.0.0.1:0", key(2), config).await.unwrap();
    let mut silent = TcpStream::connect(listener.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(CAP, silent.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    listener.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_evicts_the_oldest_handshake_first() {
    let config = ListenerConfig::default().with_max_handshakes(2);
    let listener = Listener::bind("127.0.0.1:0", key(2), config).await.unwrap();
    let addr = listener.local_addr();
    let mut oldest = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let _third = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(CAP, oldest.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the oldest handshake was not dropped");
    listener.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_handshakes_in_progress_and_ends_every_task() {
    let listener = Listener::bind("127.0.0.1:0", key(2), ListenerConfig::default())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(TcpStream::connect(addr).await.unwrap());
    }
    // Whether or not the listener has taken them in yet, every one of them
    // must see its connection closed.
    tokio::time::timeout(CAP, listener.shutdown())
        .await
        .unwrap();
    for client in &mut clients {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(CAP, client.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}
