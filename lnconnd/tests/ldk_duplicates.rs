//! Issue 14 on real sockets against a real LDK peer: we (a whole node:
//! `server::Server`, the brontide dialer and listener, lnconnd's peer
//! handler) and an LDK node (`lightning-net-tokio` + `PeerManager`, which
//! keeps the first connection it sees) dial each other at the same moment,
//! round after round. Every round must end with exactly one connection
//! that LDK also keeps, with messages flowing on it (LDK's custom message
//! echoed back by us), whichever of the two dials won the race on each
//! side. Every wait ends on an event or on LDK's state, bounded only by a
//! hang guard.

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

use brontide::DialConfig;
use peer::SessionOpts;
use server::{Config, NodeAddr, ServerEvent};
use support::*;
use testkit::ldk::LdkNode;

const ROUNDS: u16 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_opens_with_ldk_end_on_the_one_connection_ldk_keeps() {
    let ldk = LdkNode::new(0x14);
    let ldk_addr = ldk.listen().await;
    let key = keys(0x14d);
    let mut config = Config::default();
    config.worker = config.worker.with_seed(14);
    let us = node(
        &key,
        config,
        DialConfig::default(),
        SessionOpts {
            echo: true,
            ..SessionOpts::default()
        },
    );
    let our_addr = serve(&us, &key).await;
    let ours = key.public_key();
    let theirs = ldk.node_id;
    let mut events = us.events();
    let mut tries_per_round = Vec::new();
    let (mut inbound_kept, mut outbound_kept) = (0, 0);

    for round in 0..ROUNDS {
        // Both dial at once: our perm connect dials at once too.
        let dialed = ldk.connect(ours, our_addr);
        us.connect(NodeAddr::new(theirs, ldk_addr), true)
            .await
            .expect("a perm connect");

        // Messages flow: LDK sends on the connection it kept, we echo on
        // the one that carried it. A message can go down a connection that
        // one side is closing as the pair settles (both of its first
        // connections died, say); then our side reports a disconnect or
        // LDK loses us, and the next try goes on the connection they
        // settle on.
        let mut tries = 0u16;
        loop {
            tries += 1;
            assert!(tries <= 10, "round {round}: no echo after 10 tries");
            while !(ldk.has(&ours) && us.is_connected(&theirs)) {
                let changed = ldk.changed();
                if ldk.has(&ours) && us.is_connected(&theirs) {
                    break;
                }
                settle_on(&mut events, changed).await;
            }
            while events.try_recv().is_ok() {}
            let payload = [round.to_be_bytes(), tries.to_be_bytes()].concat();
            ldk.send_custom(ours, 32769, payload.clone());
            let echoed = || {
                ldk.customs
                    .received()
                    .iter()
                    .any(|(from, m)| *from == ours && m.payload == payload)
            };
            let outcome = tokio::time::timeout(HANG_GUARD, async {
                loop {
                    let changed = ldk.changed();
                    if echoed() {
                        return true;
                    }
                    if !ldk.has(&ours) {
                        return false;
                    }
                    tokio::select! {
                        () = changed => {}
                        e = events.recv() => match e {
                            Ok(ServerEvent::Disconnected { peer, .. }) if peer == theirs => return false,
                            Ok(_) => {}
                            Err(e) => panic!("our events: {e}"),
                        },
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("round {round}: hung waiting for the echo"));
            if outcome {
                break;
            }
        }
        tries_per_round.push(tries);
        assert!(us.is_connected(&theirs), "round {round}");
        assert!(ldk.has(&ours), "round {round}");
        assert_eq!(ldk.manager.list_peers().len(), 1, "round {round}");
        let status = us.peer_status(&theirs);
        let conn = status.and_then(|p| p.connection).expect("one connection");
        match conn.direction {
            server::Direction::Inbound => inbound_kept += 1,
            server::Direction::Outbound => outbound_kept += 1,
        }

        // Apart again before the next round; LDK's dial task ends with
        // its connection, whichever was closed.
        us.disconnect(&theirs).await.expect("connected");
        while ldk.has(&ours) || us.is_connected(&theirs) {
            let changed = ldk.changed();
            if !(ldk.has(&ours) || us.is_connected(&theirs)) {
                break;
            }
            settle_on(&mut events, changed).await;
        }
        let _ = tokio::time::timeout(HANG_GUARD, dialed).await;
    }
    let settled_first = tries_per_round.iter().filter(|t| **t == 1).count();
    println!(
        "{ROUNDS} rounds: echo on the first try in {settled_first}, tries per round {tries_per_round:?}; \
         kept: {inbound_kept} inbound (LDK's dial), {outbound_kept} outbound (ours)"
    );
    us.shutdown().await;
}

/// Waits for the next change on either side: LDK's (`changed`) or one of
/// our events, within the hang guard.
async fn settle_on(
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent<brontide::Error>>,
    changed: tokio::sync::futures::Notified<'_>,
) {
    let wait = async {
        tokio::select! {
            () = changed => {}
            e = events.recv() => if let Err(e) = e {
                panic!("our events: {e}");
            },
        }
    };
    tokio::time::timeout(HANG_GUARD, wait)
        .await
        .expect("hung: neither side changed");
}
