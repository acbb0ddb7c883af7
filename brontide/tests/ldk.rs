//! Interop with a real BOLT 8 peer: LDK (`lightning` + `lightning-net-tokio`)
//! over 127.0.0.1, in both directions, with enough messages each way to cross
//! several key rotations (a key rotates every 500 messages).

use std::time::Duration;

use brontide::{
    dial, Connection, DialConfig, Listener, ListenerConfig, NodeKeyPair, PublicKey, SecretKey,
};
use futures::{SinkExt, StreamExt};
use testkit::ldk::LdkNode;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages each way: more than two rotations of each key.
const MESSAGES: u32 = 1200;
/// Our custom message to LDK (odd, so LDK must not drop us for not knowing it).
const TO_LDK: u16 = 32769;
/// LDK's custom message to us.
const FROM_LDK: u16 = 32771;
const INIT: u16 = 16;
const PING: u16 = 18;
const PONG: u16 = 19;
/// Safety cap for each wait; the exchange takes well under a second.
const CAP: Duration = Duration::from_secs(30);

fn message(type_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut msg = type_id.to_be_bytes().to_vec();
    msg.extend_from_slice(payload);
    msg
}

fn type_of(msg: &[u8]) -> u16 {
    u16::from_be_bytes([msg[0], msg[1]])
}

/// An `init` with no features and no TLVs.
fn init() -> Vec<u8> {
    message(INIT, &[0, 0, 0, 0])
}

/// Runs the exchange over an established connection to `ldk`: init both ways,
/// `MESSAGES` custom messages each way, LDK's pings answered.
async fn exchange(conn: Connection<TcpStream>, ldk: &LdkNode, our_id: PublicKey) {
    let (stream, encryptor, decryptor) = conn.into_parts();
    let (read, write) = stream.into_split();
    let mut rx = tokio_util::codec::FramedRead::new(read, brontide::MessageDecoder::new(decryptor));
    let mut tx =
        tokio_util::codec::FramedWrite::new(write, brontide::MessageEncoder::new(encryptor));

    // LDK's first message is its init.
    let first = tokio::time::timeout(CAP, rx.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(type_of(&first), INIT, "LDK's first message");

    // One writer task; the reader hands it pongs.
    let (out, mut outbox) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(msg) = outbox.recv().await {
            tx.send(msg).await.unwrap();
        }
        tx
    });
    out.send(init()).unwrap();
    ldk.wait_for("LDK to see our init", |c| c.connected().contains(&our_id))
        .await;

    // LDK -> us: queue them all, let LDK flush them as the socket allows.
    for seq in 0..MESSAGES {
        let mut payload = seq.to_be_bytes().to_vec();
        payload.extend_from_slice(&[seq as u8; 100]);
        ldk.send_custom(our_id, FROM_LDK, payload);
    }
    // A timer tick makes LDK ping us (ahead of the queued messages); we must
    // answer.
    ldk.manager.timer_tick_occurred();
    ldk.manager.process_events();

    let reader_out = out.clone();
    let reader = tokio::spawn(async move {
        let mut next = 0u32;
        let mut pings = 0u32;
        while next < MESSAGES || pings == 0 {
            let msg = rx.next().await.expect("LDK closed the connection").unwrap();
            match type_of(&msg) {
                PING => {
                    let ponglen = u16::from_be_bytes([msg[2], msg[3]]);
                    let mut payload = ponglen.to_be_bytes().to_vec();
                    payload.resize(2 + usize::from(ponglen), 0);
                    reader_out.send(message(PONG, &payload)).unwrap();
                    pings += 1;
                }
                FROM_LDK => {
                    let seq = u32::from_be_bytes(msg[2..6].try_into().unwrap());
                    assert_eq!(seq, next, "LDK's messages arrive in order");
                    assert_eq!(&msg[6..], &[seq as u8; 100][..]);
                    next += 1;
                }
                _ => {}
            }
        }
        (rx, pings)
    });

    // us -> LDK.
    for seq in 0..MESSAGES {
        let mut payload = seq.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0xab; 64]);
        out.send(message(TO_LDK, &payload)).unwrap();
    }
    let (rx, pings) = tokio::time::timeout(CAP, reader).await.unwrap().unwrap();
    ldk.wait_for("LDK to receive every message", |c| {
        c.received().len() == MESSAGES as usize
    })
    .await;
    let seqs: Vec<u32> = ldk
        .customs
        .received()
        .iter()
        .map(|(from, m)| {
            assert_eq!((*from, m.type_id), (our_id, TO_LDK));
            u32::from_be_bytes(m.payload[..4].try_into().unwrap())
        })
        .collect();
    assert_eq!(seqs, (0..MESSAGES).collect::<Vec<_>>());
    assert!(pings >= 1, "LDK never pinged");
    // Still connected after the pings: LDK got our pongs.
    ldk.manager.timer_tick_occurred();
    assert!(
        ldk.manager.peer_by_node_id(&our_id).is_some(),
        "LDK dropped us"
    );

    drop(out);
    let tx = writer.await.unwrap();
    drop((rx, tx));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_dial_to_an_ldk_listener() {
    let ldk = LdkNode::new(7);
    let ours = NodeKeyPair::new(SecretKey::from_slice(&[0x42; 32]).unwrap());
    let addr = ldk.listen().await;

    let conn = dial(
        addr,
        &ours,
        &ldk.node_id,
        &DialConfig::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(conn.remote_pubkey(), ldk.node_id);
    exchange(conn, &ldk, ours.public_key()).await;
    ldk.manager.disconnect_all_peers();
    ldk.wait_for("LDK to drop us", |c| c.connected().is_empty())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldk_dial_to_our_listener() {
    let ldk = LdkNode::new(9);
    let ours = NodeKeyPair::new(SecretKey::from_slice(&[0x43; 32]).unwrap());
    let mut listener = Listener::bind("127.0.0.1:0", ours.clone(), ListenerConfig::default())
        .await
        .unwrap();
    let addr = listener.local_addr();

    let our_id = ours.public_key();
    let connect_task = ldk.connect(our_id, addr);

    let accepted = tokio::time::timeout(CAP, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.remote_pubkey(), ldk.node_id);
    exchange(accepted.connection, &ldk, our_id).await;
    ldk.manager.disconnect_all_peers();
    let connected = tokio::time::timeout(CAP, connect_task)
        .await
        .unwrap()
        .unwrap();
    assert!(connected, "LDK's TCP connect succeeded");
    listener.shutdown().await;
}
