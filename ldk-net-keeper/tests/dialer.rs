//! The dialer and the inbound path against real LDK `PeerManager`s on
//! 127.0.0.1: success when LDK reports the peer connected, typed failures,
//! cancellation, and a connection's life equal to LDK's.

use std::sync::Arc;
use std::time::Duration;

use conn_worker::{Dialer, FailureClass};
use ldk_net_keeper::{Config, Error, LdkDialer};
use lnaddr::NodeAddr;
use testkit::ldk::{LdkNode, LdkPeer, Manager};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a test waits for anything before failing (a hang guard).
const CAP: Duration = Duration::from_secs(60);

fn config() -> Config {
    Config::default()
        .with_connect_timeout(Duration::from_secs(5))
        .and_then(|c| c.with_setup_timeout(Duration::from_millis(500)))
        .and_then(|c| c.with_poll_interval(Duration::from_millis(5)))
        .expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_succeeds_when_ldk_reports_the_peer_connected_and_ends_with_it() {
    let hub = LdkNode::new(1);
    let peer = LdkPeer::start(2, 0).await.expect("peer listens");
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), config());
    let mut conn = dialer
        .dial(
            &NodeAddr::new(peer.id(), peer.addr()),
            CancellationToken::new(),
        )
        .await
        .expect("dial succeeds");
    assert_eq!(conn.peer(), peer.id());
    assert!(!conn.is_inbound());
    let details = hub
        .manager
        .peer_by_node_id(&peer.id())
        .expect("ldk has the peer");
    assert!(!details.is_inbound_connection);

    // The peer goes away: the connection's end is LDK's.
    peer.stop().await;
    tokio::time::timeout(CAP, conn.closed())
        .await
        .expect("connection ends with ldk's");
    assert!(hub.manager.peer_by_node_id(&conn.peer()).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_connection_disconnects_the_peer_in_ldk() {
    let hub = LdkNode::new(3);
    let hub_id = hub.node_id;
    let peer = LdkPeer::start(4, 0).await.expect("peer listens");
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), config());
    let conn = dialer
        .dial(
            &NodeAddr::new(peer.id(), peer.addr()),
            CancellationToken::new(),
        )
        .await
        .expect("dial succeeds");
    drop(conn);
    let gone = async {
        while peer.has(&hub_id) || hub.manager.peer_by_node_id(&peer.id()).is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(CAP, gone)
        .await
        .expect("both sides forget the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_fails_as_a_network_error() {
    let hub = LdkNode::new(5);
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let id = LdkNode::new(6).node_id;
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), config());
    let err = dialer
        .dial(&NodeAddr::new(id, addr), CancellationToken::new())
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert_eq!(dialer.classify(&err), FailureClass::Network);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_node_key_is_disconnected_during_setup() {
    let hub = LdkNode::new(7);
    let peer = LdkPeer::start(8, 0).await.expect("peer listens");
    let someone_else = LdkNode::new(9).node_id;
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), config());
    let err = dialer
        .dial(
            &NodeAddr::new(someone_else, peer.addr()),
            CancellationToken::new(),
        )
        .await
        .expect_err("the listener is another node");
    assert!(matches!(err, Error::Disconnected), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_times_out_in_setup_and_the_socket_is_closed() {
    let hub = LdkNode::new(10);
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = silent.local_addr().expect("addr");
    let id = LdkNode::new(11).node_id;
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), config());
    let node = NodeAddr::new(id, addr);
    let dial = dialer.dial(&node, CancellationToken::new());
    let (result, accepted) = tokio::join!(dial, silent.accept());
    assert!(matches!(result, Err(Error::SetupTimeout)), "{result:?}");
    assert_eq!(
        dialer.classify(&result.expect_err("timed out")),
        FailureClass::Timeout
    );
    // The far end reads act one, then EOF: the connection was closed.
    let (mut stream, _) = accepted.expect("accepted");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(CAP, stream.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(50))), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_setup_fails_the_dial_and_closes_the_socket() {
    let hub = LdkNode::new(12);
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = silent.local_addr().expect("addr");
    let id = LdkNode::new(13).node_id;
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), Config::default());
    let cancel = CancellationToken::new();
    let node = NodeAddr::new(id, addr);
    let dial = dialer.dial(&node, cancel.clone());
    let far = async {
        let (mut stream, _) = silent.accept().await.expect("accepted");
        // Act one arrived: the dial is in LDK's setup. Cancel it now.
        let mut act_one = [0u8; 50];
        stream.read_exact(&mut act_one).await.expect("act one");
        cancel.cancel();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.map(|_| rest.len())
    };
    let (result, rest) = tokio::time::timeout(CAP, async { tokio::join!(dial, far) })
        .await
        .expect("the dial ends once cancelled");
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert_eq!(rest.expect("eof"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_reports_the_inbound_peer_by_the_id_ldk_learnt() {
    let hub = LdkNode::new(14);
    let hub_id = hub.node_id;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), config());
    let peer = LdkPeer::start(15, 0).await.expect("peer");
    let m = Arc::clone(&peer.node.manager);
    let dialing = tokio::spawn(async move {
        if let Some(running) = lightning_net_tokio::connect_outbound(m, hub_id, addr).await {
            running.await;
        }
    });
    let (stream, _) = listener.accept().await.expect("accepted");
    let conn = dialer
        .accept(stream, &CancellationToken::new())
        .await
        .expect("ldk reports the peer connected");
    assert_eq!(conn.peer(), peer.id());
    assert!(conn.is_inbound());
    drop(conn);
    tokio::time::timeout(CAP, dialing)
        .await
        .expect("closed")
        .expect("task");
}

#[test]
fn zero_timeouts_are_refused() {
    assert!(Config::default()
        .with_setup_timeout(Duration::ZERO)
        .is_err());
    assert!(Config::default()
        .with_connect_timeout(Duration::ZERO)
        .is_err());
    assert!(Config::default()
        .with_poll_interval(Duration::ZERO)
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_to_a_peer_ldk_already_has_fails_and_leaves_that_connection_up() {
    let hub = LdkNode::new(16);
    let hub_id = hub.node_id;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hub_addr = listener.local_addr().expect("addr");
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), config());
    let peer = LdkPeer::start(17, 0).await.expect("peer");
    let m = Arc::clone(&peer.node.manager);
    tokio::spawn(async move {
        if let Some(running) = lightning_net_tokio::connect_outbound(m, hub_id, hub_addr).await {
            running.await;
        }
    });
    let (stream, _) = listener.accept().await.expect("accepted");
    let mut inbound = dialer
        .accept(stream, &CancellationToken::new())
        .await
        .expect("inbound connected");

    // LDK keeps the first connection: the dial fails, typed.
    let err = dialer
        .dial(
            &NodeAddr::new(peer.id(), peer.addr()),
            CancellationToken::new(),
        )
        .await
        .expect_err("ldk refuses a second connection");
    assert!(matches!(err, Error::AlreadyConnected), "{err:?}");
    // The failed dial closed only its own socket: the inbound one is up.
    let details = hub
        .manager
        .peer_by_node_id(&peer.id())
        .expect("still connected");
    assert!(details.is_inbound_connection);
    assert!(peer.has(&hub_id));
    let still_open = tokio::time::timeout(Duration::from_millis(1), inbound.closed()).await;
    assert!(still_open.is_err(), "the inbound connection did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onion_address_is_dialed_through_the_transports_socks5_proxy() {
    use brontide::{ProxyScope, Socks5};
    use ldk_net_keeper::NetTransport;
    use lnaddr::{NetAddress, OnionV3};

    let hub = LdkNode::new(18);
    let peer = LdkPeer::start(19, 0).await.expect("peer");
    let proxy = testkit::socks::FakeSocks5::forwarding_to(peer.addr())
        .await
        .expect("proxy");
    let onion = NetAddress::Onion {
        onion: OnionV3::from_pubkey([9; 32]),
        port: 9735,
    };
    let direct = LdkDialer::new(Arc::clone(&hub.manager), config());
    assert!(!direct.reaches(lnaddr::AddressKind::Onion));
    let err = direct
        .dial(
            &NodeAddr::new(peer.id(), onion.clone()),
            CancellationToken::new(),
        )
        .await
        .expect_err("no proxy");
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert_eq!(err.class(), FailureClass::Local);

    let transport =
        NetTransport::new().with_proxy(Socks5::new(proxy.addr()), ProxyScope::OnionOnly);
    let dialer = LdkDialer::new(Arc::clone(&hub.manager), config()).with_transport(transport);
    let conn = dialer
        .dial(
            &NodeAddr::new(peer.id(), onion.clone()),
            CancellationToken::new(),
        )
        .await
        .expect("ldk connects through the proxy");
    assert_eq!(conn.peer(), peer.id());
    let asked = proxy.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].host.as_str(), asked[0].port),
        (onion.host().as_str(), 9735)
    );
}

/// A dialer whose every connect goes to a proxy that never answers.
async fn stalled(
    connect_timeout: Duration,
) -> (testkit::socks::FakeSocks5, LdkDialer<Arc<Manager>>) {
    use brontide::{ProxyScope, Socks5};
    let proxy = testkit::socks::FakeSocks5::start(|_| testkit::socks::Route::Stall)
        .await
        .expect("proxy");
    let transport =
        ldk_net_keeper::NetTransport::new().with_proxy(Socks5::new(proxy.addr()), ProxyScope::All);
    let config = Config::default()
        .with_connect_timeout(connect_timeout)
        .expect("valid");
    let hub = LdkNode::new(20);
    (
        proxy,
        LdkDialer::new(Arc::clone(&hub.manager), config).with_transport(transport),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_hangs_times_out() {
    let (_proxy, dialer) = stalled(Duration::from_millis(200)).await;
    let id = LdkNode::new(21).node_id;
    let err = dialer
        .dial(
            &NodeAddr::new(
                id,
                "127.0.0.1:9".parse::<std::net::SocketAddr>().expect("addr"),
            ),
            CancellationToken::new(),
        )
        .await
        .expect_err("the proxy never answers");
    assert!(matches!(err, Error::ConnectTimeout), "{err:?}");
    assert_eq!(err.class(), FailureClass::Timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_the_connect_ends_the_dial() {
    let (proxy, dialer) = stalled(CAP).await;
    let id = LdkNode::new(22).node_id;
    let cancel = CancellationToken::new();
    let node = NodeAddr::new(
        id,
        "127.0.0.1:9".parse::<std::net::SocketAddr>().expect("addr"),
    );
    let dial = dialer.dial(&node, cancel.clone());
    let cancel_once_asked = async {
        // The proxy has the request: the dial is inside the connect.
        while proxy.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cancel.cancel();
    };
    let (result, ()) = tokio::time::timeout(CAP, async { tokio::join!(dial, cancel_once_asked) })
        .await
        .expect("ends once cancelled");
    // Cancelled, not timed out (the connect timeout here is the test's
    // hang guard).
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
}
