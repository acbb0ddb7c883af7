//! Lightning addresses through the server: the order a worker dials a
//! peer's addresses in, onion addresses skipped with a reason when there is
//! no proxy, and the brontide dialer reaching onion (and, optionally, every)
//! address through a SOCKS5 proxy.

mod common;

use std::io;
use std::time::Duration;

use bitcoin::secp256k1::{PublicKey, SecretKey};
use brontide::{DialConfig, Listener, ListenerConfig, NodeKeyPair, Socks5};
use common::{config, key, Fixture};
use conn_worker::Dialer;
use server::{
    AddressKind, AddressPolicy, BrontideDialer, NetAddress, NodeAddr, ProxyScope, ServerError,
    ServerEvent, SkipReason, StartupPeer,
};
use testkit::socks::FakeSocks5;
use testkit::{run, settle, Behavior};
use tokio_util::sync::CancellationToken;

const US: u8 = 200;
const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9735";

fn addrs(list: &[&str]) -> Vec<NetAddress> {
    list.iter().map(|s| s.parse().expect(s)).collect()
}

fn dialed(f: &Fixture) -> Vec<String> {
    f.dialer
        .dialed()
        .into_iter()
        .map(|n| n.addr.to_string())
        .collect()
}

#[test]
fn worker_dials_ipv6_ipv4_dns_and_skips_onion_without_a_proxy() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        let mut events = f.server.events();
        let given = addrs(&[
            ONION,
            "node.example:9735",
            "1.2.3.4:9735",
            "[2001:db8::1]:9735",
        ]);
        f.server
            .startup([StartupPeer::new(peer, given.clone(), true)]);
        settle().await;
        assert_eq!(
            dialed(&f),
            ["[2001:db8::1]:9735", "1.2.3.4:9735", "node.example:9735"],
            "IPv6, IPv4, DNS; never the onion address"
        );
        let status = f.server.status();
        assert_eq!(status[0].skipped.len(), 1);
        assert_eq!(status[0].skipped[0].addr, given[0]);
        assert_eq!(status[0].skipped[0].reason, SkipReason::NoProxy);
        let mut skipped = Vec::new();
        while let Ok(e) = events.try_recv() {
            if let ServerEvent::AddressSkipped {
                peer: p,
                addr,
                reason,
            } = e
            {
                skipped.push((p, addr, reason));
            }
        }
        assert_eq!(skipped, [(peer, given[0].clone(), SkipReason::NoProxy)]);
        f.server.shutdown().await;
    });
}

#[test]
fn with_a_proxy_onion_addresses_are_dialed_last() {
    run(async {
        let mut c = config();
        c.addresses = AddressPolicy::default().with_onion(true);
        let f = Fixture::with_config(key(US), c);
        let peer = key(1);
        f.server.channel_opened(peer);
        f.server
            .node_announcement(peer, addrs(&[ONION, "1.2.3.4:9735"]));
        f.server
            .connect(
                NodeAddr::new(peer, "1.2.3.4:9735".parse::<NetAddress>().expect("addr")),
                true,
            )
            .await
            .expect("perm connect");
        settle().await;
        assert_eq!(dialed(&f), ["1.2.3.4:9735", ONION]);
        assert!(f.server.status()[0].skipped.is_empty());
        f.server.shutdown().await;
    });
}

#[test]
fn the_last_address_that_worked_is_dialed_first_then_the_preference() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        let given = addrs(&["node.example:9735", "1.2.3.4:9735", "[2001:db8::1]:9735"]);
        // Only the DNS name answers.
        f.dialer
            .set(NodeAddr::new(peer, given[0].clone()), Behavior::Succeed);
        f.server
            .startup([StartupPeer::new(peer, given.clone(), true)]);
        settle().await;
        assert!(f.server.is_connected(&peer));
        assert_eq!(
            dialed(&f),
            ["[2001:db8::1]:9735", "1.2.3.4:9735", "node.example:9735"]
        );
        // It disconnects, then stops answering: the redial starts with it.
        f.dialer
            .set(NodeAddr::new(peer, given[0].clone()), Behavior::Fail);
        f.handler.close(&peer);
        settle().await;
        f.clock.advance(Duration::from_secs(5)).await;
        assert_eq!(
            dialed(&f)[3..6],
            ["node.example:9735", "[2001:db8::1]:9735", "1.2.3.4:9735"]
        );
        f.server.shutdown().await;
    });
}

#[test]
fn the_order_is_configurable() {
    run(async {
        let mut c = config();
        c.addresses = AddressPolicy::default()
            .with_onion(true)
            .with_order([AddressKind::Onion, AddressKind::Ipv4]);
        let f = Fixture::with_config(key(US), c);
        let peer = key(1);
        f.server.startup([StartupPeer::new(
            peer,
            addrs(&["[::1]:1", "1.2.3.4:1", ONION]),
            false,
        )]);
        settle().await;
        assert_eq!(dialed(&f), [ONION, "1.2.3.4:1", "[::1]:1"]);
        f.server.shutdown().await;
    });
}

#[test]
fn announcements_of_onion_addresses_without_a_proxy_are_reported() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        f.server.channel_opened(peer);
        let mut events = f.server.events();
        f.server.node_announcement(peer, addrs(&[ONION]));
        settle().await;
        assert!(dialed(&f).is_empty());
        assert!(matches!(
            events.try_recv(),
            Ok(ServerEvent::AddressSkipped {
                reason: SkipReason::NoProxy,
                ..
            })
        ));
        assert_eq!(f.server.status()[0].skipped.len(), 1);
        f.server.shutdown().await;
    });
}

#[test]
fn connecting_to_an_onion_address_without_a_proxy_is_refused_with_the_reason() {
    run(async {
        let f = Fixture::new(key(US));
        let node: NodeAddr = format!("{}@{ONION}", key(1)).parse().expect("node");
        for perm in [true, false] {
            let e = f
                .server
                .connect(node.clone(), perm)
                .await
                .expect_err("refused");
            assert!(
                matches!(
                    &e,
                    ServerError::Unreachable {
                        reason: SkipReason::NoProxy,
                        ..
                    }
                ),
                "{e}"
            );
            // The reason is the error's source, printed once by whoever
            // walks the chain.
            let reason = std::error::Error::source(&e).expect("a reason").to_string();
            assert!(reason.contains("proxy"), "{reason}");
            assert!(!e.to_string().contains("proxy"), "{e}");
        }
        assert!(f.server.status().is_empty(), "no worker was created");
        assert!(dialed(&f).is_empty());
        f.server.shutdown().await;
    });
}

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
        .with_proxy(socks, ProxyScope::OnionOnly);
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
        .with_proxy(Socks5::new(fake.addr()), ProxyScope::All);
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
    let brontide::Error::Connect(io) = e else {
        panic!("expected a connect error, got {e}");
    };
    assert_eq!(io.kind(), io::ErrorKind::Unsupported);
    let reason = io.get_ref().and_then(|e| e.downcast_ref::<SkipReason>());
    assert_eq!(reason, Some(&SkipReason::NoProxy));
}
