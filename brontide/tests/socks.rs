//! BOLT 8 through a SOCKS5 proxy: a real one (microsocks) in front of a
//! brontide listener, and a fake one that maps onion names to a local
//! listener and records what the client sent.

use std::io;
use std::time::Duration;

use brontide::{
    dial_with, Category, DialConfig, Error, Listener, ListenerConfig, NodeKeyPair, SecretKey,
    Socks5, SocksAuth, SocksError, SocksReply, SocksTarget, Transport,
};
use futures::{SinkExt, StreamExt};
use testkit::socks::{FakeSocks5, Microsocks, Route};
use tokio_util::sync::CancellationToken;

const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

fn key(byte: u8) -> NodeKeyPair {
    NodeKeyPair::new(SecretKey::from_slice(&[byte; 32]).expect("valid key"))
}

async fn listener(server: &NodeKeyPair) -> Listener {
    let config = ListenerConfig::default().with_filter(|_, _| true);
    Listener::bind("127.0.0.1:0", server.clone(), config)
        .await
        .expect("bind")
}

/// Dials `target` through `proxy`, then checks a message gets across.
async fn dial_and_exchange(proxy: &Socks5, target: &SocksTarget, listener: &mut Listener) {
    let (client, server) = (key(1), key(2));
    let conn = dial_with(
        proxy,
        target,
        &client,
        &server.public_key(),
        &DialConfig::default(),
        &CancellationToken::new(),
    )
    .await
    .expect("dial through the proxy");
    let accepted = listener.accept().await.expect("accepted");
    assert_eq!(accepted.remote_pubkey(), client.public_key());
    let mut a = conn.into_framed();
    let mut b = accepted.connection.into_framed();
    a.send(&b"through the proxy"[..]).await.expect("send");
    let got = b.next().await.expect("a message").expect("decrypts");
    assert_eq!(&got[..], b"through the proxy");
}

/// The whole chain of an error's messages, as a logger prints it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(" <- ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

#[tokio::test]
async fn microsocks_carries_bolt8_to_a_listener() {
    let Some(proxy) = Microsocks::start(None) else {
        return;
    };
    let mut l = listener(&key(2)).await;
    let socks = Socks5::new(proxy.addr());
    dial_and_exchange(&socks, &SocksTarget::from(l.local_addr()), &mut l).await;
    // A second connection through the same transport.
    dial_and_exchange(&socks, &SocksTarget::from(l.local_addr()), &mut l).await;
    l.shutdown().await;
}

#[tokio::test]
async fn microsocks_with_a_password_takes_the_right_one_only() {
    let Some(proxy) = Microsocks::start(Some(("alice", "s3cret"))) else {
        return;
    };
    let mut l = listener(&key(2)).await;
    let target = SocksTarget::from(l.local_addr());
    let good = Socks5::new(proxy.addr())
        .with_auth(SocksAuth::Password {
            username: "alice".into(),
            password: "s3cret".into(),
        })
        .expect("valid credentials");
    dial_and_exchange(&good, &target, &mut l).await;

    let wrong = Socks5::new(proxy.addr())
        .with_auth(SocksAuth::Password {
            username: "alice".into(),
            password: "wrong".into(),
        })
        .expect("valid credentials");
    let none = Socks5::new(proxy.addr());
    for socks in [wrong, none] {
        let e = socks.connect_target(&target).await.expect_err("refused");
        assert!(matches!(e, SocksError::AuthRefused), "{e}");
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::PermissionDenied);
    }
    l.shutdown().await;
}

#[tokio::test]
async fn onion_names_go_to_the_proxy_as_names() {
    let mut l = listener(&key(2)).await;
    let fake = FakeSocks5::forwarding_to(l.local_addr())
        .await
        .expect("fake proxy");
    let socks = Socks5::new(fake.addr());
    let target = SocksTarget::new(ONION, 9735).expect("target");
    dial_and_exchange(&socks, &target, &mut l).await;
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].atyp, 3, "address type 3: a domain name");
    assert_eq!((seen[0].host.as_str(), seen[0].port), (ONION, 9735));
    assert_eq!(seen[0].methods, [0], "no authentication offered");
    assert_eq!(seen[0].credentials, None);
    l.shutdown().await;
}

#[tokio::test]
async fn ip_targets_go_to_the_proxy_as_addresses() {
    let fake = FakeSocks5::start(|_| Route::Refuse(5))
        .await
        .expect("fake proxy");
    let socks = Socks5::new(fake.addr());
    for (target, atyp, host) in [
        ("10.1.2.3:9735", 1, "10.1.2.3"),
        ("[2001:db8::1]:9735", 4, "2001:db8::1"),
    ] {
        let t = SocksTarget::from(target.parse::<std::net::SocketAddr>().expect("addr"));
        let _ = socks.connect_target(&t).await;
        let last = fake.requests().pop().expect("a request");
        assert_eq!((last.atyp, last.host.as_str()), (atyp, host));
    }
}

#[tokio::test]
async fn stream_isolation_sends_fresh_credentials_on_each_connection() {
    let mut l = listener(&key(2)).await;
    let fake = FakeSocks5::forwarding_to(l.local_addr())
        .await
        .expect("fake proxy");
    let socks = Socks5::new(fake.addr()).with_stream_isolation();
    let clone = socks.clone();
    let target = SocksTarget::new(ONION, 9735).expect("target");
    dial_and_exchange(&socks, &target, &mut l).await;
    dial_and_exchange(&socks, &target, &mut l).await;
    dial_and_exchange(&clone, &target, &mut l).await;
    let creds: Vec<_> = fake
        .requests()
        .into_iter()
        .map(|r| {
            assert!(r.methods.contains(&2), "username/password offered");
            r.credentials.expect("credentials sent")
        })
        .collect();
    assert_eq!(creds.len(), 3);
    assert_ne!(creds[0], creds[1]);
    assert_ne!(creds[1], creds[2], "clones never reuse credentials");
    assert_ne!(creds[0], creds[2]);
    // A new transport (a restarted node) does not reuse them either.
    let other = Socks5::new(fake.addr()).with_stream_isolation();
    dial_and_exchange(&other, &target, &mut l).await;
    let fourth = fake.requests()[3].credentials.clone().expect("credentials");
    assert!(!creds.contains(&fourth));
    l.shutdown().await;
}

#[tokio::test]
async fn fixed_credentials_are_sent_as_given() {
    let mut l = listener(&key(2)).await;
    let fake = FakeSocks5::forwarding_to(l.local_addr())
        .await
        .expect("fake proxy");
    let socks = Socks5::new(fake.addr())
        .with_auth(SocksAuth::Password {
            username: "u".into(),
            password: "p".into(),
        })
        .expect("valid");
    dial_and_exchange(&socks, &SocksTarget::new(ONION, 1).expect("t"), &mut l).await;
    assert_eq!(
        fake.requests()[0].credentials,
        Some(("u".to_owned(), "p".to_owned()))
    );
    l.shutdown().await;
}

#[tokio::test]
async fn a_proxy_refusal_is_typed_and_reaches_the_dial_error() {
    let fake = FakeSocks5::start(|_| Route::Refuse(4))
        .await
        .expect("fake proxy");
    let socks = Socks5::new(fake.addr());
    let target = SocksTarget::new(ONION, 9735).expect("target");
    let e = dial_with(
        &socks,
        &target,
        &key(1),
        &key(2).public_key(),
        &DialConfig::default(),
        &CancellationToken::new(),
    )
    .await
    .expect_err("refused");
    // Typed all the way, no downcast: the dial error names the proxy's reply.
    assert!(matches!(
        e.socks(),
        Some(SocksError::Refused {
            reply: SocksReply::HostUnreachable,
            ..
        })
    ));
    assert_eq!(e.category(), Category::Network);
    assert!(!e.is_peer_fault());
    // Each part of the chain is printed once.
    let text = chain(&e);
    assert_eq!(text.matches(ONION).count(), 1, "{text}");
    assert_eq!(text.matches("host unreachable").count(), 1, "{text}");
}

#[tokio::test]
async fn an_unreachable_proxy_is_named() {
    // A port nothing listens on: bind one and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let socks = Socks5::new(port);
    let target = SocksTarget::new(ONION, 9735).expect("target");
    let e = socks.connect(&target).await.expect_err("unreachable");
    assert!(matches!(
        e.socks(),
        Some(SocksError::ProxyUnreachable { proxy, source }) if *proxy == port
            && source.kind() == io::ErrorKind::ConnectionRefused
    ));
    // Our proxy being down is our fault, not the network's or the peer's.
    assert_eq!(e.category(), Category::Local);
    let text = chain(&e);
    assert_eq!(text.matches("refused").count(), 1, "{text}");
}

/// One deadline: the dial's connect timeout bounds the proxy's exchange.
#[tokio::test]
async fn a_silent_proxy_times_out_with_the_dials_connect_timeout() {
    let fake = FakeSocks5::start(|_| Route::Stall).await.expect("fake");
    let socks = Socks5::new(fake.addr());
    let target = SocksTarget::new(ONION, 9735).expect("target");
    let config = DialConfig::default().with_connect_timeout(Duration::from_millis(200));
    let e = dial_with(
        &socks,
        &target,
        &key(1),
        &key(2).public_key(),
        &config,
        &CancellationToken::new(),
    )
    .await
    .expect_err("times out");
    assert!(matches!(e, Error::ConnectTimedOut), "{e}");
    assert_eq!(e.category(), Category::Timeout);
}

#[tokio::test]
async fn cancelling_ends_a_dial_stuck_in_the_proxy_at_once() {
    let fake = FakeSocks5::start(|_| Route::Stall).await.expect("fake");
    let socks = Socks5::new(fake.addr());
    let target = SocksTarget::new(ONION, 9735).expect("target");
    let cancel = CancellationToken::new();
    let (client, remote, config) = (key(1), key(2).public_key(), DialConfig::default());
    let dial = dial_with(&socks, &target, &client, &remote, &config, &cancel);
    let canceller = async {
        // Cancel once the proxy has the request.
        while fake.requests().is_empty() {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
    };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(dial, canceller)
    })
    .await
    .expect("ends at once");
    assert!(matches!(result, Err(Error::Cancelled)));
}

#[test]
fn bad_targets_and_credentials_are_refused() {
    assert!(matches!(
        SocksTarget::new("", 1),
        Err(SocksError::BadTarget(_))
    ));
    assert!(matches!(
        SocksTarget::new("a".repeat(256), 1),
        Err(SocksError::BadTarget(_))
    ));
    assert!(SocksTarget::new("a".repeat(255), 1).is_ok());
    let proxy = "127.0.0.1:9050".parse().expect("addr");
    for (u, p) in [("", "p"), ("u", ""), (&*"u".repeat(256), "p")] {
        let auth = SocksAuth::Password {
            username: u.into(),
            password: p.into(),
        };
        assert!(matches!(
            Socks5::new(proxy).with_auth(auth),
            Err(SocksError::BadCredentials)
        ));
    }
}

#[test]
fn defaults_are_documented_values() {
    let socks = Socks5::new("127.0.0.1:9050".parse().expect("addr"));
    assert_eq!(
        DialConfig::default().connect_timeout,
        Duration::from_secs(120)
    );
    assert_eq!(socks.auth(), &SocksAuth::None);
    let debug = format!(
        "{:?}",
        socks
            .with_auth(SocksAuth::Password {
                username: "u".into(),
                password: "hunter2".into()
            })
            .expect("valid")
    );
    assert!(!debug.contains("hunter2"), "{debug}");
}

/// A one-connection SOCKS5 proxy on 127.0.0.1 that answers the greeting
/// with `method`, and, for method 0, the request with `reply`.
async fn scripted_proxy(method: u8, reply: Vec<u8>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = proxy.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut s, _) = proxy.accept().await.expect("accept");
        let mut head = [0u8; 2];
        s.read_exact(&mut head).await.expect("greeting");
        let mut methods = vec![0u8; usize::from(head[1])];
        s.read_exact(&mut methods).await.expect("methods");
        s.write_all(&[5, method]).await.expect("method");
        if method == 0 {
            let mut request = [0u8; 5];
            s.read_exact(&mut request).await.expect("request");
            assert_eq!(request[3], 3, "a name");
            let mut rest = vec![0u8; usize::from(request[4]) + 2];
            s.read_exact(&mut rest).await.expect("request");
            s.write_all(&reply).await.expect("reply");
        }
        // Held open until the client has read everything and closed.
        let _ = s.read(&mut [0u8; 1]).await;
    });
    addr
}

fn a_target() -> SocksTarget {
    SocksTarget::new("node.example", 9735).expect("valid")
}

#[tokio::test]
async fn a_proxy_choosing_a_method_we_did_not_offer_is_a_local_protocol_error() {
    let password = SocksAuth::Password {
        username: "u".into(),
        password: "p".into(),
    };
    for auth in [SocksAuth::None, password] {
        // Method 1 (GSSAPI): offered by neither.
        let proxy = scripted_proxy(1, Vec::new()).await;
        let socks = Socks5::new(proxy).with_auth(auth.clone()).expect("valid");
        let err = socks
            .connect_target(&a_target())
            .await
            .expect_err("refused");
        assert!(matches!(err, SocksError::Protocol(_)), "{auth:?}: {err:?}");
        assert_eq!(err.category(), Category::Local, "{auth:?}");
    }
}

#[tokio::test]
async fn an_unknown_reply_code_is_still_a_refusal_by_the_network() {
    // Tor's extended code 0xf0 (onion service descriptor not found).
    let proxy = scripted_proxy(0, vec![5, 0xf0, 0, 1, 0, 0, 0, 0, 0, 0]).await;
    let err = Socks5::new(proxy)
        .connect_target(&a_target())
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            SocksError::Refused {
                reply: SocksReply::Other,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.category(), Category::Network);
}

#[tokio::test]
async fn a_bound_name_that_is_not_utf8_is_a_protocol_error_not_our_bad_target() {
    // Success, bound address type 3: two bytes that are no UTF-8, a port.
    let proxy = scripted_proxy(0, vec![5, 0, 0, 3, 2, 0xff, 0xfe, 0, 1]).await;
    let err = Socks5::new(proxy)
        .connect_target(&a_target())
        .await
        .expect_err("refused");
    assert!(matches!(err, SocksError::Protocol(_)), "{err:?}");
    assert_eq!(err.category(), Category::Local);
    assert!(!chain(&err).contains("node.example"), "{}", chain(&err));
}
