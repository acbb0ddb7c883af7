//! Issue 19, item 1: a link whose far end vanished without a FIN is found
//! by BOLT 1 liveness, reported with its typed reason, redialed, and
//! connected again once the path heals.
//!
//! A whole node (`server::Server`, the real brontide dialer, lnconnd's own
//! peer handler with its pings) reaches a peer (the same, serving) through
//! testkit's fault-injecting proxy on 127.0.0.1. The proxy starts dropping
//! every byte both ways without closing anything. Every wait is on an
//! event, bounded only by a hang guard; no step depends on how long
//! another took.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../src/output.rs"]
mod output;
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../src/peer.rs"]
mod peer;
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../src/wire.rs"]
mod wire;

mod support;

use std::time::Duration;

use brontide::DialConfig;
use peer::SessionOpts;
use server::{Config, NodeAddr, ServerEvent};
use support::*;
use testkit::faults::{FaultProxy, Mode};
use tokio::sync::mpsc;

const MS: Duration = Duration::from_millis(1);
const PING_INTERVAL: Duration = Duration::from_millis(200);
const PONG_TIMEOUT: Duration = Duration::from_millis(300);

fn live() -> liveness::Config {
    liveness::Config::new(PING_INTERVAL, PONG_TIMEOUT).expect("non-zero")
}

/// Backoff in tens of milliseconds, handshakes through the black hole
/// given up after a second.
fn fast_config() -> (Config, DialConfig) {
    let mut config = Config::default();
    let policy = backoff::Policy::new(50 * MS, 500 * MS).expect("a valid policy");
    config.worker = config.worker.with_policy(policy).with_seed(19);
    let dial = DialConfig::default()
        .with_connect_timeout(Duration::from_secs(1))
        .with_act_timeout(Duration::from_secs(1));
    (config, dial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_link_is_found_by_liveness_redialed_and_connected_again_after_heal() {
    dead_path_is_found_redialed_and_healed(Mode::BlackHole).await;
}

/// A path that stops moving bytes (every byte kept, none delivered) is
/// found the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_link_is_found_by_liveness_redialed_and_connected_again_after_heal() {
    dead_path_is_found_redialed_and_healed(Mode::Stall).await;
}

async fn dead_path_is_found_redialed_and_healed(fault: Mode) {
    // The peer: serves, pings, answers pings.
    let peer_key = keys(0xb0b);
    let (config, dial) = fast_config();
    let remote = node(
        &peer_key,
        config.clone(),
        dial.clone(),
        SessionOpts {
            liveness: live(),
            ..SessionOpts::default()
        },
    );
    let proxy = FaultProxy::start(serve(&remote, &peer_key).await)
        .await
        .expect("a proxy");

    // Our node: a persistent peer behind the proxy.
    let (inits_tx, mut inits) = mpsc::unbounded_channel();
    let local = node(
        &keys(0xa11ce),
        config,
        dial,
        SessionOpts {
            liveness: live(),
            on_init: Some(inits_tx),
            ..SessionOpts::default()
        },
    );
    let peer = peer_key.public_key();
    let mut events = local.events();
    local
        .connect(NodeAddr::new(peer, proxy.addr()), true)
        .await
        .expect("a perm connect");
    next(&mut events, "the first connection", |e| {
        matches!(e, ServerEvent::Connected { .. } if about(e, &peer)).then_some(())
    })
    .await;
    let got = tokio::time::timeout(HANG_GUARD, inits.recv()).await;
    assert_eq!(got.ok().flatten(), Some(peer), "the peer's init arrived");

    // The path goes dead: no byte, no FIN, no RST passes.
    proxy.set_mode(fault);
    let (reason, reconnecting) = next(&mut events, "the dead link's disconnect", |e| match e {
        ServerEvent::Disconnected {
            peer: p,
            reason,
            reconnecting,
            ..
        } if *p == peer => Some((reason.clone(), *reconnecting)),
        _ => None,
    })
    .await;
    let timed_out = liveness::Error::PongTimeout {
        timeout: PONG_TIMEOUT,
    };
    assert_eq!(reason, peer::dead(timed_out));
    assert!(reconnecting, "a persistent peer is redialed");
    if fault == Mode::BlackHole {
        assert!(
            proxy.stats().dropped > 0,
            "the ping went into the black hole"
        );
    }

    // Redialed while the path is still dead: the handshake never
    // completes.
    next(&mut events, "a redial", |e| {
        matches!(e, ServerEvent::DialStarted { .. } if about(e, &peer)).then_some(())
    })
    .await;
    next(&mut events, "the redial failing in the black hole", |e| {
        matches!(e, ServerEvent::DialFailed { .. } if about(e, &peer)).then_some(())
    })
    .await;
    assert!(!local.is_connected(&peer));

    // The path heals: connected again, and bytes flow end to end.
    proxy.heal();
    next(&mut events, "the connection after the heal", |e| {
        matches!(e, ServerEvent::Connected { .. } if about(e, &peer)).then_some(())
    })
    .await;
    let got = tokio::time::timeout(HANG_GUARD, inits.recv()).await;
    assert_eq!(
        got.ok().flatten(),
        Some(peer),
        "an init over the healed path"
    );

    local.shutdown().await;
    remote.shutdown().await;
    assert_eq!(local.tasks(), 0);
    assert_eq!(remote.tasks(), 0);
}

/// Interop: a real BOLT 1 peer (LDK) answers the crate's ping with a pong
/// of the length asked, which the crate decodes and accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldk_answers_our_ping_with_the_length_asked() {
    use futures::SinkExt;
    use liveness::{Action, Liveness};

    let ldk = testkit::ldk::LdkNode::new(0x19);
    let addr = ldk.listen().await;
    let conn = brontide::dial(
        addr,
        &keys(0x1d),
        &ldk.node_id,
        &DialConfig::default(),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("the handshake with LDK");
    let mut framed = conn.into_framed();
    // init both ways first (BOLT 1).
    while !matches!(
        wire::Message::parse(&next_from(&mut framed, "init").await),
        Ok(wire::Message::Init { .. })
    ) {}
    framed
        .send(wire::init().as_slice())
        .await
        .expect("send init");

    let config = live().with_pong_bytes(7).expect("answerable");
    let start = std::time::Instant::now();
    let mut link = Liveness::new(config, start);
    let Some(Action::SendPing(ping)) = link.poll(start + PING_INTERVAL) else {
        panic!("a ping is due after the interval")
    };
    framed
        .send(ping.encode().as_slice())
        .await
        .expect("send the ping");
    let pong = loop {
        if let Ok(wire::Message::Pong(pong)) =
            wire::Message::parse(&next_from(&mut framed, "pong").await)
        {
            break pong;
        }
    };
    assert_eq!(pong.len(), 7);
    link.on_pong(start + PING_INTERVAL, pong.len());
    assert!(!link.is_awaiting_pong() && !link.is_dead());
}

/// The next message from LDK, within the hang guard.
async fn next_from(
    framed: &mut tokio_util::codec::Framed<tokio::net::TcpStream, brontide::MessageCodec>,
    what: &str,
) -> Vec<u8> {
    use futures::StreamExt;
    match tokio::time::timeout(HANG_GUARD, framed.next()).await {
        Ok(Some(Ok(msg))) => msg.to_vec(),
        other => panic!("no {what} from LDK: {other:?}"),
    }
}

/// A peer that keeps sending but stops reading: lnconnd's session blocks
/// writing its echoes, and liveness still ends it (every send races the
/// liveness deadline), instead of the session hanging until shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_cannot_pin_the_session() {
    let key = keys(0x5e55);
    let (config, dial) = fast_config();
    let local = node(
        &key,
        config,
        dial,
        SessionOpts {
            echo: true,
            liveness: live(),
            ..SessionOpts::default()
        },
    );
    let mut events = local.events();
    let addr = serve(&local, &key).await;
    let peer_key = keys(0xdead);
    let conn = brontide::dial(
        addr,
        &peer_key,
        &key.public_key(),
        &DialConfig::default(),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("the handshake");
    // init, then echo requests of 60,000 bytes, never reading: our
    // session's echoes fill the socket buffers and its send blocks.
    let flood = tokio::spawn(flood_without_reading(conn.into_framed()));
    let reason = next(&mut events, "the session's end", |e| match e {
        ServerEvent::Disconnected { peer, reason, .. } if *peer == peer_key.public_key() => {
            Some(reason.clone())
        }
        _ => None,
    })
    .await;
    let timed_out = liveness::Error::PongTimeout {
        timeout: PONG_TIMEOUT,
    };
    assert_eq!(reason, peer::dead(timed_out));
    local.shutdown().await;
    let ended = tokio::time::timeout(HANG_GUARD, flood).await;
    assert!(
        matches!(ended, Ok(Ok(Err(_)))),
        "the flood ends on the closed connection"
    );
}

/// Sends init, then 60,000-byte echo requests until the connection fails;
/// never reads.
async fn flood_without_reading(
    mut framed: tokio_util::codec::Framed<tokio::net::TcpStream, brontide::MessageCodec>,
) -> Result<(), brontide::Error> {
    use futures::SinkExt;
    framed.send(wire::init().as_slice()).await?;
    let mut big = 32769u16.to_be_bytes().to_vec();
    big.resize(60_000, 0);
    loop {
        framed.send(big.as_slice()).await?;
    }
}

/// Issue 14: a peer whose side of a connection died silently (it
/// dropped the connection; its FIN was lost, as when a laptop changes
/// network) dials us while we still hold the dead one. Our connection
/// was initiated by the smaller key, so the duplicate rule keeps it and
/// parks the peer's new one; the server probes the old one, lnconnd's
/// handler pings it, nothing comes back within the probe's timeout
/// (3 s, inside the 5 s grace, where liveness alone would take 15
/// minutes here), and the parked connection takes over: the peer is
/// served at once, on its new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_peer_that_dials_again_is_served_on_its_new_connection() {
    let (a, b) = (keys(0x5a11), keys(0x1a49e));
    let (small, large) = if a.public_key().serialize() < b.public_key().serialize() {
        (a, b)
    } else {
        (b, a)
    };
    // Liveness far slower than the test: only a probe can find the link
    // dead in time.
    let slow = liveness::Config::new(Duration::from_secs(600), Duration::from_secs(300))
        .expect("non-zero");
    let (config, dial) = fast_config();
    let (inits_tx, mut inits) = mpsc::unbounded_channel();
    let us = node(
        &small,
        config.clone(),
        dial.clone(),
        SessionOpts {
            liveness: slow.clone(),
            on_init: Some(inits_tx),
            ..SessionOpts::default()
        },
    );
    let them = node(
        &large,
        config,
        dial,
        SessionOpts {
            liveness: slow,
            ..SessionOpts::default()
        },
    );
    let our_addr = serve(&us, &small).await;
    let proxy = FaultProxy::start(serve(&them, &large).await)
        .await
        .expect("a proxy");
    let (ours, theirs) = (small.public_key(), large.public_key());
    let mut events = us.events();
    let mut their_events = them.events();

    // We dial them (through the proxy) and keep them persistent.
    us.connect(NodeAddr::new(theirs, proxy.addr()), true)
        .await
        .expect("a perm connect");
    next(&mut events, "the first connection", |e| {
        matches!(e, ServerEvent::Connected { .. } if about(e, &theirs)).then_some(())
    })
    .await;
    let got = tokio::time::timeout(HANG_GUARD, inits.recv()).await;
    assert_eq!(got.ok().flatten(), Some(theirs));

    // Their side dies silently: they drop the connection, and nothing of
    // it (no FIN) reaches us.
    proxy.set_mode(Mode::BlackHole);
    them.disconnect(&ours).await.expect("connected");
    next(&mut their_events, "their side's end", |e| {
        matches!(e, ServerEvent::Disconnected { .. } if about(e, &ours)).then_some(())
    })
    .await;
    assert!(us.is_connected(&theirs), "we still hold the dead link");

    // They dial us again, directly.
    them.connect(NodeAddr::new(ours, our_addr), false)
        .await
        .expect("their new connection");

    // The dead one ends by the probe; the new one is ours, and serves.
    let (mut old_reason, mut new_inbound) = (None, false);
    while old_reason.is_none() || !new_inbound {
        next(&mut events, "the probe's end and the takeover", |e| {
            match e {
                ServerEvent::Disconnected {
                    peer,
                    direction: server::Direction::Outbound,
                    reason,
                    ..
                } if *peer == theirs => old_reason = Some(reason.clone()),
                ServerEvent::Connected {
                    peer,
                    direction: server::Direction::Inbound,
                    ..
                } if *peer == theirs => new_inbound = true,
                _ => return None,
            }
            Some(())
        })
        .await;
    }
    let probe_expired = liveness::Error::PongTimeout {
        timeout: peer::PROBE_TIMEOUT,
    };
    assert_eq!(old_reason, Some(peer::dead(probe_expired)));
    let got = tokio::time::timeout(HANG_GUARD, inits.recv()).await;
    assert_eq!(got.ok().flatten(), Some(theirs), "an init on the new one");
    assert!(us.is_connected(&theirs));
    let status = us.peer_status(&theirs);
    let conn = status.and_then(|p| p.connection).expect("connected");
    assert_eq!(conn.direction, server::Direction::Inbound);

    us.shutdown().await;
    them.shutdown().await;
}
