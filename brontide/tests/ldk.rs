//! Interop with a real BOLT 8 peer: LDK (`lightning` + `lightning-net-tokio`)
//! over 127.0.0.1, in both directions, with enough messages each way to cross
//! several key rotations (a key rotates every 500 messages).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brontide::{
    dial, Connection, DialConfig, Listener, ListenerConfig, NodeKeyPair, PublicKey, SecretKey,
};
use futures::{SinkExt, StreamExt};
use lightning::ln::msgs::{DecodeError, Init, LightningError};
use lightning::ln::peer_handler::{
    CustomMessageHandler, ErroringMessageHandler, IgnoringMessageHandler, MessageHandler,
    PeerManager,
};
use lightning::ln::wire::{CustomMessageReader, Type};
use lightning::sign::KeysManager;
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::logger::{Logger, Record};
use lightning::util::ser::{LengthLimitedRead, Writeable, Writer};
use lightning_net_tokio::SocketDescriptor;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
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

#[derive(Debug, Clone)]
struct Custom {
    type_id: u16,
    payload: Vec<u8>,
}

impl Writeable for Custom {
    fn write<W: Writer>(&self, w: &mut W) -> Result<(), lightning::io::Error> {
        w.write_all(&self.payload)
    }
}

impl Type for Custom {
    fn type_id(&self) -> u16 {
        self.type_id
    }
}

/// LDK's custom handler: records what arrives, queues what to send.
#[derive(Default)]
struct Customs {
    received: Mutex<Vec<u32>>,
    outbox: Mutex<Vec<(PublicKey, Custom)>>,
    connected: Mutex<Option<PublicKey>>,
    changed: Notify,
}

impl CustomMessageReader for Customs {
    type CustomMessage = Custom;

    fn read<R: LengthLimitedRead>(
        &self,
        message_type: u16,
        buffer: &mut R,
    ) -> Result<Option<Custom>, DecodeError> {
        if message_type != TO_LDK {
            return Ok(None);
        }
        let mut payload = vec![0u8; buffer.remaining_bytes() as usize];
        buffer
            .read_exact(&mut payload)
            .map_err(|_| DecodeError::ShortRead)?;
        Ok(Some(Custom {
            type_id: message_type,
            payload,
        }))
    }
}

impl CustomMessageHandler for Customs {
    fn handle_custom_message(&self, msg: Custom, _sender: PublicKey) -> Result<(), LightningError> {
        let seq = u32::from_be_bytes(msg.payload[..4].try_into().unwrap());
        self.received.lock().unwrap().push(seq);
        self.changed.notify_waiters();
        Ok(())
    }

    fn get_and_clear_pending_msg(&self) -> Vec<(PublicKey, Custom)> {
        std::mem::take(&mut *self.outbox.lock().unwrap())
    }

    fn peer_disconnected(&self, _their_node_id: PublicKey) {}

    fn peer_connected(
        &self,
        their_node_id: PublicKey,
        _msg: &Init,
        _inbound: bool,
    ) -> Result<(), ()> {
        *self.connected.lock().unwrap() = Some(their_node_id);
        self.changed.notify_waiters();
        Ok(())
    }

    fn provided_node_features(&self) -> NodeFeatures {
        NodeFeatures::empty()
    }

    fn provided_init_features(&self, _their_node_id: PublicKey) -> InitFeatures {
        InitFeatures::empty()
    }
}

struct QuietLogger;

impl Logger for QuietLogger {
    fn log(&self, _record: Record<'_>) {}
}

type Ldk = PeerManager<
    SocketDescriptor,
    Arc<ErroringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<QuietLogger>,
    Arc<Customs>,
    Arc<KeysManager>,
    Arc<IgnoringMessageHandler>,
>;

struct LdkNode {
    manager: Arc<Ldk>,
    customs: Arc<Customs>,
    node_id: PublicKey,
}

fn ldk_node(seed: u8) -> LdkNode {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let keys = Arc::new(KeysManager::new(
        &[seed; 32],
        now.as_secs(),
        now.subsec_nanos(),
        true,
    ));
    let node_id = NodeKeyPair::new(keys.get_node_secret_key()).public_key();
    let customs = Arc::new(Customs::default());
    let handler = MessageHandler {
        chan_handler: Arc::new(ErroringMessageHandler::new()),
        route_handler: Arc::new(IgnoringMessageHandler {}),
        onion_message_handler: Arc::new(IgnoringMessageHandler {}),
        custom_message_handler: Arc::clone(&customs),
        send_only_message_handler: Arc::new(IgnoringMessageHandler {}),
    };
    let manager = Arc::new(PeerManager::new(
        handler,
        now.as_secs() as u32,
        &[seed.wrapping_add(1); 32],
        Arc::new(QuietLogger),
        keys,
    ));
    LdkNode {
        manager,
        customs,
        node_id,
    }
}

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

/// Waits until `done` holds, re-checking whenever LDK's handler changes.
async fn wait_for(customs: &Customs, what: &str, done: impl Fn(&Customs) -> bool) {
    let wait = async {
        loop {
            let changed = customs.changed.notified();
            if done(customs) {
                return;
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    };
    tokio::time::timeout(CAP, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
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
    wait_for(&ldk.customs, "LDK to see our init", |c| {
        *c.connected.lock().unwrap() == Some(our_id)
    })
    .await;

    // LDK -> us: queue them all, let LDK flush them as the socket allows.
    {
        let mut outbox = ldk.customs.outbox.lock().unwrap();
        for seq in 0..MESSAGES {
            let mut payload = seq.to_be_bytes().to_vec();
            payload.extend_from_slice(&[seq as u8; 100]);
            outbox.push((
                our_id,
                Custom {
                    type_id: FROM_LDK,
                    payload,
                },
            ));
        }
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
    wait_for(&ldk.customs, "LDK to receive every message", |c| {
        c.received.lock().unwrap().len() == MESSAGES as usize
    })
    .await;
    assert_eq!(
        *ldk.customs.received.lock().unwrap(),
        (0..MESSAGES).collect::<Vec<_>>()
    );
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
    let ldk = ldk_node(7);
    let ours = NodeKeyPair::new(SecretKey::from_slice(&[0x42; 32]).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let manager = Arc::clone(&ldk.manager);
    let accept_task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        lightning_net_tokio::setup_inbound(manager, stream.into_std().unwrap()).await;
    });

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
    tokio::time::timeout(CAP, accept_task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldk_dial_to_our_listener() {
    let ldk = ldk_node(9);
    let ours = NodeKeyPair::new(SecretKey::from_slice(&[0x43; 32]).unwrap());
    let mut listener = Listener::bind("127.0.0.1:0", ours.clone(), ListenerConfig::default())
        .await
        .unwrap();
    let addr = listener.local_addr();

    let manager = Arc::clone(&ldk.manager);
    let our_id = ours.public_key();
    let connect_task = tokio::spawn(async move {
        let done = lightning_net_tokio::connect_outbound(manager, our_id, addr)
            .await
            .expect("LDK connected");
        done.await;
    });

    let accepted = tokio::time::timeout(CAP, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.remote_pubkey(), ldk.node_id);
    exchange(accepted.connection, &ldk, our_id).await;
    ldk.manager.disconnect_all_peers();
    tokio::time::timeout(CAP, connect_task)
        .await
        .unwrap()
        .unwrap();
    listener.shutdown().await;
}
