//! The program against a real Lightning peer: LDK on 127.0.0.1.

mod common;

use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;
use common::*;
use testkit::ldk::LdkNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_exits_after_ldks_init() {
    let ldk = LdkNode::new(21);
    let addr = ldk.listen().await;
    let node = format!("{}@{addr}", ldk.node_id);
    let out = tokio::task::spawn_blocking(move || {
        run(&[
            "connect",
            &node,
            "--exit-after-init",
            "--json",
            "--timeout",
            "20s",
        ])
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let lines = json_lines(&out);
    let init = lines
        .iter()
        .find(|l| l["event"] == "init")
        .expect("an init event");
    assert_eq!(init["peer"], ldk.node_id.to_string());
    assert_eq!(init["direction"], "outbound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldk_dials_listen_and_gets_its_custom_messages_echoed() {
    let ldk = LdkNode::new(22);
    let listening = Listening::start(&["--echo"]);
    let (key, addr) = listening.node.split_once('@').expect("pubkey@addr");
    let ours = PublicKey::from_str(key).expect("pubkey");
    let running = ldk.connect(ours, addr.parse().expect("socket address"));
    ldk.wait_for("LDK to accept our init", |c| c.connected().contains(&ours))
        .await;

    // Odd and even custom types, past a key rotation (500 messages a key).
    let payloads: Vec<Vec<u8>> = (0..600u32)
        .map(|i| i.to_be_bytes().repeat(1 + i as usize % 7))
        .collect();
    for (i, p) in payloads.iter().enumerate() {
        let kind = if i % 2 == 0 { 32769 } else { 32768 };
        ldk.send_custom(ours, kind, p.clone());
    }
    ldk.wait_for("every message echoed", |c| {
        c.received().len() == payloads.len()
    })
    .await;
    let echoed = ldk.customs.received();
    for (i, (from, m)) in echoed.iter().enumerate() {
        assert_eq!(*from, ours);
        assert_eq!(m.type_id, if i % 2 == 0 { 32769 } else { 32768 });
        assert_eq!(m.payload, payloads[i], "message {i}");
    }
    // Pings are answered: after two timer ticks LDK still holds us.
    ldk.manager.timer_tick_occurred();
    ldk.manager.process_events();
    ldk.wait_for("LDK still connected", |c| c.connected().contains(&ours))
        .await;
    ldk.manager.disconnect_all_peers();
    drop(listening);
    assert!(running.await.expect("join"), "LDK's TCP connect succeeded");
}
