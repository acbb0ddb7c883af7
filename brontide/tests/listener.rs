//! The listener over loopback: silent clients, refused keys, timeouts,
//! shutdown.

use std::time::Duration;

use std::sync::Arc;

use brontide::{
    dial, Act, Category, ConfigError, DialConfig, FailureReason, Listener, ListenerConfig,
    ListenerEvent, NodeKeyPair, NodeSigner, PublicKey, SecretKey, SharedSecret, SignerError,
    ACT_ONE_LEN,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
async fn a_full_pending_set_evicts_the_oldest_silent_connection_and_reports_it() {
    let config = ListenerConfig::default()
        .with_max_pending(2)
        .unwrap()
        .with_silence_grace(Duration::ZERO);
    let listener = Listener::bind("127.0.0.1:0", key(2), config).await.unwrap();
    let monitor = listener.monitor();
    let mut events = monitor.subscribe();
    let addr = listener.local_addr();
    let mut oldest = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let _third = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(CAP, oldest.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the oldest silent connection was not dropped");
    let Some(ListenerEvent::HandshakeFailed(failure)) = events.recv().await else {
        panic!("no event");
    };
    assert_eq!(failure.remote_addr, oldest.local_addr().unwrap());
    assert_eq!(
        (failure.act, &failure.reason),
        (Act::One, &FailureReason::Evicted)
    );
    assert_eq!(failure.code(), None);
    let stats = monitor.wait_until(|s| s.accepted == 3).await.unwrap();
    assert_eq!((stats.evicted, stats.failed(), stats.pending), (1, 1, 2));
    listener.shutdown().await;
}

#[test]
fn a_listener_without_handshake_slots_is_refused() {
    assert_eq!(
        ListenerConfig::default().with_max_handshakes(0).err(),
        Some(ConfigError::ZeroMaxHandshakes)
    );
    assert_eq!(
        ListenerConfig::default().with_max_pending(0).err(),
        Some(ConfigError::ZeroMaxPending)
    );
    let config = ListenerConfig::default().with_max_handshakes(1).unwrap();
    assert_eq!(config.max_handshakes(), 1);
    assert_eq!(
        ConfigError::ZeroMaxHandshakes.to_string(),
        "max_handshakes must be at least 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_act_is_an_event_with_its_spec_code_and_address_and_a_counter() {
    let listener = Listener::bind("127.0.0.1:0", key(2), ListenerConfig::default())
        .await
        .unwrap();
    let monitor = listener.monitor();
    let mut events = monitor.subscribe();
    let mut client = TcpStream::connect(listener.local_addr()).await.unwrap();
    let mut act_one = [0u8; ACT_ONE_LEN];
    act_one[0] = 1; // version 1
    client.write_all(&act_one).await.unwrap();
    let Some(ListenerEvent::HandshakeFailed(failure)) = events.recv().await else {
        panic!("no event");
    };
    assert_eq!(failure.remote_addr, client.local_addr().unwrap());
    assert_eq!(failure.code().as_deref(), Some("ACT1_BAD_VERSION"));
    assert_eq!(failure.category(), Category::Peer);
    assert!(
        failure.to_string().contains("ACT1_BAD_VERSION"),
        "{failure}"
    );
    let stats = monitor.stats();
    assert_eq!(
        (stats.accepted, stats.peer_faults, stats.failed()),
        (1, 1, 1)
    );
    listener.shutdown().await;
}

/// Twenty honest clients at once against one handshake slot and two
/// pending places: the extra ones wait (in the pending set or the kernel's
/// backlog), none is reset, none is evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_clients_beyond_the_bounds_wait_and_are_never_reset() {
    let server = key(2);
    // A connection not yet sending is never evicted within the test (a
    // grace far beyond any scheduling delay), so the outcome cannot depend
    // on how the threads run.
    let config = ListenerConfig::default()
        .with_max_handshakes(1)
        .unwrap()
        .with_max_pending(2)
        .unwrap()
        .with_silence_grace(Duration::from_secs(3600));
    let mut listener = Listener::bind("127.0.0.1:0", server.clone(), config)
        .await
        .unwrap();
    let monitor = listener.monitor();
    let addr = listener.local_addr();
    let clients = 20;
    let mut dials = tokio::task::JoinSet::new();
    for i in 0..clients {
        let remote = server.public_key();
        dials.spawn(async move {
            let config = DialConfig::default().with_act_timeout(CAP);
            dial(
                addr,
                &key(10 + i),
                &remote,
                &config,
                &CancellationToken::new(),
            )
            .await
        });
    }
    let mut accepted = 0;
    while accepted < clients {
        tokio::time::timeout(CAP, listener.accept())
            .await
            .unwrap()
            .unwrap();
        accepted += 1;
    }
    while let Some(dialed) = dials.join_next().await {
        dialed.unwrap().expect("every honest dial completes");
    }
    let stats = monitor.stats();
    assert_eq!((stats.established, stats.failed()), (u64::from(clients), 0));
    listener.shutdown().await;
}

/// Silent connections fill the pending set; an honest client behind them
/// still gets through, because silent ones are evicted for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_flood_beyond_the_pending_bound_does_not_keep_out_an_honest_client() {
    let server = key(2);
    let config = ListenerConfig::default()
        .with_max_pending(4)
        .unwrap()
        .with_silence_grace(Duration::ZERO);
    let mut listener = Listener::bind("127.0.0.1:0", server.clone(), config)
        .await
        .unwrap();
    let monitor = listener.monitor();
    let addr = listener.local_addr();
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let config = DialConfig::default().with_act_timeout(CAP);
    let conn = dial(
        addr,
        &key(1),
        &server.public_key(),
        &config,
        &CancellationToken::new(),
    )
    .await
    .expect("the honest client gets through");
    let accepted = tokio::time::timeout(CAP, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.remote_pubkey(), key(1).public_key());
    drop(conn);
    let stats = monitor.stats();
    assert_eq!(stats.accepted, 21);
    assert!(stats.evicted >= 16, "{stats:?}");
    listener.shutdown().await;
}

/// The signer path: a listener and a dialer whose keys are signers of
/// their own complete a handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_and_a_dialer_with_signers_complete_a_handshake() {
    struct Remote(NodeKeyPair);
    impl NodeSigner for Remote {
        fn node_id(&self) -> PublicKey {
            self.0.public_key()
        }
        fn ecdh(&self, remote: &PublicKey) -> Result<SharedSecret, SignerError> {
            self.0.ecdh(remote)
        }
    }
    let server = Arc::new(Remote(key(2)));
    let client = Arc::new(Remote(key(1)));
    let mut listener = Listener::bind(
        "127.0.0.1:0",
        Arc::clone(&server),
        ListenerConfig::default(),
    )
    .await
    .unwrap();
    let conn = dial(
        listener.local_addr(),
        &client,
        &server.node_id(),
        &DialConfig::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let accepted = tokio::time::timeout(CAP, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.remote_pubkey(), client.node_id());
    assert_eq!(conn.remote_pubkey(), server.node_id());
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

/// Keepalive as configured on both ends: the listener's accepted sockets
/// and a `NetTransport`'s dialed ones (on by default, off when asked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_is_set_on_accepted_and_dialed_sockets_as_configured() {
    use brontide::{dial_with, Keepalive, NetAddress, NetTransport};
    use socket2::SockRef;

    let fast = Keepalive::new(Duration::from_secs(15), Duration::from_secs(5), 3).unwrap();
    for keepalive in [Some(fast), None] {
        let server = key(2);
        let config = ListenerConfig::default().with_keepalive(keepalive);
        let mut listener = Listener::bind("127.0.0.1:0", server.clone(), config)
            .await
            .unwrap();
        let transport = NetTransport::new().with_keepalive(keepalive);
        let addr = NetAddress::from(listener.local_addr());
        let conn = dial_with(
            &transport,
            &addr,
            &key(1),
            &server.public_key(),
            &DialConfig::default(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        let accepted = tokio::time::timeout(CAP, listener.accept())
            .await
            .unwrap()
            .unwrap();
        for stream in [conn.get_ref(), accepted.connection.get_ref()] {
            let socket = SockRef::from(stream);
            assert_eq!(socket.keepalive().unwrap(), keepalive.is_some());
            #[cfg(target_os = "linux")]
            if keepalive.is_some() {
                assert_eq!(
                    socket.tcp_keepalive_time().unwrap(),
                    Duration::from_secs(15)
                );
                assert_eq!(
                    socket.tcp_keepalive_interval().unwrap(),
                    Duration::from_secs(5)
                );
                assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
            }
            assert!(stream.nodelay().unwrap());
        }
        listener.shutdown().await;
    }
    assert_eq!(Keepalive::default().dead_after(), Duration::from_secs(120));
}

/// A grace too long for the clock means never evict: the accept loop, which
/// adds the grace to the oldest pending connection's accept time as soon as
/// the pending set is full, used to overflow and die there, and nothing
/// more was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_grace_of_duration_max_never_evicts_and_keeps_accepting() {
    let server = key(2);
    let config = ListenerConfig::default()
        .with_max_pending(1)
        .unwrap()
        .with_silence_grace(Duration::MAX);
    let mut listener = Listener::bind("127.0.0.1:0", server.clone(), config)
        .await
        .unwrap();
    let addr = listener.local_addr();
    let monitor = listener.monitor();
    // The pending set is full with this one: the loop looks for room.
    let silent = TcpStream::connect(addr).await.unwrap();
    monitor.wait_until(|s| s.accepted == 1).await.unwrap();
    drop(silent);
    // It failed its handshake (its act one short), and left no room
    // taken.
    let stats = tokio::time::timeout(
        CAP,
        monitor.wait_until(|s| s.failed() == 1 && s.pending == 0 && s.handshaking == 0),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((stats.evicted, stats.peer_faults), (0, 1), "{stats:?}");
    let config = DialConfig::default().with_act_timeout(CAP);
    let _conn = tokio::time::timeout(
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
    .expect("the dial ends")
    .expect("the listener still accepts");
    let accepted = tokio::time::timeout(CAP, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.remote_pubkey(), key(1).public_key());
    listener.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_handshakes_above_the_semaphore_limit_is_refused_and_the_limit_works() {
    let max = tokio::sync::Semaphore::MAX_PERMITS;
    assert_eq!(
        ListenerConfig::default().with_max_handshakes(max + 1).err(),
        Some(ConfigError::TooManyHandshakes { max })
    );
    assert_eq!(
        ListenerConfig::default()
            .with_max_handshakes(usize::MAX)
            .err(),
        Some(ConfigError::TooManyHandshakes { max })
    );
    // The largest bound allowed starts a listener (it used to panic there).
    let config = ListenerConfig::default().with_max_handshakes(max).unwrap();
    let listener = Listener::bind("127.0.0.1:0", key(2), config).await.unwrap();
    listener.shutdown().await;
}

/// A signer whose ECDH panics.
struct PanickingSigner(NodeKeyPair);

impl NodeSigner for PanickingSigner {
    fn node_id(&self) -> PublicKey {
        self.0.public_key()
    }
    fn ecdh(&self, _remote: &PublicKey) -> Result<SharedSecret, SignerError> {
        panic!("the signer panics (on purpose, in a test)")
    }
}

/// Dials `listener` once (the dial's own result is not the point), then
/// waits for its one failure event and for the counters to settle.
async fn one_failure(
    listener: &Listener,
    client: u8,
    server: &PublicKey,
) -> (brontide::InboundFailure, brontide::ListenerStats) {
    let monitor = listener.monitor();
    let mut events = monitor.subscribe();
    let config = DialConfig::default().with_act_timeout(CAP);
    let _ = dial(
        listener.local_addr(),
        &key(client),
        server,
        &config,
        &CancellationToken::new(),
    )
    .await;
    let event = tokio::time::timeout(CAP, events.recv())
        .await
        .expect("a failure is reported")
        .expect("the listener runs");
    let ListenerEvent::HandshakeFailed(failure) = event else {
        panic!("{event:?}");
    };
    let stats = tokio::time::timeout(
        CAP,
        monitor.wait_until(|s| {
            s.accepted == 1
                && s.accepted
                    == s.established + s.failed() + s.pending as u64 + s.handshaking as u64
        }),
    )
    .await
    .expect("the counters add up")
    .expect("the listener runs");
    (failure, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_signer_is_a_local_failure_reported_and_counted() {
    let server = key(2);
    let listener = Listener::bind(
        "127.0.0.1:0",
        PanickingSigner(server.clone()),
        ListenerConfig::default(),
    )
    .await
    .unwrap();
    let (failure, stats) = one_failure(&listener, 1, &server.public_key()).await;
    assert_eq!(
        (failure.act, &failure.reason),
        (Act::One, &FailureReason::Local)
    );
    assert_eq!(failure.category(), Category::Local);
    assert_eq!(
        (stats.local_errors, stats.failed(), stats.handshaking),
        (1, 1, 0)
    );
    listener.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_key_filter_is_a_local_failure_reported_and_counted() {
    let server = key(2);
    let config = ListenerConfig::default()
        .with_filter(|_, _| panic!("the filter panics (on purpose, in a test)"));
    let listener = Listener::bind("127.0.0.1:0", server.clone(), config)
        .await
        .unwrap();
    let (failure, stats) = one_failure(&listener, 1, &server.public_key()).await;
    assert_eq!(
        (failure.act, &failure.reason),
        (Act::Three, &FailureReason::Local)
    );
    assert_eq!(
        (stats.local_errors, stats.failed(), stats.established),
        (1, 1, 0)
    );
    listener.shutdown().await;
}
