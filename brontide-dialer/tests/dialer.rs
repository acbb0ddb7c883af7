//! `BrontideDialer` as a conn-worker `Dialer` over loopback: directly, by
//! host name, through a SOCKS5 proxy for onion addresses or for everything,
//! and its typed errors.

use std::time::Duration;

use brontide::{
    Category, ConnectError, DialConfig, Listener, ListenerConfig, NetTransport, NodeKeyPair,
    ProxyScope, SecretKey, Socks5,
};
use brontide_dialer::BrontideDialer;
use conn_worker::Dialer;
use lnaddr::{AddressKind, NetAddress, NodeAddr, PublicKey};
use testkit::socks::FakeSocks5;
use tokio_util::sync::CancellationToken;

const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9735";

fn keypair(b: u8) -> NodeKeyPair {
    NodeKeyPair::new(SecretKey::from_slice(&[b; 32]).expect("valid scalar"))
}

async fn listener(k: &NodeKeyPair) -> Listener {
    let config = ListenerConfig::default().with_filter(|_, _| true);
    Listener::bind("127.0.0.1:0", k.clone(), config)
        .await
        .expect("bind")
}

fn onion_node(remote: PublicKey) -> NodeAddr {
    format!("{remote}@{ONION}").parse().expect("node")
}

#[tokio::test]
async fn brontide_dialer_reaches_an_onion_address_through_the_proxy() {
    let (us, them) = (keypair(1), keypair(2));
    let mut l = listener(&them).await;
    let fake = FakeSocks5::forwarding_to(l.local_addr())
        .await
        .expect("proxy");
    let socks = Socks5::new(fake.addr()).with_stream_isolation();
    let dialer = BrontideDialer::new(us.clone(), DialConfig::default())
        .with_transport(NetTransport::new().with_proxy(socks, ProxyScope::OnionOnly));
    assert!(dialer.reaches(AddressKind::Onion));
    let conn = dialer
        .dial(&onion_node(them.public_key()), CancellationToken::new())
        .await
        .expect("dial through the proxy");
    let accepted = l.accept().await.expect("accepted");
    assert_eq!(accepted.remote_pubkey(), us.public_key());
    drop(conn);
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].atyp, 3);
    assert_eq!(format!("{}:{}", seen[0].host, seen[0].port), ONION);
    assert!(seen[0].credentials.is_some(), "stream isolation on");

    // Clearnet addresses do not go through the proxy with OnionOnly.
    let direct = NodeAddr::new(them.public_key(), l.local_addr());
    dialer
        .dial(&direct, CancellationToken::new())
        .await
        .expect("direct dial");
    assert_eq!(fake.requests().len(), 1);
    l.shutdown().await;
}

#[tokio::test]
async fn brontide_dialer_sends_everything_through_the_proxy_when_asked() {
    let (us, them) = (keypair(1), keypair(2));
    let mut l = listener(&them).await;
    let fake = FakeSocks5::forwarding_to(l.local_addr())
        .await
        .expect("proxy");
    let dialer = BrontideDialer::new(us, DialConfig::default())
        .with_transport(NetTransport::new().with_proxy(Socks5::new(fake.addr()), ProxyScope::All));
    let remote = them.public_key();
    for addr in ["10.9.8.7:9735", "peer.invalid:9735"] {
        let node = NodeAddr::new(remote, addr.parse::<NetAddress>().expect("addr"));
        dialer
            .dial(&node, CancellationToken::new())
            .await
            .expect("dial through the proxy");
        l.accept().await.expect("accepted");
    }
    let seen: Vec<_> = fake
        .requests()
        .into_iter()
        .map(|r| (r.atyp, r.host))
        .collect();
    // The name is not resolved here: the proxy gets it as a name.
    assert_eq!(
        seen,
        [(1, "10.9.8.7".to_owned()), (3, "peer.invalid".to_owned())]
    );
    l.shutdown().await;
}

#[tokio::test]
async fn brontide_dialer_without_a_proxy_names_the_reason_for_onion_addresses() {
    let dialer = BrontideDialer::new(keypair(1), DialConfig::default());
    assert!(!dialer.reaches(AddressKind::Onion));
    let started = std::time::Instant::now();
    let e = dialer
        .dial(
            &onion_node(keypair(2).public_key()),
            CancellationToken::new(),
        )
        .await
        .expect_err("no proxy");
    assert!(started.elapsed() < Duration::from_secs(5), "fails at once");
    assert!(
        matches!(
            &e,
            brontide::Error::Connect(ConnectError::Unreachable(AddressKind::Onion))
        ),
        "{e}"
    );
    assert_eq!(e.category(), Category::Local);
}

#[tokio::test]
async fn a_host_name_is_resolved_and_dialed_under_one_connect_timeout() {
    let (us, them) = (keypair(1), keypair(2));
    let mut l = listener(&them).await;
    let dialer = BrontideDialer::new(us.clone(), DialConfig::default());
    let node: NodeAddr = format!("{}@localhost:{}", them.public_key(), l.local_addr().port())
        .parse()
        .expect("node");
    let conn = dialer
        .dial(&node, CancellationToken::new())
        .await
        .expect("localhost resolves and answers");
    assert_eq!(conn.remote_pubkey(), them.public_key());
    assert_eq!(
        l.accept().await.expect("accepted").remote_pubkey(),
        us.public_key()
    );
    l.shutdown().await;
}

#[tokio::test]
async fn a_refused_connect_is_a_network_fault_printed_once() {
    // A port nothing listens on: bind one and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let dialer = BrontideDialer::new(keypair(1), DialConfig::default());
    let e = dialer
        .dial(
            &NodeAddr::new(keypair(2).public_key(), port),
            CancellationToken::new(),
        )
        .await
        .expect_err("refused");
    assert_eq!(e.category(), Category::Network);
    assert!(!e.is_peer_fault());
    let mut text = e.to_string();
    let mut next = std::error::Error::source(&e);
    while let Some(cause) = next {
        text.push_str(" <- ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    assert_eq!(text.matches("refused").count(), 1, "{text}");
    assert_eq!(text.matches(&port.to_string()).count(), 1, "{text}");
}
