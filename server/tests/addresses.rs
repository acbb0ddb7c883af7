//! Lightning addresses through the server: the order a worker dials a
//! peer's addresses in, and onion addresses skipped with a reason when the
//! dialer has no proxy (the policy taken from the dialer). The dialer's own
//! tests are in `brontide-dialer`.

mod common;

use std::time::Duration;

use bitcoin::secp256k1::SecretKey;
use brontide::{DialConfig, NetTransport, NodeKeyPair, Socks5};
use common::{config, key, Fixture};
use server::{
    AddressKind, AddressPolicy, BrontideDialer, NetAddress, NodeAddr, ProxyScope, ServerError,
    ServerEvent, SkipReason, StartupPeer,
};
use testkit::{run, settle, Behavior};

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

/// A stored user-given address the policy skips (an onion one, the proxy
/// since removed) is reported at startup as an announced one is.
#[test]
fn a_user_given_onion_address_at_startup_without_a_proxy_is_reported() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        let mut events = f.server.events();
        let mut entry = StartupPeer::new(peer, addrs(&["1.2.3.4:1"]), true);
        entry.user_addrs = addrs(&[ONION]);
        f.server.startup([entry]);
        settle().await;
        let skipped: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
            .filter_map(|e| match e {
                ServerEvent::AddressSkipped { addr, reason, .. } => Some((addr, reason)),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, [(addrs(&[ONION])[0].clone(), SkipReason::NoProxy)]);
        assert_eq!(dialed(&f), ["1.2.3.4:1"]);
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

/// The proxy is configured once, on the dialer's transport; the policy
/// that decides which addresses reach the worker follows from it.
#[test]
fn the_address_policy_follows_from_the_dialer() {
    let us = NodeKeyPair::new(SecretKey::from_slice(&[1; 32]).expect("valid scalar"));
    let given = addrs(&[ONION, "1.2.3.4:9735"]);
    let plain = BrontideDialer::new(us.clone(), DialConfig::default());
    let (dial, skipped) = AddressPolicy::for_dialer(&plain).plan(&given);
    assert_eq!(dial, addrs(&["1.2.3.4:9735"]));
    assert_eq!(skipped[0].reason, SkipReason::NoProxy);

    let tor = Socks5::new("127.0.0.1:9050".parse().expect("addr"));
    let proxied = BrontideDialer::new(us, DialConfig::default())
        .with_transport(NetTransport::new().with_proxy(tor, ProxyScope::OnionOnly));
    assert!(proxied.reaches(AddressKind::Onion));
    let (dial, skipped) = AddressPolicy::for_dialer(&proxied).plan(&given);
    assert_eq!(dial, addrs(&["1.2.3.4:9735", ONION]));
    assert!(skipped.is_empty());
}

/// Port 0 is never dialed (BOLT 7: ignore such an address): a connect to
/// it is refused with the reason, and an announced one is skipped.
#[test]
fn port_zero_is_refused_and_skipped() {
    run(async {
        let f = Fixture::new(key(US));
        let peer = key(1);
        let zero = NetAddress::Ip(([10, 0, 0, 1], 0).into());
        for perm in [true, false] {
            let err = f
                .server
                .connect(NodeAddr::new(peer, zero.clone()), perm)
                .await
                .expect_err("port 0");
            assert!(
                matches!(
                    err,
                    ServerError::Unreachable {
                        reason: SkipReason::PortZero,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        assert_eq!(f.server.persistence(&peer), None);
        let given = vec![zero.clone(), "1.2.3.4:9735".parse().expect("addr")];
        f.server.startup([StartupPeer::new(peer, given, true)]);
        settle().await;
        assert_eq!(dialed(&f), ["1.2.3.4:9735"]);
        let status = f.server.status();
        assert_eq!(status[0].skipped[0].addr, zero);
        assert_eq!(status[0].skipped[0].reason, SkipReason::PortZero);
        f.server.shutdown().await;
    });
}
